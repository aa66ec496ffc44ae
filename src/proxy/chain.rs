//! The toxic chain of one proxy direction, as published to live links.
//!
//! The registry owns the authoritative list and publishes an immutable snapshot through a
//! `watch` channel per direction. Publishing never waits: each link picks up the newest
//! snapshot at its next step and edits its own stages in place (see `link.rs`).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use std::net::IpAddr;

use crate::model::{Clients, ToxicKind};

/// One toxic as a link sees it.
#[derive(Debug, Clone)]
pub struct ChainEntry {
    /// Unique for the life of the process; identifies the toxic across updates.
    pub uid: u64,
    pub kind: ToxicKind,
    pub toxicity: f32,
    /// Bumped when the attributes change.
    pub attr_gen: u64,
    /// Bumped when `toxicity` is updated: the only event that re-rolls a live link's
    /// toxicity (DECISIONS §2.12).
    pub toxicity_gen: u64,
    /// The toxic's activation counter (`toxi_toxic_activations_total`): a link adds one
    /// when the toxic starts acting on it (see `crate::metrics`).
    pub activations: Arc<AtomicU64>,
    /// False while the toxic's schedule holds it inactive: the stage passes data untouched
    /// (its roll is kept), and becoming inactive releases what it holds, in order.
    pub active: bool,
    /// Client targeting: when set, only connections from a matching address get the toxic.
    pub clients: Option<Clients>,
    /// What the toxic shares across the proxy's connections (`bandwidth` `scope: proxy`).
    pub shared: Arc<crate::toxics::SharedRate>,
}

/// The ordered toxics of one direction.
pub type Chain = Arc<Vec<ChainEntry>>;

/// Deterministic 64-bit mixing (splitmix64 finaliser), used to derive per-link and
/// per-toxic random seeds from the server seed so that `-seed` reproduces runs.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable hash of a string (FNV-1a), for mixing proxy names into seeds.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The toxicity roll of one (connection, direction, toxic): true when the toxic applies.
pub fn roll(link_seed: u64, uid: u64, toxicity_gen: u64, toxicity: f32) -> bool {
    let r = mix(mix(link_seed, uid), toxicity_gen ^ 0x5eed);
    // 24 random bits give a uniform f32 in [0, 1).
    let u = (r >> 40) as f32 / (1u64 << 24) as f32;
    u < toxicity
}

/// Whether `entry`'s client targeting selects a connection from `client` (`None`: unknown,
/// which only an untargeted toxic applies to). Independent of the toxicity roll: a toxic
/// applies to a connection when both [`roll`] and this are true.
pub fn targets_client(entry: &ChainEntry, client: Option<IpAddr>) -> bool {
    crate::model::targets(entry.clients.as_ref(), client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_extremes() {
        for uid in 0..1000 {
            assert!(roll(7, uid, 0, 1.0));
            assert!(!roll(7, uid, 0, 0.0));
            assert!(!roll(7, uid, 0, -1.0));
            assert!(roll(7, uid, 0, 5.0));
        }
    }

    #[test]
    fn roll_is_deterministic_and_fair() {
        let hits = (0..10_000).filter(|&c| roll(mix(42, c), 1, 0, 0.3)).count();
        assert!((2700..3300).contains(&hits), "{hits}");
        let again = (0..10_000).filter(|&c| roll(mix(42, c), 1, 0, 0.3)).count();
        assert_eq!(hits, again);
    }
}
