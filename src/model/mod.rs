//! Wire types spelled exactly as Toxiproxy spells them, lenient JSON decoding in Go's
//! `encoding/json` manner, and JSON encoding with Go's escaping and key order.

pub mod json;
mod toxic;

pub use toxic::{
    Applies, AttrDef, AttrType, AttrValue, Direction, Lit, Range, Shown, ToxicCheck, ToxicDef,
    ToxicKind,
};
