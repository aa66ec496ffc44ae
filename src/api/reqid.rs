//! Request ids in the shape of `rs/xid` values, which the reference puts in
//! `X-Toxiproxy-Request-Id`: 12 bytes (4-byte big-endian Unix seconds, 5 bytes fixed per
//! process, a 3-byte counter starting at a random value) written as 20 lower-case
//! base32hex characters (`[0-9a-v]`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

struct Source {
    process: [u8; 5],
    counter: AtomicU32,
}

fn source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| Source {
        process: rand::random(),
        counter: AtomicU32::new(rand::random::<u32>()),
    })
}

/// A new, unique request id.
pub fn new_request_id() -> String {
    let src = source();
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let count = src.counter.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..9].copy_from_slice(&src.process);
    bytes[9..].copy_from_slice(&count.to_be_bytes()[1..]);
    encode(&bytes)
}

/// base32hex of 96 bits: 19 full 5-bit groups plus one last bit, padded with zeros.
fn encode(bytes: &[u8; 12]) -> String {
    let mut v: u128 = 0;
    for &b in bytes {
        v = (v << 8) | b as u128;
    }
    v <<= 4;
    (0..20)
        .map(|i| ALPHABET[((v >> (5 * (19 - i))) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_uniqueness() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn encoding_matches_xid() {
        // The example from rs/xid's documentation.
        let id = [
            0x4d, 0x88, 0xe1, 0x5b, 0x60, 0xf4, 0x86, 0xe4, 0x28, 0x41, 0x2d, 0xc9,
        ];
        assert_eq!(encode(&id), "9m4e2mr0ui3e8a215n4g");
    }
}
