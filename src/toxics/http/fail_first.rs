//! `http_fail_first`: the first `count` matching requests of the proxy (across all its
//! connections) get `status`; later ones pass. Updating the toxic restarts the count.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::time::Instant;

use super::http::{passthrough, Effect};
use super::{Toxic, ToxicRng};
use crate::model::{AttrDef, Lit, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("http_fail_first", "HttpFailFirstToxic")
    .summary("answer the first count matching requests with a status, then pass (http proxies)")
    .http_only()
    .attrs(&[
        AttrDef::int("count")
            .at_least(0)
            .unit("requests")
            .help("how many requests fail (counted across connections; an update restarts it)"),
        AttrDef::int_go("status", "int")
            .default(Lit::Int(503))
            .between(100, 599)
            .unit("status")
            .help("the response status"),
    ]);

pub fn build(_kind: &ToxicKind, _rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    passthrough()
}

pub(super) fn effect(kind: &ToxicKind, hits: &AtomicU64) -> Option<Effect> {
    let count = kind.int("count").max(0) as u64;
    let n = hits.fetch_add(1, Ordering::Relaxed);
    (n < count).then(|| Effect::Respond {
        status: kind.int("status").clamp(100, 599) as u16,
        headers: Vec::new(),
        body: Bytes::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_exactly_count_requests() {
        let kind = ToxicKind::new(&DEF).with("count", 3);
        let hits = AtomicU64::new(0);
        let failed = (0..10).filter(|_| effect(&kind, &hits).is_some()).count();
        assert_eq!(failed, 3);
    }
}
