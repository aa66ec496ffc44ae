//! `http_reset`: reset the client connection (TCP RST) instead of answering a matching
//! request; the upstream is not contacted.

use tokio::time::Instant;

use super::http::passthrough;
use super::{Toxic, ToxicRng};
use crate::model::{ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("http_reset", "HttpResetToxic")
    .summary("reset the connection instead of answering matching requests (http proxies)")
    .http_only();

pub fn build(_kind: &ToxicKind, _rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    passthrough()
}
