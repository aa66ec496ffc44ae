//! `http_latency`: `latency` ± `jitter` ms before the request is forwarded (stream
//! upstream) or before the response headers are sent (stream downstream); the body then
//! streams without further delay. The jitter is drawn per request.

use tokio::time::Instant;

use super::http::{passthrough, Effect};
use super::{millis, Toxic, ToxicRng};
use crate::model::{AttrDef, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("http_latency", "HttpLatencyToxic")
    .summary("delay matching requests (upstream) or their response headers (downstream) (http proxies)")
    .http_only()
    .attrs(&[
        AttrDef::int("latency").unit("ms").at_least(0).help("the delay"),
        AttrDef::int("jitter").unit("ms").at_least(0).help("random variation, drawn per request"),
    ]);

pub fn build(_kind: &ToxicKind, _rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    passthrough()
}

pub(super) fn effect(kind: &ToxicKind, rng: &mut ToxicRng) -> Effect {
    let (latency, jitter) = (kind.int("latency"), kind.int("jitter"));
    let j = if jitter > 0 {
        rng.range(-jitter, jitter)
    } else {
        0
    };
    Effect::Delay(millis(latency.saturating_add(j)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        let kind = ToxicKind::new(&DEF)
            .with("latency", 100)
            .with("jitter", 10);
        let mut rng = ToxicRng::new(1);
        for _ in 0..1000 {
            let Effect::Delay(d) = effect(&kind, &mut rng) else {
                panic!()
            };
            assert!((90..=110).contains(&d.as_millis()), "{d:?}");
        }
    }
}
