//! `http_abort`: answer `status` with `body` and `headers` without contacting the
//! upstream; the client's connection stays open for its next request.

use bytes::Bytes;
use tokio::time::Instant;

use super::http::{passthrough, Effect};
use super::{Toxic, ToxicRng};
use crate::model::{AttrDef, AttrValue, Lit, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("http_abort", "HttpAbortToxic")
    .summary("answer matching requests with a status, never contacting the upstream (http proxies)")
    .http_only()
    .attrs(&[
        AttrDef::int_go("status", "int")
            .default(Lit::Int(503))
            .between(100, 599)
            .unit("status")
            .help("the response status"),
        AttrDef::string("body").unit("text").help("the response body"),
        AttrDef::map("headers").unit("object").help("response headers, name to value"),
    ]);

pub fn build(_kind: &ToxicKind, _rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    passthrough()
}

pub(super) fn effect(kind: &ToxicKind) -> Effect {
    let headers = match kind.get("headers") {
        Some(AttrValue::Map(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    };
    Effect::Respond {
        status: kind.int("status").clamp(100, 599) as u16,
        headers,
        body: Bytes::copy_from_slice(kind.str("body").unwrap_or("").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_an_empty_503() {
        let kind = ToxicKind::new(&DEF);
        assert_eq!(
            effect(&kind),
            Effect::Respond {
                status: 503,
                headers: vec![],
                body: Bytes::new()
            }
        );
        assert!(kind.clone().with("status", 600).validate().is_err());
        assert!(kind.clone().with("status", 99).validate().is_err());
        assert!(kind.with("status", 418).validate().is_ok());
    }
}
