//! Toxic behaviours as synchronous, clock-driven state machines.
//!
//! A link (one direction of one connection) owns an ordered list of stages, one per toxic.
//! The link's task moves [`Item`]s from the source socket through each stage's [`Toxic`]
//! and into the destination socket. A toxic never sees a socket and never sleeps: it says
//! when it will next have output ([`Poll::Wait`]) and the link's single task waits on the
//! earliest deadline. Because one task owns every held byte, a toxic can be added, updated
//! or removed on a live connection without losing or reordering data: removal hands back
//! everything the stage holds ([`Toxic::drain`]) to be forwarded at once.
//!
//! Each toxic type is one file, `toxics/<name>.rs`, holding everything about it: its
//! declaration (`pub static DEF: ToxicDef`: name, Go struct name, attributes with types,
//! defaults, ranges, units and help, whether removal closes connections), its behaviour
//! (a [`Toxic`]) and `pub fn build`. The [`catalog!`] line below lists the files; the API's
//! decoder, validation, the JSON encoder and the CLI's type lists and help all read
//! [`CATALOG`].

use bytes::Bytes;
use std::collections::VecDeque;
use tokio::time::Instant;

use crate::model::{ToxicDef, ToxicKind};

mod rng;
pub use rng::ToxicRng;
pub mod shared;
pub use shared::SharedRate;

#[cfg(test)]
pub(crate) mod test_util;

/// One toxic type: its declaration and the constructor of its behaviour.
pub struct ToxicType {
    pub def: &'static ToxicDef,
    /// Builds the behaviour for a validated `kind` of this type. `rng` drives jitter and
    /// slicer cuts; `now` is when the toxic is attached to the link.
    pub build: fn(&ToxicKind, ToxicRng, Instant) -> Box<dyn Toxic>,
}

/// Declares the toxic modules and [`CATALOG`], in the order help pages and completions
/// list the types.
macro_rules! catalog {
    ($($(#[$meta:meta])* $name:ident),* $(,)?) => {
        $($(#[$meta])* mod $name;)*

        /// Every toxic type.
        pub static CATALOG: &[ToxicType] = &[
            $(ToxicType { def: &$name::DEF, build: $name::build },)*
        ];
    };
}

catalog! {
    latency,
    bandwidth,
    slow_close,
    timeout,
    reset_peer,
    slicer,
    limit_data,
    limit_time,
    packet_loss,
    noop,
    #[path = "http/abort.rs"]
    http_abort,
    #[path = "http/latency.rs"]
    http_latency,
    #[path = "http/fail_first.rs"]
    http_fail_first,
    #[path = "http/reset.rs"]
    http_reset,
}

pub mod http;

/// The type registered under `name` (exact, case-sensitive match).
pub fn find(name: &str) -> Option<&'static ToxicType> {
    CATALOG.iter().find(|t| t.def.name == name)
}

/// The declaration of the type registered under `name` (a [`crate::model::json::FindDef`]).
pub fn def(name: &str) -> Option<&'static ToxicDef> {
    find(name).map(|t| t.def)
}

/// A toxic of type `name` with every attribute at its default.
pub fn default_for(name: &str) -> Option<ToxicKind> {
    find(name).map(|t| ToxicKind::new(t.def))
}

/// [`default_for`] for literals in code and tests: panics on an unknown type.
pub fn kind(name: &str) -> ToxicKind {
    default_for(name).unwrap_or_else(|| panic!("no toxic type {name}"))
}

/// Every type name, in catalog order.
pub fn type_names() -> impl Iterator<Item = &'static str> {
    CATALOG.iter().map(|t| t.def.name)
}

/// Bytes read from a source socket in one read, stamped with the time they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub data: Bytes,
    /// When the bytes were read off the socket (latency is measured from here).
    pub ts: Instant,
}

/// One unit flowing down a link: data, or the end of the source stream (the peer's FIN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Data(Chunk),
    Eof,
}

/// How a toxic asks for the connection to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// Close both sockets normally (FIN).
    Fin,
    /// Close both sockets with `SO_LINGER=0` so the peers see RST.
    Reset,
}

/// The answer of [`Toxic::poll`].
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    /// This item goes to the next stage now.
    Ready(Item),
    /// Nothing to emit before this instant; poll again then (or when input arrives).
    Wait(Instant),
    /// Nothing to emit until more input arrives.
    Idle,
    /// Tear the whole connection down.
    Close(CloseKind),
}

/// One toxic instance on one link.
///
/// The driver calls `push` only when `can_accept` is true, and `poll` only when the next
/// stage can take an item. `now` never goes backwards between calls.
pub trait Toxic: Send {
    /// Whether the stage takes another input item now. Returning false applies
    /// backpressure toward the source socket.
    fn can_accept(&self) -> bool;

    /// Hands the stage one input item.
    fn push(&mut self, item: Item, now: Instant);

    /// Asks the stage for output.
    fn poll(&mut self, now: Instant) -> Poll;

    /// Applies new attributes of the same type on a live link. Per-connection state (the
    /// `limit_data` counter) and held items are kept.
    fn update(&mut self, kind: &ToxicKind, now: Instant);

    /// Removes and returns everything the stage holds, in stream order, so the link can
    /// forward it at once (a removed latency toxic releases its queue without delay).
    fn drain(&mut self) -> VecDeque<Item>;

    /// Hands the stage the state its toxic shares with every connection of the proxy
    /// direction (called once, right after `build`). Only toxics with a proxy-wide mode use
    /// it.
    fn share(&mut self, _shared: &std::sync::Arc<SharedRate>) {}
}

/// Builds the behaviour for `kind`, which has passed [`ToxicKind::validate`]. `rng` drives
/// jitter and slicer cuts; `now` is when the toxic is attached to the link.
pub fn build(kind: &ToxicKind, rng: ToxicRng, now: Instant) -> Box<dyn Toxic> {
    match find(kind.type_name()) {
        Some(t) => (t.build)(kind, rng, now),
        // A kind always comes from a catalog declaration.
        None => Box::new(noop::Noop::default()),
    }
}

/// Whether removing a toxic of this kind tears down the connections it was on.
pub fn closes_on_remove(kind: &ToxicKind) -> bool {
    kind.def().closes_on_remove
}

/// Converts a millisecond attribute to a duration; negative means zero, huge values
/// saturate instead of overflowing.
pub fn millis(ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(ms.max(0) as u64)
}

/// Adds a duration to an instant, saturating at a far-future instant ("forever").
pub fn add_saturating(t: Instant, d: std::time::Duration) -> Instant {
    t.checked_add(d).unwrap_or_else(|| far_future(t))
}

/// An instant about 30 years after `t`: effectively never, but safe for timers.
pub fn far_future(t: Instant) -> Instant {
    t + std::time::Duration::from_secs(86400 * 365 * 30)
}
