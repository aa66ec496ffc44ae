//! `limit_data`: lets `bytes` bytes through in its direction, then tears the connection
//! down with a normal close.
//!
//! A per-connection counter `transmitted` survives `update`. For each chunk,
//! `remaining = max(0, bytes - transmitted)`; the chunk is cut to `remaining` bytes, sent if
//! non-empty, and counted; then, if `bytes - transmitted <= 0`, the stage closes (after the
//! cut chunk has gone out). With the limit already met (or `bytes <= 0`), nothing happens
//! until the next chunk arrives: it is dropped and the stage closes. An idle connection
//! stays open. End-of-stream passes through. One item is held at a time.

use std::collections::VecDeque;
use tokio::time::Instant;

use super::{CloseKind, Item, Poll, Toxic, ToxicRng};
use crate::model::{AttrDef, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("limit_data", "LimitDataToxic")
    .summary("close the connection once a number of bytes went through")
    .attrs(&[AttrDef::int("bytes")
        .unit("bytes")
        .help("bytes allowed per connection and direction")]);

pub fn build(kind: &ToxicKind, _rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    Box::new(LimitData::new(kind.int("bytes")))
}

/// A limit_data stage.
pub struct LimitData {
    bytes: i64,
    transmitted: u64,
    held: Option<Item>,
    /// Set once the limit is met by a chunk; `Close` follows the held item.
    closing: bool,
}

impl LimitData {
    pub fn new(bytes: i64) -> LimitData {
        LimitData {
            bytes,
            transmitted: 0,
            held: None,
            closing: false,
        }
    }

    fn left(&self) -> i128 {
        i128::from(self.bytes) - i128::from(self.transmitted)
    }
}

impl Toxic for LimitData {
    fn can_accept(&self) -> bool {
        self.held.is_none() && !self.closing
    }

    fn push(&mut self, item: Item, _now: Instant) {
        debug_assert!(self.held.is_none(), "push while holding an item");
        let mut chunk = match item {
            Item::Eof => {
                self.held = Some(Item::Eof);
                return;
            }
            Item::Data(chunk) => chunk,
        };
        let remaining = self.left().max(0);
        if (chunk.data.len() as i128) > remaining {
            chunk.data.truncate(remaining as usize);
        }
        if !chunk.data.is_empty() {
            self.transmitted = self.transmitted.saturating_add(chunk.data.len() as u64);
            self.held = Some(Item::Data(chunk));
        }
        if self.left() <= 0 {
            self.closing = true;
        }
    }

    fn poll(&mut self, _now: Instant) -> Poll {
        if let Some(item) = self.held.take() {
            Poll::Ready(item)
        } else if self.closing {
            Poll::Close(CloseKind::Fin)
        } else {
            Poll::Idle
        }
    }

    fn update(&mut self, kind: &ToxicKind, _now: Instant) {
        if kind.is(&DEF) {
            self.bytes = kind.int("bytes");
        }
    }

    fn drain(&mut self) -> VecDeque<Item> {
        self.held.take().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::test_util::{at, bytes_of, data, input, Out, Sim};
    use bytes::Bytes;

    fn payloads(out: &[(Instant, Out)]) -> Vec<Bytes> {
        out.iter().filter_map(|(_, o)| o.data().cloned()).collect()
    }

    #[test]
    fn reference_example_limit_10() {
        let t0 = Instant::now();
        let mut l = LimitData::new(10);
        let inputs = vec![input(t0, b"123456"), input(at(t0, 10), b"abcdefgh")];
        let out = Sim::new(at(t0, 10_000)).run(&mut l, t0, inputs);
        assert_eq!(
            payloads(&out),
            vec![Bytes::from_static(b"123456"), Bytes::from_static(b"abcd")]
        );
        assert_eq!(
            out.last().unwrap(),
            &(at(t0, 10), Out::Close(CloseKind::Fin))
        );
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn exact_limit_closes_right_after_the_chunk() {
        let t0 = Instant::now();
        let mut l = LimitData::new(6);
        let out = Sim::new(at(t0, 10_000)).run(&mut l, t0, vec![input(t0, b"123456")]);
        assert_eq!(
            out,
            vec![
                (t0, Out::Item(data(b"123456", t0))),
                (t0, Out::Close(CloseKind::Fin))
            ]
        );
    }

    #[test]
    fn under_the_limit_stays_open() {
        let t0 = Instant::now();
        let mut l = LimitData::new(100);
        let inputs = (0..9).map(|i| input(at(t0, i), b"0123456789")).collect();
        let out = Sim::new(at(t0, 10_000)).run(&mut l, t0, inputs);
        assert_eq!(bytes_of(&out).len(), 90);
        assert!(out.iter().all(|(_, o)| matches!(o, Out::Item(_))));
        assert_eq!(l.poll(at(t0, 9999)), Poll::Idle);
    }

    #[test]
    fn zero_or_negative_limit_closes_on_next_chunk() {
        let t0 = Instant::now();
        for bytes in [0, -1, i64::MIN] {
            let mut l = LimitData::new(bytes);
            assert_eq!(
                l.poll(at(t0, 5000)),
                Poll::Idle,
                "idle connection stays open"
            );
            let out = Sim::new(at(t0, 10_000)).run(&mut l, t0, vec![input(at(t0, 5), b"x")]);
            assert_eq!(out, vec![(at(t0, 5), Out::Close(CloseKind::Fin))]);
        }
    }

    #[test]
    fn huge_limit_passes_everything() {
        let t0 = Instant::now();
        let mut l = LimitData::new(i64::MAX);
        for i in 0..100 {
            l.push(data(&[7; 32 * 1024], at(t0, i)), at(t0, i));
            assert!(matches!(l.poll(at(t0, i)), Poll::Ready(_)));
            assert_eq!(l.poll(at(t0, i)), Poll::Idle);
        }
        assert_eq!(l.transmitted, 100 * 32 * 1024);
    }

    #[test]
    fn eof_passes_through() {
        let t0 = Instant::now();
        let mut l = LimitData::new(100);
        let inputs = vec![input(t0, b"abc"), (at(t0, 1), Item::Eof)];
        let out = Sim::new(at(t0, 10_000)).run(&mut l, t0, inputs);
        assert_eq!(out.last().unwrap(), &(at(t0, 1), Out::Item(Item::Eof)));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn counter_survives_update() {
        let t0 = Instant::now();
        let mut l = LimitData::new(10);
        l.push(data(b"123456", t0), t0);
        assert!(matches!(l.poll(t0), Poll::Ready(_)));
        l.update(&crate::toxics::kind("noop"), t0);
        l.update(&crate::toxics::kind("limit_data").with("bytes", 8), t0);
        l.push(data(b"abcdef", t0), t0);
        assert_eq!(l.poll(t0), Poll::Ready(data(b"ab", t0)));
        assert_eq!(l.poll(t0), Poll::Close(CloseKind::Fin));
        assert_eq!(l.transmitted, 8);
    }

    #[test]
    fn lowering_below_transmitted_closes_on_next_chunk_only() {
        let t0 = Instant::now();
        let mut l = LimitData::new(100);
        l.push(data(b"123456", t0), t0);
        assert!(matches!(l.poll(t0), Poll::Ready(_)));
        l.update(&crate::toxics::kind("limit_data").with("bytes", 3), at(t0, 1));
        assert_eq!(l.poll(at(t0, 1000)), Poll::Idle);
        assert!(l.can_accept());
        l.push(data(b"more", at(t0, 1000)), at(t0, 1000));
        assert_eq!(l.poll(at(t0, 1000)), Poll::Close(CloseKind::Fin));
        // Raising it again lets data flow with the counter intact.
        let mut l = LimitData::new(6);
        l.push(data(b"123", t0), t0);
        let _ = l.poll(t0);
        l.update(&crate::toxics::kind("limit_data").with("bytes", 5), t0);
        l.push(data(b"4567", t0), t0);
        assert_eq!(l.poll(t0), Poll::Ready(data(b"45", t0)));
        assert_eq!(l.poll(t0), Poll::Close(CloseKind::Fin));
    }

    #[test]
    fn drain_returns_the_held_item() {
        let t0 = Instant::now();
        let mut l = LimitData::new(4);
        l.push(data(b"abcdef", t0), t0);
        assert!(!l.can_accept());
        assert_eq!(l.drain(), VecDeque::from([data(b"abcd", t0)]));
        assert!(l.drain().is_empty());
    }
}
