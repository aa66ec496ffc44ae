//! `bandwidth`: paces data to `rate` KB/s (1 KB = 1000 bytes, so `rate` bytes per ms).
//!
//! A chunk of `L` bytes costs `L * 1_000_000 / rate` ns. A chunk longer than `rate * 100`
//! bytes goes out in pieces of `rate * 100` bytes, one per 100 ms, and the rest when its
//! whole cost has elapsed. The stage holds one item at a time (a synchronous hand-off), so a
//! slow rate pushes back on the source socket.
//!
//! Timing follows a virtual schedule: each deadline is computed from the previous deadline,
//! not from when the timer actually fired or when the next chunk arrived, so neither timer
//! lateness nor the time the link takes to write one chunk and read the next accumulates
//! (that gap alone cost 10 % at 100 MB/s). A chunk pushed within [`BACK_TO_BACK`] of the
//! previous release continues the schedule where that release was due; the schedule never
//! lags the clock by more than [`MAX_CREDIT`], so a stall (a busy machine, a slow reader)
//! earns at most that much burst, like a token bucket 100 ms deep. A chunk that arrives
//! after a longer pause (the source was idle) starts a new schedule at its arrival, less
//! the lateness of the previous release (capped the same way), so idle time earns no
//! burst.
//!
//! `rate <= 0` holds the data until the rate is raised or the toxic is removed. An
//! end-of-stream marker passes straight through (nothing can be held ahead of it).
//! `update` keeps the held data; a changed rate applies to it from the moment of the update.

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

