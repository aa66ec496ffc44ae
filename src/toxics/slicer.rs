//! `slicer`: cuts each chunk into smaller pieces with a pause of `delay` µs after each.
//!
//! Cut points come from halving `[start, end)` until a range is no more than
//! `average_size + size_variation` bytes long; each halving point is moved by a random
//! integer in `[-size_variation, size_variation - 1]` (when `size_variation > 0`) and kept
//! strictly inside the range. The pieces go out in order, all with the chunk's timestamp,
//! and each is followed by a `delay` µs pause (the last one too, so the next chunk or the
//! end-of-stream marker waits for it). Attributes arrive validated; anything else is clamped
//! (`average_size >= 1`, `0 <= size_variation <= average_size`) rather than recursing
//! forever or panicking as the reference does.
//!
//! The stage takes a new item only when it has sent every piece of the previous chunk.
//! `update` applies to the next chunk; `drain` returns the unsent rest of the chunk as one
//! piece, then any held end-of-stream marker.

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

use super::{add_saturating, Chunk, Item, Poll, Toxic, ToxicRng};
use crate::model::{AttrDef, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("slicer", "SlicerToxic")
    .summary("cut data into small pieces, with a pause after each")
    .attrs(&[
        AttrDef::int_go("average_size", "int")
            .unit("bytes")
            .at_least(1)
            .help("mean piece size (at least 1)"),
        AttrDef::int_go("size_variation", "int")
            .unit("bytes")
            .help("random variation of the size (at most average_size)"),
        AttrDef::int_go("delay", "int")
            .unit("us")
            .help("pause after each piece, in MICROseconds"),
    ])
    .check(check);

/// `size_variation` must stay within `[0, average_size]` (the reference recurses forever
/// or panics otherwise).
fn check(kind: &ToxicKind) -> Result<(), String> {
    let (average_size, size_variation) = (kind.int("average_size"), kind.int("size_variation"));
    if (0..=average_size).contains(&size_variation) {
        Ok(())
    } else {
        Err(format!(
            "size_variation must be between 0 and average_size ({average_size})"
        ))
    }
}

pub fn build(kind: &ToxicKind, rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    Box::new(Slicer::new(
        kind.int("average_size"),
        kind.int("size_variation"),
        kind.int("delay"),
        rng,
    ))
}

/// A slicer stage.
pub struct Slicer {
    average_size: i64,
    size_variation: i64,
    delay_us: i64,
    rng: ToxicRng,
    /// The unsent part of the current chunk.
    rest: Bytes,
    /// Lengths of the pieces `rest` is still to be cut into.
    cuts: VecDeque<usize>,
    ts: Instant,
    /// End of the pause after the last piece sent.
    pause_until: Option<Instant>,
    eof: bool,
}

impl Slicer {
    pub fn new(average_size: i64, size_variation: i64, delay_us: i64, rng: ToxicRng) -> Slicer {
        Slicer {
            average_size,
            size_variation,
            delay_us,
            rng,
            rest: Bytes::new(),
            cuts: VecDeque::new(),
            ts: Instant::now(),
            pause_until: None,
            eof: false,
        }
    }

    /// Piece lengths for a chunk of `len` bytes, in order.
    fn cut(&mut self, len: usize) -> VecDeque<usize> {
        let avg = self.average_size.max(1);
        let var = self.size_variation.clamp(0, avg);
        let mut pieces = VecDeque::new();
        // Depth-first, left half first: the same order as the reference's recursion, so the
        // random draws for a given seed are made in a fixed order.
        let mut stack = vec![(0usize, len)];
        while let Some((start, end)) = stack.pop() {
            let n = end - start;
            if n as i128 - i128::from(avg) <= i128::from(var) {
                pieces.push_back(n);
                continue;
            }
            // Here n > avg + var >= 1, so [start + 1, end - 1] is not empty.
            let mut mid = (start + n / 2) as i128;
            if var > 0 {
                mid += i128::from(self.rng.range(-var, var));
            }
            let mid = mid.clamp(start as i128 + 1, end as i128 - 1) as usize;
            stack.push((mid, end));
            stack.push((start, mid));
        }
        pieces
    }
}

impl Toxic for Slicer {
    fn can_accept(&self) -> bool {
        self.cuts.is_empty() && !self.eof
    }

    fn push(&mut self, item: Item, _now: Instant) {
        debug_assert!(self.can_accept(), "push while holding an item");
        match item {
            Item::Eof => self.eof = true,
            Item::Data(Chunk { data, ts }) => {
                self.cuts = self.cut(data.len());
                self.rest = data;
                self.ts = ts;
            }
        }
    }

    fn poll(&mut self, now: Instant) -> Poll {
        if let Some(until) = self.pause_until {
            if now < until {
                return if self.cuts.is_empty() && !self.eof {
                    Poll::Idle
                } else {
                    Poll::Wait(until)
                };
            }
            self.pause_until = None;
        }
        if let Some(len) = self.cuts.pop_front() {
            let piece = self.rest.split_to(len.min(self.rest.len()));
            if self.delay_us > 0 {
                let pause = Duration::from_micros(self.delay_us as u64);
                self.pause_until = Some(add_saturating(now, pause));
            }
            return Poll::Ready(Item::Data(Chunk {
                data: piece,
                ts: self.ts,
            }));
        }
        if std::mem::take(&mut self.eof) {
            return Poll::Ready(Item::Eof);
        }
        Poll::Idle
    }

    fn update(&mut self, kind: &ToxicKind, _now: Instant) {
        if kind.is(&DEF) {
            self.average_size = kind.int("average_size");
            self.size_variation = kind.int("size_variation");
            self.delay_us = kind.int("delay");
        }
    }

    fn drain(&mut self) -> VecDeque<Item> {
        let mut out = VecDeque::new();
        if !self.cuts.is_empty() {
            self.cuts.clear();
            let data = std::mem::take(&mut self.rest);
            out.push_back(Item::Data(Chunk { data, ts: self.ts }));
        }
        if std::mem::take(&mut self.eof) {
            out.push_back(Item::Eof);
        }
        self.pause_until = None;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::test_util::{at, bytes_of, data, input, pieces, Out, Sim};

    fn slicer(avg: i64, var: i64, delay_us: i64) -> Slicer {
        Slicer::new(avg, var, delay_us, ToxicRng::new(11))
    }

    fn pattern(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 13 + seed) % 253) as u8).collect()
    }

    fn sizes(out: &[(Instant, Out)]) -> Vec<usize> {
        out.iter()
            .filter_map(|(_, o)| o.data().map(|d| d.len()))
            .collect()
    }

    #[test]
    fn average_1_variation_0_gives_one_byte_pieces() {
        let t0 = Instant::now();
        let mut s = slicer(1, 0, 0);
        let p = pattern(24, 0);
        let out = Sim::new(at(t0, 1000)).run(&mut s, t0, vec![input(t0, &p)]);
        assert_eq!(sizes(&out), vec![1; 24]);
        assert_eq!(bytes_of(&out), p);
        assert!(out
            .iter()
            .all(|(t, o)| *t == t0 && matches!(o, Out::Item(Item::Data(c)) if c.ts == t0)));
    }

    #[test]
    fn pieces_are_spaced_by_delay_in_microseconds() {
        // Reference observation: {10, 5, 20000} turns 100 bytes into ~10 pieces 20 ms apart.
        let t0 = Instant::now();
        let mut s = slicer(10, 5, 20_000);
        let p = pattern(100, 1);
        let out = Sim::new(at(t0, 100_000)).run(&mut s, t0, vec![input(t0, &p)]);
        assert_eq!(bytes_of(&out), p);
        let n = out.len();
        assert!((7..=15).contains(&n), "{n} pieces");
        for (i, (t, _)) in out.iter().enumerate() {
            assert_eq!(*t, at(t0, 20 * i as u64));
        }
        assert!(sizes(&out).iter().all(|&len| (1..=15).contains(&len)));
    }

    #[test]
    fn pause_follows_the_last_piece() {
        let t0 = Instant::now();
        let mut s = slicer(2, 0, 5_000);
        let inputs = vec![input(t0, b"abcd"), input(t0, b"ef"), (t0, Item::Eof)];
        let out = Sim::new(at(t0, 100_000)).run(&mut s, t0, inputs);
        let times: Vec<u64> = out
            .iter()
            .map(|(t, _)| t.duration_since(t0).as_millis() as u64)
            .collect();
        assert_eq!(times, vec![0, 5, 10, 15]);
        assert_eq!(sizes(&out), vec![2, 2, 2]);
        assert_eq!(out[3].1, Out::Item(Item::Eof));
    }

    #[test]
    fn small_chunks_pass_whole() {
        let t0 = Instant::now();
        let mut s = slicer(10, 5, 0);
        let out = Sim::new(at(t0, 1000)).run(&mut s, t0, vec![input(t0, &[1; 15])]);
        assert_eq!(sizes(&out), vec![15]);
        let mut s = slicer(10, 5, 0);
        let out = Sim::new(at(t0, 1000)).run(&mut s, t0, vec![input(t0, &[])]);
        assert_eq!(sizes(&out), vec![0]);
    }

    #[test]
    fn large_transfer_rebuilds_byte_exact_with_expected_piece_count() {
        let t0 = Instant::now();
        let mut s = slicer(1024, 512, 0);
        let mut all = Vec::new();
        let inputs: Vec<_> = (0..15)
            .map(|i| {
                let p = pattern(32 * 1024, i);
                all.extend_from_slice(&p);
                input(at(t0, i as u64), &p)
            })
            .collect();
        assert_eq!(all.len(), 480 * 1024);
        let out = Sim::new(at(t0, 100_000)).run(&mut s, t0, inputs);
        assert_eq!(bytes_of(&out), all);
        let n = pieces(&out);
        assert!((240..=720).contains(&n), "{n} pieces");
        assert!(sizes(&out).iter().all(|&len| len <= 1536));
    }

    #[test]
    fn same_seed_same_cuts() {
        let t0 = Instant::now();
        let run = |seed: u64| {
            let mut s = Slicer::new(100, 80, 0, ToxicRng::new(seed));
            let inputs = (0..20).map(|i| input(t0, &pattern(5000, i))).collect();
            sizes(&Sim::new(at(t0, 1000)).run(&mut s, t0, inputs))
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn invalid_attributes_are_clamped_not_fatal() {
        let t0 = Instant::now();
        let p = pattern(3000, 4);
        for (avg, var) in [
            (0, 0),
            (-5, 0),
            (i64::MIN, i64::MIN),
            (10, -3),
            (10, 1000),
            (1, i64::MAX),
            (i64::MAX, i64::MAX),
            (i64::MAX, 0),
        ] {
            let mut s = slicer(avg, var, 0);
            let out = Sim::new(at(t0, 1000)).run(&mut s, t0, vec![input(t0, &p)]);
            assert_eq!(bytes_of(&out), p, "{avg}/{var}");
        }
    }

    #[test]
    fn extreme_delays() {
        let t0 = Instant::now();
        for delay in [0, -1, i64::MIN] {
            let mut s = slicer(1, 0, delay);
            let out = Sim::new(at(t0, 1000)).run(&mut s, t0, vec![input(t0, b"abc")]);
            assert!(out.iter().all(|(t, _)| *t == t0));
            assert_eq!(out.len(), 3);
        }
        let mut s = slicer(1, 0, i64::MAX);
        s.push(data(b"abc", t0), t0);
        assert!(matches!(s.poll(t0), Poll::Ready(_)));
        match s.poll(at(t0, 1000)) {
            Poll::Wait(w) => assert!(w > t0 + Duration::from_secs(86400 * 365 * 10)),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(s.drain(), VecDeque::from([data(b"bc", t0)]));
    }

    #[test]
    fn drain_returns_the_rest_as_one_piece_then_eof() {
        let t0 = Instant::now();
        let mut s = slicer(1, 0, 1000);
        s.push(data(b"hello", t0), t0);
        assert_eq!(s.poll(t0), Poll::Ready(data(b"h", t0)));
        assert_eq!(s.poll(t0), Poll::Wait(t0 + Duration::from_millis(1)));
        assert!(!s.can_accept());
        assert_eq!(s.drain(), VecDeque::from([data(b"ello", t0)]));
        assert!(s.can_accept());
        assert!(s.drain().is_empty());

        // A held EOF (pushed during the pause after a chunk's last piece).
        let mut s = slicer(10, 0, 1000);
        s.push(data(b"abc", t0), t0);
        assert_eq!(s.poll(t0), Poll::Ready(data(b"abc", t0)));
        assert!(s.can_accept());
        assert_eq!(s.poll(t0), Poll::Idle);
        s.push(Item::Eof, t0);
        assert_eq!(s.poll(t0), Poll::Wait(t0 + Duration::from_millis(1)));
        assert_eq!(s.drain(), VecDeque::from([Item::Eof]));
        assert_eq!(s.poll(at(t0, 5)), Poll::Idle);
    }

    #[test]
    fn update_applies_to_the_next_chunk() {
        let t0 = Instant::now();
        let mut s = slicer(2, 0, 0);
        s.push(data(b"abcdefgh", t0), t0);
        assert_eq!(s.poll(t0), Poll::Ready(data(b"ab", t0)));
        s.update(&crate::toxics::kind("noop"), t0);
        s.update(
            &crate::toxics::kind("slicer").with("average_size", 1).with("size_variation", 0).with("delay", 0),
            t0,
        );
        assert_eq!(s.poll(t0), Poll::Ready(data(b"cd", t0)));
        assert_eq!(s.poll(t0), Poll::Ready(data(b"ef", t0)));
        assert_eq!(s.poll(t0), Poll::Ready(data(b"gh", t0)));
        s.push(data(b"xyz", t0), t0);
        assert_eq!(s.poll(t0), Poll::Ready(data(b"x", t0)));
    }
}
