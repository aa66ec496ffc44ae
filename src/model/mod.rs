//! Wire types spelled exactly as Toxiproxy spells them, lenient JSON decoding in Go's
//! `encoding/json` manner, and JSON encoding with Go's escaping and key order.

mod clients;
mod http_match;
pub mod json;
pub mod schedule;
mod snapshot;
mod toxic;

pub use clients::{targets, Clients};
pub use http_match::{glob_match, HttpMatch};
pub use schedule::Schedule;
pub use snapshot::{Protocol, ProxyInput, ProxySnapshot, ToxicSnapshot};
pub use toxic::{
    Applies, AttrDef, AttrType, AttrValue, Direction, Lit, Range, Shown, ToxicCheck, ToxicDef,
    ToxicKind,
};
