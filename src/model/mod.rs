//! Wire types spelled exactly as Toxiproxy spells them, lenient JSON decoding in Go's
//! `encoding/json` manner, and JSON encoding with Go's escaping and key order.

pub mod json;
pub mod proxy;
mod toxic;

pub use toxic::{Direction, ToxicKind, TOXIC_TYPES};
