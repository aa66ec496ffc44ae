//! Wire types spelled exactly as Toxiproxy spells them, lenient JSON decoding in Go's
//! `encoding/json` manner, and JSON encoding with Go's escaping and key order.

mod clients;
pub mod json;
mod snapshot;
mod toxic;

pub use clients::{targets, Clients};
pub use snapshot::{ProxyInput, ProxySnapshot, ToxicSnapshot};
pub use toxic::{
    Applies, AttrDef, AttrType, AttrValue, Direction, Lit, Range, Shown, ToxicCheck, ToxicDef,
    ToxicKind,
};
