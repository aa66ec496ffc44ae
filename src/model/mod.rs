//! Wire types spelled exactly as Toxiproxy spells them, lenient JSON decoding in Go's
//! `encoding/json` manner, and JSON encoding with Go's escaping and key order.

mod clients;
pub mod json;
pub mod schedule;
mod snapshot;
mod toxic;

pub use clients::{targets, Clients};
pub use schedule::Schedule;
pub use snapshot::{ProxyInput, ProxySnapshot, ToxicSnapshot};
pub use toxic::{
    Applies, AttrDef, AttrType, AttrValue, Direction, Lit, Range, Shown, ToxicCheck, ToxicDef,
    ToxicKind,
};
