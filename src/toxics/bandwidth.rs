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
//! `scope: "proxy"` (shown only when set; `"connection"` is the default) gives one `rate`
//! for all connections of the proxy in the toxic's direction: each stage cuts its chunks into
//! pieces of about 8 ms of the rate, reserves a slot for each on the toxic's [`SharedRate`]
//! timeline and releases it when its slot ends. A stage keeps only a few milliseconds of the
//! rate reserved, so busy connections take turns and share the rate evenly.
//!
//! `rate <= 0` holds the data until the rate is raised or the toxic is removed. An
//! end-of-stream marker passes straight through (nothing can be held ahead of it).
//! `update` keeps the held data; a changed rate applies to it from the moment of the update.

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

use std::sync::Arc;

use super::{add_saturating, Chunk, Item, Poll, SharedRate, Toxic, ToxicRng};
use crate::model::{AttrDef, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("bandwidth", "BandwidthToxic")
    .summary("limit the transfer rate")
    .attrs(&[AttrDef::int("rate")
        .unit("KB/s")
        .at_least(0)
        .range_note("KB/s; 0 holds all data")
        .help("1 KB = 1000 bytes; 0 holds all data until the toxic is removed"),
        AttrDef::one_of("scope", &["connection", "proxy"])
            .when_set()
            .unit("name")
            .help("connection (default): the rate is per connection; proxy: all connections of the proxy in this direction share it")]);

pub fn build(kind: &ToxicKind, _rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    let mut b = Bandwidth::new(kind.int("rate"));
    b.proxy_scope = proxy_scope(kind);
    Box::new(b)
}

fn proxy_scope(kind: &ToxicKind) -> bool {
    kind.str("scope") == Some("proxy")
}

/// The most bytes one reservation on a shared timeline covers: 8 ms of the rate (at least
/// one 1460-byte segment), so turns are short and shares even also at low rates.
fn shared_piece(rate: i64) -> usize {
    let ms8 = (rate.max(1) as u128 * 8).min(usize::MAX as u128) as usize;
    ms8.max(1460).min(piece_size(rate))
}

/// Milliseconds of the rate a stage may keep reserved on a shared timeline.
const SHARED_AHEAD_MS: u128 = 4;

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
    /// `scope: "proxy"`: pace on the toxic's shared timeline instead.
    proxy_scope: bool,
    shared: Option<Arc<SharedRate>>,
    /// Proxy scope: pieces with reserved slots, each leaving when its slot ends.
    queue: VecDeque<(Instant, Item)>,
    /// Data bytes in `queue`.
    queued: usize,
    /// When the last reserved slot ends (an end-of-stream marker leaves then).
    last_due: Option<Instant>,
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
            proxy_scope: false,
            shared: None,
            queue: VecDeque::new(),
            queued: 0,
            last_due: None,
        }
    }

    /// A stage pacing on `shared` (`scope: "proxy"`).
    #[cfg(test)]
    pub fn shared(rate: i64, shared: Arc<SharedRate>) -> Bandwidth {
        let mut b = Bandwidth::new(rate);
        b.proxy_scope = true;
        b.shared = Some(shared);
        b
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

    /// Proxy scope: reserves slots on the shared timeline for the held chunk, in pieces,
    /// while less than [`Bandwidth::queue_limit`] is reserved, and queues them; each piece
    /// leaves when its slot ends.
    fn reserve_held(&mut self, shared: &SharedRate, now: Instant) {
        let rate = self.rate;
        if rate <= 0 {
            return;
        }
        let limit = self.queue_limit();
        match &mut self.held {
            None => {}
            Some(Held::Eof) => {
                self.held = None;
                self.queue.push_back((self.last_due.unwrap_or(now), Item::Eof));
            }
            Some(Held::Data { data, ts, .. }) => {
                // Only a few milliseconds ahead: the rest waits, so links take short turns.
                while !data.is_empty() && self.queued < limit {
                    let n = data.len().min(shared_piece(rate));
                    let piece = data.split_to(n);
                    let due = shared.reserve(cost(n, rate), now, MAX_CREDIT);
                    self.last_due = Some(due);
                    self.queued += n;
                    self.queue.push_back((due, Item::Data(Chunk { data: piece, ts: *ts })));
                }
                if data.is_empty() {
                    self.held = None;
                }
            }
        }
    }

    /// Proxy scope: the front of the queue once its slot has ended.
    fn poll_queue(&mut self, now: Instant) -> Poll {
        match self.queue.front() {
            None => Poll::Idle,
            Some((due, _)) if *due > now => Poll::Wait(*due),
            Some(_) => {
                let (_, item) = self.queue.pop_front().expect("front checked");
                if let Item::Data(c) = &item {
                    self.queued -= c.data.len();
                }
                Poll::Ready(item)
            }
        }
    }

    /// The most bytes a stage keeps reserved on a shared timeline: enough for a few
    /// milliseconds of the whole rate, so the busy links keep the timeline ahead of the
    /// clock across timer granularity and take turns one reservation at a time.
    fn queue_limit(&self) -> usize {
        let ahead = (self.rate.max(0) as u128 * SHARED_AHEAD_MS).min(usize::MAX as u128) as usize;
        ahead.max(2 * 1460)
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
        if self.proxy_scope && self.shared.is_some() {
            self.held.is_none() && self.queued < self.queue_limit()
        } else {
            self.held.is_none() && self.queue.is_empty()
        }
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
        if self.proxy_scope {
            if let Some(shared) = self.shared.clone() {
                self.reserve_held(&shared, now);
            }
        }
        // Reserved pieces (proxy scope, or left from it) go first.
        if !self.queue.is_empty() {
            return self.poll_queue(now);
        }
        let rate = self.rate;
        match self.held {
            None => return Poll::Idle,
            Some(Held::Eof) => {
                self.held = None;
                return Poll::Ready(Item::Eof);
            }
            Some(Held::Data { .. }) => {}
        }
        if rate <= 0 {
            return Poll::Idle;
        }
        let Some(Held::Data { data, ts, start }) = self.held.as_mut() else {
            return Poll::Idle;
        };
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
        let scope = proxy_scope(kind);
        if rate == self.rate && scope == self.proxy_scope {
            return;
        }
        self.rate = rate;
        self.proxy_scope = scope;
        self.credit = Duration::ZERO;
        self.last = None;
        if let Some(Held::Data { start, .. }) = self.held.as_mut() {
            *start = now;
        }
    }

    fn share(&mut self, shared: &Arc<SharedRate>) {
        self.shared = Some(shared.clone());
    }

    fn drain(&mut self) -> VecDeque<Item> {
        self.credit = Duration::ZERO;
        self.last = None;
        self.queued = 0;
        let mut out: VecDeque<Item> = self.queue.drain(..).map(|(_, item)| item).collect();
        match self.held.take() {
            None => {}
            Some(Held::Eof) => out.push_back(Item::Eof),
            Some(Held::Data { data, ts, .. }) => out.push_back(Item::Data(Chunk { data, ts })),
        }
        out
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

    /// Four stages sharing one timeline, each fed 32 KiB chunks back to back, driven on a
    /// virtual clock with timers rounded up to the next millisecond and a write-then-read
    /// gap; returns the bytes each sent in `secs` simulated seconds.
    fn shared_run(rate: i64, secs: u64, gap: Duration) -> [usize; 4] {
        let t0 = Instant::now();
        let shared = Arc::new(SharedRate::new());
        let mut stages: Vec<Bandwidth> = (0..4)
            .map(|_| Bandwidth::shared(rate, shared.clone()))
            .collect();
        let mut sent = [0usize; 4];
        // Start the links a little apart.
        let mut wake: Vec<Instant> = (0..4).map(|i| t0 + Duration::from_micros(i * 37)).collect();
        let end = t0 + Duration::from_secs(secs);
        loop {
            let i = (0..4).min_by_key(|&i| wake[i]).unwrap();
            let now = wake[i];
            if now >= end {
                return sent;
            }
            let b = &mut stages[i];
            // Read (push) whenever the stage takes more, write whatever is due.
            let now = now + gap;
            loop {
                if b.can_accept() {
                    b.push(data(&[0; KIB32], now), now);
                }
                match b.poll(now) {
                    Poll::Ready(Item::Data(c)) => sent[i] += c.data.len(),
                    Poll::Wait(t) if !b.can_accept() => {
                        let ms = t.duration_since(t0).as_nanos().div_ceil(1_000_000) as u64;
                        wake[i] = t0 + Duration::from_millis(ms);
                        break;
                    }
                    Poll::Wait(_) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }

    #[test]
    fn proxy_scope_shares_one_rate_fairly() {
        for (rate, secs) in [(100, 20), (1000, 4), (100_000, 2), (500_000, 2)] {
            for gap in [Duration::from_micros(20), Duration::from_micros(400)] {
                let sent = shared_run(rate, secs, gap);
                let total: usize = sent.iter().sum();
                let want = rate as f64 * 1000.0 * secs as f64;
                assert!(
                    (total as f64 / want - 1.0).abs() < 0.02,
                    "rate {rate} gap {gap:?}: {total} bytes, want {want}"
                );
                for s in sent {
                    assert!(
                        (s as f64 / (want / 4.0) - 1.0).abs() < 0.10,
                        "rate {rate} gap {gap:?}: unfair {sent:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn scope_is_shown_only_when_set_and_switches_live() {
        let plain = crate::toxics::kind("bandwidth").with("rate", 1);
        assert_eq!(plain.attributes().count(), 1);
        let bad = plain.clone().with("scope", "global");
        assert!(bad.validate().unwrap_err().starts_with("scope must be one of"));
        // A stage starts per connection and moves to the shared timeline on update.
        let t0 = Instant::now();
        let shared = Arc::new(SharedRate::new());
        // Another connection has taken the next second of the shared timeline.
        shared.reserve(Duration::from_secs(1), t0, MAX_CREDIT);
        let mut b = Bandwidth::new(1);
        b.share(&shared);
        b.push(data(&[0; 10], t0), t0);
        assert_eq!(b.poll(t0), Poll::Wait(at(t0, 10)));
        b.update(&plain.with("scope", "proxy"), t0);
        assert_eq!(b.poll(t0), Poll::Wait(at(t0, 1010)));
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