use super::{add_saturating, Chunk, Item, Poll, Toxic, ToxicRng};
use crate::model::{AttrDef, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("bandwidth", "BandwidthToxic")
    .summary("limit the transfer rate")
    .attrs(&[AttrDef::int("rate")
        .unit("KB/s")
        .at_least(0)
        .range_note("KB/s; 0 holds all data")
        .help("1 KB = 1000 bytes; 0 holds all data until the toxic is removed")]);

pub fn build(kind: &ToxicKind, _rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    Box::new(Bandwidth::new(kind.int("rate")))
}

/// Time between the pieces of a chunk larger than `rate * 100` bytes.
const SLICE: Duration = Duration::from_millis(100);

/// The most timer lateness carried forward as credit.
pub const MAX_CREDIT: Duration = SLICE;

/// A push this soon after the previous release continues its schedule: the gap is the
/// link's own write-then-read time, stretched on a busy machine.
pub const BACK_TO_BACK: Duration = MAX_CREDIT;

/// A bandwidth stage.
pub struct Bandwidth {
    rate: i64,
    held: Option<Held>,
    /// Lateness of the last release, taken off the next chunk's schedule.
    credit: Duration,
    /// When the last chunk finished (its virtual due time) and when it was released.
    last: Option<(Instant, Instant)>,
}

enum Held {
    Eof,
    Data {
        /// What is left of the chunk.
        data: Bytes,
        ts: Instant,
        /// Virtual time at which sending of `data` began.
        start: Instant,
    },
}

impl Bandwidth {
    pub fn new(rate: i64) -> Bandwidth {
        Bandwidth {
            rate,
            held: None,
            credit: Duration::ZERO,
            last: None,
        }
    }

    /// The virtual time at which a chunk pushed at `now` starts sending.
    fn start_for(&mut self, now: Instant) -> Instant {
        let credit = std::mem::take(&mut self.credit);
        match self.last.take() {
            Some((due, released)) if now.saturating_duration_since(released) <= BACK_TO_BACK => {
                next_start(due, now)
            }
            _ => now.checked_sub(credit).unwrap_or(now),
        }
    }
}

/// The time `len` bytes take at `rate` bytes per ms (`rate > 0`).
fn cost(len: usize, rate: i64) -> Duration {
    let ns = len as u128 * 1_000_000 / rate.max(1) as u128;
    Duration::from_nanos(ns.min(u64::MAX as u128) as u64)
}

/// The most bytes sent per 100 ms slice (`rate > 0`).
fn piece_size(rate: i64) -> usize {
    (rate.max(1) as u128 * 100).min(usize::MAX as u128) as usize
}

/// The virtual time following a release at `now` that was due at `due`: `due`, unless the
/// release was later than `due` by more than [`MAX_CREDIT`].
fn next_start(due: Instant, now: Instant) -> Instant {
    match now.checked_sub(MAX_CREDIT) {
        Some(floor) => due.max(floor),
        None => due,
    }
}

impl Toxic for Bandwidth {
    fn can_accept(&self) -> bool {
        self.held.is_none()
    }

    fn push(&mut self, item: Item, now: Instant) {
        debug_assert!(self.held.is_none(), "push while holding an item");
        self.held = Some(match item {
            Item::Eof => Held::Eof,
            Item::Data(Chunk { data, ts }) => {
                let start = self.start_for(now);
                Held::Data { data, ts, start }
            }
        });
    }

    fn poll(&mut self, now: Instant) -> Poll {
        let rate = self.rate;
        let Some(held) = self.held.as_mut() else {
            return Poll::Idle;
        };
        let Held::Data { data, ts, start } = held else {
            self.held = None;
            return Poll::Ready(Item::Eof);
        };
        if rate <= 0 {
            return Poll::Idle;
        }
        let piece = piece_size(rate);
        if data.len() > piece {
            let due = add_saturating(*start, SLICE);
            if now < due {
                return Poll::Wait(due);
            }
            let out = data.split_to(piece);
            *start = next_start(due, now);
            return Poll::Ready(Item::Data(Chunk { data: out, ts: *ts }));
        }
        let due = add_saturating(*start, cost(data.len(), rate));
        if now < due {
            return Poll::Wait(due);
        }
        let ts = *ts;
        let out = std::mem::take(data);
        self.credit = now.saturating_duration_since(due).min(MAX_CREDIT);
        self.last = Some((due, now));
        self.held = None;
        Poll::Ready(Item::Data(Chunk { data: out, ts }))
    }

    fn update(&mut self, kind: &ToxicKind, now: Instant) {
        if !kind.is(&DEF) {
            return;
        }
        let rate = kind.int("rate");
        if rate == self.rate {
            return;
        }
        self.rate = rate;
        self.credit = Duration::ZERO;
        self.last = None;
        if let Some(Held::Data { start, .. }) = self.held.as_mut() {
            *start = now;
        }
    }

    fn drain(&mut self) -> VecDeque<Item> {
        self.credit = Duration::ZERO;
        self.last = None;
        match self.held.take() {
            None => VecDeque::new(),
            Some(Held::Eof) => VecDeque::from([Item::Eof]),
            Some(Held::Data { data, ts, .. }) => VecDeque::from([Item::Data(Chunk { data, ts })]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::test_util::{at, bytes_of, data, input, Out, Sim};

    const KIB32: usize = 32 * 1024;

    fn ms_after(t0: Instant, t: Instant) -> f64 {
        t.duration_since(t0).as_secs_f64() * 1000.0
    }

    /// Pattern bytes so reordering or loss would show.
    fn pattern(len: usize, seed: usize) -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 31 + seed * 7) % 251) as u8)
            .collect()
    }

    /// `n` chunks of `len` bytes, all readable from `t0`.
    fn backlog(t0: Instant, n: usize, len: usize) -> (Vec<(Instant, Item)>, Vec<u8>) {
        let mut all = Vec::new();
        let inputs = (0..n)
            .map(|i| {
                let p = pattern(len, i);
                all.extend_from_slice(&p);
                input(t0, &p)
            })
            .collect();
        (inputs, all)
    }

    #[test]
    fn small_chunk_waits_its_cost() {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(10); // 10 bytes per ms
        b.push(data(&[1; 50], t0), t0);
        assert!(!b.can_accept());
        assert_eq!(b.poll(t0), Poll::Wait(at(t0, 5)));
        assert_eq!(b.poll(at(t0, 5)), Poll::Ready(data(&[1; 50], t0)));
        assert!(b.can_accept());
        assert_eq!(b.poll(at(t0, 5)), Poll::Idle);
    }

    #[test]
    fn cost_is_in_nanoseconds() {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(3);
        b.push(data(&[0; 1], t0), t0);
        assert_eq!(b.poll(t0), Poll::Wait(t0 + Duration::from_nanos(333_333)));
    }

    #[test]
    fn big_chunk_goes_in_100ms_pieces() {
        // Reference observation: rate 10 sends 1000-byte pieces every 100 ms; 20 000 bytes
        // take 2.0 s.
        let t0 = Instant::now();
        let mut b = Bandwidth::new(10);
        let p = pattern(20_000, 1);
        let out = Sim::new(at(t0, 100_000)).run(&mut b, t0, vec![input(t0, &p)]);
        assert_eq!(out.len(), 20);
        for (i, (t, o)) in out.iter().enumerate() {
            assert_eq!(*t, at(t0, 100 * (i as u64 + 1)));
            assert_eq!(o.data().unwrap().len(), 1000);
        }
        assert_eq!(bytes_of(&out), p);
    }

    #[test]
    fn reference_unit_test_480kb_at_1000() {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(1000);
        let (inputs, all) = backlog(t0, 15, KIB32); // 480 KiB
        let out = Sim::new(at(t0, 100_000)).run(&mut b, t0, inputs);
        assert_eq!(bytes_of(&out), all);
        let took = ms_after(t0, out.last().unwrap().0);
        // 491 520 bytes at 1 000 000 bytes/s.
        assert!((took - 491.52).abs() < 10.0, "took {took} ms");
    }

    /// Sends a backlog of 32 KiB chunks through `rate` with timers that fire `late`, and
    /// checks the long-run rate over at least 2 simulated seconds.
    fn check_long_run(rate: i64, late: Duration) {
        let t0 = Instant::now();
        let bytes_per_2s = rate as usize * 2000;
        let n = bytes_per_2s.div_ceil(KIB32).max(1) + 1;
        let (inputs, all) = backlog(t0, n, KIB32);
        let mut b = Bandwidth::new(rate);
        let out = Sim::late(at(t0, 1_000_000), late).run(&mut b, t0, inputs);
        assert_eq!(bytes_of(&out), all, "rate {rate}: byte-exact");
        let took = ms_after(t0, out.last().unwrap().0);
        let ideal = all.len() as f64 / rate as f64;
        assert!(took >= 2000.0, "simulated at least 2 s");
        let err = (took - ideal).abs() / ideal;
        assert!(
            err < 0.02,
            "rate {rate} late {late:?}: took {took} ms, ideal {ideal} ms"
        );

        // Also over the first 2 s window: within 2 % or one piece of granularity.
        let within: usize = out
            .iter()
            .filter(|(t, _)| *t <= at(t0, 2000))
            .map(|(_, o)| o.data().unwrap().len())
            .sum();
        let slack = (bytes_per_2s as f64 * 0.02) as usize + piece_size(rate).min(KIB32);
        assert!(
            within.abs_diff(bytes_per_2s) <= slack,
            "rate {rate} late {late:?}: {within} bytes in 2 s, expected ~{bytes_per_2s}"
        );
    }

    #[test]
    fn long_run_rate_is_accurate_at_1_kbps() {
        check_long_run(1, Duration::ZERO);
        check_long_run(1, Duration::from_millis(3));
    }

    #[test]
    fn long_run_rate_is_accurate_at_100_kbps() {
        check_long_run(100, Duration::ZERO);
        check_long_run(100, Duration::from_millis(1));
        check_long_run(100, Duration::from_millis(7));
    }

    #[test]
    fn long_run_rate_is_accurate_at_10000_kbps() {
        check_long_run(10_000, Duration::ZERO);
        check_long_run(10_000, Duration::from_micros(300));
        // Lateness of about a third of a chunk's cost on every timer.
        check_long_run(10_000, Duration::from_millis(1));
    }

    /// Streams `total` bytes of 32 KiB chunks through `rate` the way a link does: each chunk
    /// is pushed `gap` after the previous release (the write and the next read), and every
    /// timer fires rounded up to the next millisecond plus `late` (tokio's timer on a busy
    /// machine). Returns the achieved rate over the ideal one.
    fn link_like_rate(rate: i64, total: usize, gap: Duration, late: Duration) -> f64 {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(rate);
        let (mut now, mut sent) = (t0, 0usize);
        while sent < total {
            b.push(data(&[7; KIB32], now), now);
            loop {
                match b.poll(now) {
                    Poll::Ready(Item::Data(c)) => {
                        sent += c.data.len();
                        if b.can_accept() {
                            break;
                        }
                    }
                    Poll::Wait(t) => {
                        let ns = t.duration_since(t0).as_nanos().div_ceil(1_000_000) as u64;
                        now = (t0 + Duration::from_millis(ns) + late).max(now);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            if sent < total {
                now += gap;
            }
        }
        let ideal = sent as f64 / rate as f64 / 1000.0;
        ideal / now.duration_since(t0).as_secs_f64()
    }

    #[test]
    fn back_to_back_chunks_keep_the_schedule_at_high_rates() {
        // Rates from 100 KB/s to 1 GB/s, with a link's write-then-read gap between chunks.
        for (rate, total) in [
            (100, 400_000),
            (10_000, 40_000_000),
            (100_000, 400_000_000),
            (500_000, 2_000_000_000),
            (1_000_000, 4_000_000_000),
        ] {
            for (gap, late) in [
                (Duration::from_micros(30), Duration::ZERO),
                (Duration::from_micros(80), Duration::from_micros(300)),
                (Duration::from_millis(2), Duration::from_millis(1)),
            ] {
                if gap >= cost(KIB32, rate) {
                    continue; // the link itself could not keep up
                }
                let r = link_like_rate(rate, total, gap, late);
                assert!(
                    (r - 1.0).abs() < 0.02,
                    "rate {rate} gap {gap:?} late {late:?}: {:.2} % of the rate",
                    r * 100.0
                );
            }
        }
    }

    #[test]
    fn variable_lateness_does_not_accumulate() {
        let t0 = Instant::now();
        let (inputs, all) = backlog(t0, 200, KIB32);
        let mut b = Bandwidth::new(2000);
        let mut k = 0u64;
        let mut sim = Sim::new(at(t0, 1_000_000));
        sim.overshoot = Box::new(move || {
            k = (k * 7 + 3) % 11;
            Duration::from_micros(k * 400)
        });
        let out = sim.run(&mut b, t0, inputs);
        let took = ms_after(t0, out.last().unwrap().0);
        let ideal = all.len() as f64 / 2000.0;
        assert!(
            (took - ideal).abs() / ideal < 0.02,
            "took {took}, ideal {ideal}"
        );
    }

    #[test]
    fn idle_time_earns_no_burst_credit() {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(1); // 1 byte per ms
        let inputs = vec![
            input(t0, &[1; 10]),
            input(at(t0, 10_000), &[2; 10]),
            input(at(t0, 10_000), &[3; 10]),
        ];
        let out = Sim::new(at(t0, 100_000)).run(&mut b, t0, inputs);
        let times: Vec<f64> = out.iter().map(|(t, _)| ms_after(t0, *t)).collect();
        assert_eq!(times, vec![10.0, 10_010.0, 10_020.0]);
    }

    #[test]
    fn credit_is_capped() {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(1);
        b.push(data(&[0; 10], t0), t0);
        assert_eq!(b.poll(t0), Poll::Wait(at(t0, 10)));
        // Polled 5 s late (the next stage was full): the next chunk gets at most 100 ms off.
        assert!(matches!(b.poll(at(t0, 5010)), Poll::Ready(_)));
        b.push(data(&[0; 500], at(t0, 5010)), at(t0, 5010));
        // 100 ms of credit: the first 100-byte piece is due at once, the next 100 ms later.
        assert!(matches!(b.poll(at(t0, 5010)), Poll::Ready(_)));
        assert_eq!(b.poll(at(t0, 5010)), Poll::Wait(at(t0, 5110)));
        // A piece released very late lets at most one more piece (100 ms worth) out at once.
        assert!(matches!(b.poll(at(t0, 9000)), Poll::Ready(_)));
        assert!(matches!(b.poll(at(t0, 9000)), Poll::Ready(_)));
        assert_eq!(b.poll(at(t0, 9000)), Poll::Wait(at(t0, 9100)));
        assert!(matches!(b.poll(at(t0, 9100)), Poll::Ready(_)));
        assert_eq!(b.poll(at(t0, 9100)), Poll::Wait(at(t0, 9200)));
        assert!(matches!(b.poll(at(t0, 9200)), Poll::Ready(_)));
        assert!(b.can_accept());
    }

    #[test]
    fn eof_passes_in_order() {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(1);
        let inputs = vec![input(t0, &[1; 250]), (t0, Item::Eof)];
        let out = Sim::new(at(t0, 100_000)).run(&mut b, t0, inputs);
        let got: Vec<f64> = out.iter().map(|(t, _)| ms_after(t0, *t)).collect();
        assert_eq!(got, vec![100.0, 200.0, 250.0, 250.0]);
        assert_eq!(out.last().unwrap().1, Out::Item(Item::Eof));

        let mut b = Bandwidth::new(0);
        let out = Sim::new(at(t0, 100_000)).run(&mut b, t0, vec![(t0, Item::Eof)]);
        assert_eq!(out, vec![(t0, Out::Item(Item::Eof))]);
    }

    #[test]
    fn rate_zero_holds_data_until_drained() {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(0);
        let inputs = vec![input(t0, b"held"), input(at(t0, 1), b"next")];
        let out = Sim::new(at(t0, 1_000_000)).run(&mut b, t0, inputs);
        assert!(out.is_empty());
        assert!(!b.can_accept());
        assert_eq!(b.poll(far_later(t0)), Poll::Idle);
        assert_eq!(b.drain(), VecDeque::from([data(b"held", t0)]));
        assert!(b.can_accept());
        assert!(b.drain().is_empty());
    }

    fn far_later(t0: Instant) -> Instant {
        t0 + Duration::from_secs(86400 * 365)
    }

    #[test]
    fn negative_rate_holds_like_zero() {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(-5);
        b.push(data(b"x", t0), t0);
        assert_eq!(b.poll(far_later(t0)), Poll::Idle);
        assert_eq!(b.drain(), VecDeque::from([data(b"x", t0)]));
    }

    #[test]
    fn huge_rate_does_not_overflow() {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(i64::MAX);
        let p = pattern(KIB32, 3);
        b.push(data(&p, t0), t0);
        assert_eq!(b.poll(t0), Poll::Ready(data(&p, t0)));
        b.push(data(&[], t0), t0);
        assert_eq!(b.poll(t0), Poll::Ready(data(&[], t0)));
    }

    #[test]
    fn drain_returns_the_rest_of_a_partly_sent_chunk() {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(1);
        let p = pattern(250, 9);
        b.push(data(&p, t0), t0);
        assert_eq!(b.poll(at(t0, 100)), Poll::Ready(data(&p[..100], t0)));
        assert_eq!(b.drain(), VecDeque::from([data(&p[100..], t0)]));
        assert_eq!(b.poll(at(t0, 200)), Poll::Idle);
    }

    #[test]
    fn update_keeps_held_data_and_applies_new_rate() {
        let t0 = Instant::now();
        let mut b = Bandwidth::new(0);
        let p = pattern(1000, 2);
        b.push(data(&p, t0), t0);
        assert_eq!(b.poll(at(t0, 5000)), Poll::Idle);
        b.update(
            &crate::toxics::kind("latency").with("latency", 1).with("jitter", 0),
            at(t0, 5000),
        );
        assert_eq!(b.poll(at(t0, 5000)), Poll::Idle);
        b.update(&crate::toxics::kind("bandwidth").with("rate", 2), at(t0, 5000));
        // 1000 bytes at 2 bytes/ms: pieces of 200 bytes every 100 ms from the update.
        let mut got = Vec::new();
        let mut now = at(t0, 5000);
        loop {
            match b.poll(now) {
                Poll::Ready(Item::Data(c)) => {
                    got.extend_from_slice(&c.data);
                    if got.len() == 600 {
                        assert_eq!(now, at(t0, 5300));
                        // Slow down mid-chunk: the rest (400 bytes) paces at 1 byte/ms.
                        b.update(&crate::toxics::kind("bandwidth").with("rate", 1), now);
                    }
                }
                Poll::Wait(t) => now = t,
                Poll::Idle => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, p);
        assert_eq!(now, at(t0, 5700));
        // Same rate again: nothing changes.
        b.push(data(&[0; 10], now), now);
        b.update(&crate::toxics::kind("bandwidth").with("rate", 1), at(t0, 5705));
        assert_eq!(b.poll(at(t0, 5705)), Poll::Wait(at(t0, 5710)));
    }
}
