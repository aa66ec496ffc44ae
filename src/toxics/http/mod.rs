//! What the HTTP toxics do to one request. Each type is declared in its own file
//! (`abort.rs`, `latency.rs`, `fail_first.rs`, `reset.rs`) and listed in the catalog like
//! the TCP toxics, with `http_only()`: the registry keeps them out of the byte-level
//! chains and publishes them to the HTTP layer of `http` proxies (`proxy/http.rs`), which
//! rolls `toxicity` per request, checks `match` and asks [`effect`] what to do.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;

use super::ToxicRng;
use crate::model::ToxicKind;

/// What a toxic does to a request it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Answer with this response instead of forwarding the request.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// Wait this long (before forwarding upstream, or before the response headers
    /// downstream).
    Delay(Duration),
    /// Reset the client connection instead of answering.
    Reset,
}

/// The effect of an HTTP toxic on one request it applies to (toxicity and `match` already
/// passed). `hits` is the toxic's count of such requests across the proxy's connections.
/// `None`: this request passes (a `http_fail_first` past its count).
pub fn effect(kind: &ToxicKind, rng: &mut ToxicRng, hits: &AtomicU64) -> Option<Effect> {
    if kind.is(&super::http_abort::DEF) {
        Some(super::http_abort::effect(kind))
    } else if kind.is(&super::http_latency::DEF) {
        Some(super::http_latency::effect(kind, rng))
    } else if kind.is(&super::http_fail_first::DEF) {
        super::http_fail_first::effect(kind, hits)
    } else if kind.is(&super::http_reset::DEF) {
        Some(Effect::Reset)
    } else {
        None
    }
}

/// The byte-level behaviour of an HTTP toxic: none (the registry never puts one on a link;
/// this keeps the catalog's constructor total).
pub(super) fn passthrough() -> Box<dyn super::Toxic> {
    Box::new(super::noop::Noop::default())
}
