//! `latency`: delays each chunk by `latency ± jitter` ms, measured from when it was read.
//!
//! For each chunk, in arrival order, `delay = latency + j` ms where `j` is drawn per chunk
//! uniformly over `[-jitter, jitter - 1]` (0 when `jitter <= 0`). When the chunk is pushed,
//! `sleep = delay - (now - chunk.ts)`; it is released at `now + sleep` (at once when
//! `sleep <= 0`) and its timestamp is moved forward by `sleep`, so stacked latency toxics add
//! up. Because the delay counts from the read time, pipelined writes do not pile up delay.
//! Chunks always leave in arrival order: one whose deadline has already passed goes right
//! after the one before it. An end-of-stream marker leaves right after the chunks ahead of
//! it, with no delay of its own. Up to [`BUFFER`] items are queued.
//!
//! Huge values saturate ("forever"); negative delays mean none.
//!
//! `distribution` (shown only when set) shapes the jitter as tc netem does, scaled by
//! `jitter`: `uniform` is the draw above; `normal` is `latency + jitter * z` with `z`
//! standard normal; `pareto` uses netem's Pareto table, `z = 4/3 * (u^(-1/3) - 1.5)`
//! (shape 3, shifted to mean 0); `paretonormal` is netem's mix of the two at the same
//! quantile, `(normal + 3 * pareto) / 4`. As in netem's 16-bit tables, `z` is capped at
//! +/-4. `correlation` (0-100, shown only when set) makes each draw depend on the previous
//! one: the draws come from a Gaussian AR(1) sequence with that lag-1 coefficient, mapped
//! onto the distribution through its quantiles, so the distribution itself is unchanged
//! (netem's own correlation narrows it). Every draw comes from the toxic's seeded stream
//! (`rand_distr`'s standard normal on `ToxicRng`), so `-seed` reproduces them; uniform
//! without correlation keeps its integer draw.
//!
//! `update` with changed attributes recomputes the release time of every queued chunk as if
//! it had been pushed under the new attributes (same push time, fresh jitter draw), so
//! lowering a large latency releases held data promptly, much as the reference does when it
//! restarts the stub and re-processes its buffer. An update with unchanged attributes
//! changes nothing. Queued items are kept either way.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

use super::{add_saturating, Item, Poll, Toxic, ToxicRng};
use crate::model::{AttrDef, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("latency", "LatencyToxic")
    .summary("delay all data; each chunk waits latency +/- jitter")
    .attrs(&[
        AttrDef::int("latency").unit("ms").help("the delay"),
        AttrDef::int("jitter").unit("ms").help("random variation, drawn per chunk"),
        AttrDef::one_of("distribution", &["uniform", "normal", "pareto", "paretonormal"])
            .when_set()
            .unit("name")
            .help("shape of the jitter, as tc netem's: uniform (default, +/- jitter), normal (sigma = jitter), pareto, paretonormal"),
        AttrDef::float("correlation")
            .when_set()
            .between_f(0.0, 100.0)
            .unit("percent")
            .help("how much each chunk's jitter depends on the previous one's (0-100)"),
    ]);

pub fn build(kind: &ToxicKind, rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    let mut l = Latency::new(kind.int("latency"), kind.int("jitter"), rng);
    l.shape = Shape::of(kind);
    Box::new(l)
}

/// The jitter's distribution, as tc netem names them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    Uniform,
    Normal,
    Pareto,
    ParetoNormal,
}

/// netem's tables hold `z * 8192` in 16 bits: `|z|` stays below 4.
const Z_CAP: f64 = 32767.0 / 8192.0;

/// The standard normal CDF.
fn phi(g: f64) -> f64 {
    0.5 * libm::erfc(-g / std::f64::consts::SQRT_2)
}

/// netem's Pareto table at quantile `p` (computed from `1 - p` for precision in the tail):
/// shape 3, shifted and scaled to `4/3 * (x - 1.5)`, capped.
fn pareto_z(one_minus_p: f64) -> f64 {
    (4.0 / 3.0 * (one_minus_p.powf(-1.0 / 3.0) - 1.5)).min(Z_CAP)
}

/// How a chunk's jitter is drawn: the distribution and the correlation between draws.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub dist: Distribution,
    /// Lag-1 coefficient, 0..=1.
    pub rho: f64,
    /// The previous Gaussian draw, when correlated.
    last: Option<f64>,
}

impl Shape {
    pub fn new(dist: Distribution, correlation_percent: f64) -> Shape {
        Shape {
            dist,
            rho: (correlation_percent / 100.0).clamp(0.0, 1.0),
            last: None,
        }
    }

    /// The shape a latency toxic's attributes ask for.
    pub fn of(kind: &ToxicKind) -> Shape {
        let dist = match kind.str("distribution") {
            Some("normal") => Distribution::Normal,
            Some("pareto") => Distribution::Pareto,
            Some("paretonormal") => Distribution::ParetoNormal,
            _ => Distribution::Uniform,
        };
        Shape::new(dist, kind.float("correlation"))
    }

    fn same_as(&self, other: &Shape) -> bool {
        self.dist == other.dist && self.rho == other.rho
    }

    /// The next chunk's offset from `latency`, in ms (`jitter > 0`).
    pub fn draw(&mut self, rng: &mut ToxicRng, jitter: i64) -> f64 {
        if self.dist == Distribution::Uniform && self.rho == 0.0 {
            return rng.range(-jitter, jitter) as f64;
        }
        let e = rng.standard_normal();
        let g = match self.last {
            Some(prev) if self.rho > 0.0 => {
                self.rho * prev + (1.0 - self.rho * self.rho).sqrt() * e
            }
            _ => e,
        };
        if self.rho > 0.0 {
            self.last = Some(g);
        }
        let j = jitter as f64;
        let normal = g.clamp(-Z_CAP, Z_CAP);
        let tail = || pareto_z(0.5 * libm::erfc(g / std::f64::consts::SQRT_2));
        j * match self.dist {
            Distribution::Uniform => 2.0 * phi(g) - 1.0,
            Distribution::Normal => normal,
            Distribution::Pareto => tail(),
            Distribution::ParetoNormal => ((normal + 3.0 * tail()) / 4.0).clamp(-Z_CAP, Z_CAP),
        }
    }
}

/// How many items the stage queues before applying backpressure (the reference's channel
/// capacity for latency).
pub const BUFFER: usize = 1024;

/// A latency stage.
pub struct Latency {
    latency: i64,
    jitter: i64,
    shape: Shape,
    rng: ToxicRng,
    queue: VecDeque<Entry>,
}

struct Entry {
    /// The item as pushed (a chunk keeps its original timestamp until it is released).
    item: Item,
    /// When it was pushed.
    pushed: Instant,
    /// When it may leave (it also waits for the entries ahead of it).
    release: Instant,
    /// The chunk's timestamp once released, when its delay was positive.
    new_ts: Option<Instant>,
}

impl Latency {
    pub fn new(latency: i64, jitter: i64, rng: ToxicRng) -> Latency {
        Latency {
            latency,
            jitter,
            shape: Shape::new(Distribution::Uniform, 0.0),
            rng,
            queue: VecDeque::new(),
        }
    }

    /// Draws this chunk's delay and returns (release time, released timestamp).
    fn schedule(&mut self, ts: Instant, pushed: Instant) -> (Instant, Option<Instant>) {
        let j = if self.jitter > 0 {
            self.shape.draw(&mut self.rng, self.jitter)
        } else {
            0.0
        };
        // In ns; `as` saturates a huge float.
        let delay_ns = i128::from(self.latency) * 1_000_000 + (j * 1e6).round() as i128;
        if delay_ns <= 0 {
            return (pushed, None);
        }
        let delay = Duration::from_nanos(delay_ns.min(i128::from(u64::MAX)) as u64);
        let sleep = delay.saturating_sub(pushed.saturating_duration_since(ts));
        if sleep == Duration::ZERO {
            (pushed, None)
        } else {
            (
                add_saturating(pushed, sleep),
                Some(add_saturating(ts, sleep)),
            )
        }
    }
}

impl Toxic for Latency {
    fn can_accept(&self) -> bool {
        self.queue.len() < BUFFER
    }

    fn push(&mut self, item: Item, now: Instant) {
        let (release, new_ts) = match &item {
            Item::Data(chunk) => self.schedule(chunk.ts, now),
            Item::Eof => (now, None),
        };
        self.queue.push_back(Entry {
            item,
            pushed: now,
            release,
            new_ts,
        });
    }

    fn poll(&mut self, now: Instant) -> Poll {
        match self.queue.front() {
            None => Poll::Idle,
            Some(entry) if entry.release > now => Poll::Wait(entry.release),
            Some(_) => {
                let entry = self.queue.pop_front().expect("front checked");
                let mut item = entry.item;
                if let (Item::Data(chunk), Some(ts)) = (&mut item, entry.new_ts) {
                    chunk.ts = ts;
                }
                Poll::Ready(item)
            }
        }
    }

    fn update(&mut self, kind: &ToxicKind, _now: Instant) {
        if !kind.is(&DEF) {
            return;
        }
        let (latency, jitter) = (kind.int("latency"), kind.int("jitter"));
        let shape = Shape::of(kind);
        if (latency, jitter) == (self.latency, self.jitter) && shape.same_as(&self.shape) {
            return;
        }
        self.latency = latency;
        self.jitter = jitter;
        if !shape.same_as(&self.shape) {
            self.shape = shape;
        }
        let mut queue = std::mem::take(&mut self.queue);
        for entry in queue.iter_mut() {
            if let Item::Data(chunk) = &entry.item {
                let (release, new_ts) = self.schedule(chunk.ts, entry.pushed);
                entry.release = release;
                entry.new_ts = new_ts;
            }
        }
        self.queue = queue;
    }

    fn drain(&mut self) -> VecDeque<Item> {
        self.queue.drain(..).map(|entry| entry.item).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::test_util::{at, bytes_of, data, input, Out, Sim};
    use crate::toxics::{far_future, Chunk};
    use bytes::Bytes;

    fn lat(latency: i64, jitter: i64) -> Latency {
        Latency::new(latency, jitter, ToxicRng::new(7))
    }

    fn ms_after(t0: Instant, t: Instant) -> u64 {
        t.duration_since(t0).as_millis() as u64
    }

    #[test]
    fn delays_each_chunk_from_its_read_time() {
        let t0 = Instant::now();
        let mut l = lat(100, 0);
        let out = Sim::new(at(t0, 10_000)).run(&mut l, t0, vec![input(t0, b"abc")]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, at(t0, 100));
        match &out[0].1 {
            Out::Item(Item::Data(c)) => {
                assert_eq!(c.data, Bytes::from_static(b"abc"));
                assert_eq!(c.ts, at(t0, 100), "timestamp moves forward by the sleep");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn pipelined_writes_do_not_pile_up() {
        let t0 = Instant::now();
        let mut l = lat(500, 0);
        let inputs = (0..5)
            .map(|i| input(at(t0, i * 100), &[b'a' + i as u8]))
            .collect();
        let out = Sim::new(at(t0, 10_000)).run(&mut l, t0, inputs);
        let times: Vec<u64> = out.iter().map(|(t, _)| ms_after(t0, *t)).collect();
        assert_eq!(times, vec![500, 600, 700, 800, 900]);
        assert_eq!(bytes_of(&out), b"abcde");
    }

    #[test]
    fn time_already_spent_counts_toward_the_delay() {
        let t0 = Instant::now();
        let mut l = lat(100, 0);
        // Read at t0, but pushed only 30 ms later: 70 ms left, ts moves by 70 ms.
        l.push(data(b"x", t0), at(t0, 30));
        assert_eq!(l.poll(at(t0, 30)), Poll::Wait(at(t0, 100)));
        match l.poll(at(t0, 100)) {
            Poll::Ready(Item::Data(c)) => assert_eq!(c.ts, at(t0, 70)),
            other => panic!("unexpected {other:?}"),
        }
        // Read 200 ms before the push: already late, goes at once with its ts unchanged.
        l.push(data(b"y", t0), at(t0, 200));
        assert_eq!(l.poll(at(t0, 200)), Poll::Ready(data(b"y", t0)));
        assert_eq!(l.poll(at(t0, 200)), Poll::Idle);
    }

    #[test]
    fn stacked_latency_adds_up() {
        let t0 = Instant::now();
        let mut a = lat(500, 0);
        let mut b = lat(500, 0);
        let inputs = vec![input(t0, b"one"), input(at(t0, 100), b"two")];
        let out = Sim::new(at(t0, 10_000)).run_chain(&mut [&mut a, &mut b], t0, inputs);
        let times: Vec<u64> = out.iter().map(|(t, _)| ms_after(t0, *t)).collect();
        assert_eq!(times, vec![1000, 1100]);
        assert_eq!(bytes_of(&out), b"onetwo");
    }

    #[test]
    fn stacked_latency_adds_up_with_late_timers() {
        let t0 = Instant::now();
        let mut a = lat(500, 0);
        let mut b = lat(500, 0);
        let out = Sim::late(at(t0, 10_000), Duration::from_millis(2)).run_chain(
            &mut [&mut a, &mut b],
            t0,
            vec![input(t0, b"x")],
        );
        let t = ms_after(t0, out[0].0);
        assert!((1000..=1004).contains(&t), "arrived at {t} ms");
    }

    #[test]
    fn eof_follows_queued_chunks_without_delay_of_its_own() {
        let t0 = Instant::now();
        let mut l = lat(300, 0);
        let inputs = vec![
            input(t0, b"a"),
            input(at(t0, 50), b"b"),
            (at(t0, 60), Item::Eof),
        ];
        let out = Sim::new(at(t0, 10_000)).run(&mut l, t0, inputs);
        let got: Vec<(u64, Out)> = out.into_iter().map(|(t, o)| (ms_after(t0, t), o)).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, 300);
        assert_eq!(got[1].0, 350);
        assert_eq!(got[2], (350, Out::Item(Item::Eof)));

        // EOF with nothing queued goes at once.
        let mut l = lat(300, 0);
        let out = Sim::new(at(t0, 10_000)).run(&mut l, t0, vec![(at(t0, 5), Item::Eof)]);
        assert_eq!(out, vec![(at(t0, 5), Out::Item(Item::Eof))]);
    }

    #[test]
    fn zero_and_negative_latency_mean_no_delay() {
        let t0 = Instant::now();
        for (latency, jitter) in [(0, 0), (-5, 0), (i64::MIN, 0), (10, 20), (10, 11), (-1, -1)] {
            let mut l = lat(latency, jitter);
            if jitter > latency {
                // Only the draws below -latency are non-positive; force many chunks and
                // check nothing is ever delayed more than latency + jitter - 1.
                for i in 0..200 {
                    l.push(data(&[i as u8], t0), t0);
                }
                let mut t = t0;
                let mut n = 0;
                loop {
                    match l.poll(t) {
                        Poll::Ready(_) => n += 1,
                        Poll::Wait(w) => {
                            assert!(w <= at(t0, (latency + jitter - 1) as u64));
                            t = w;
                        }
                        Poll::Idle => break,
                        Poll::Close(_) => unreachable!(),
                    }
                }
                assert_eq!(n, 200);
            } else {
                l.push(data(b"x", t0), t0);
                assert_eq!(
                    l.poll(t0),
                    Poll::Ready(data(b"x", t0)),
                    "{latency}/{jitter}"
                );
            }
        }
    }

    #[test]
    fn negative_jitter_is_ignored() {
        let t0 = Instant::now();
        let mut l = lat(100, -50);
        for _ in 0..20 {
            l.push(data(b"x", t0), t0);
            assert_eq!(l.poll(t0), Poll::Wait(at(t0, 100)));
            assert!(matches!(l.poll(at(t0, 100)), Poll::Ready(_)));
        }
    }

    #[test]
    fn jitter_stays_in_range_and_keeps_order() {
        let t0 = Instant::now();
        let mut l = lat(100, 50);
        let mut seen = std::collections::BTreeSet::new();
        let n = 2000;
        let inputs: Vec<_> = (0..n)
            .map(|i| input(t0, &(i as u32).to_be_bytes()))
            .collect();
        // Draw the per-chunk delays directly from pushes at t0.
        for (_, item) in &inputs {
            l.push(item.clone(), t0);
            let entry = l.queue.back().expect("just pushed");
            seen.insert(entry.release.duration_since(t0).as_millis() as u64);
        }
        assert_eq!(*seen.first().unwrap(), 50);
        assert_eq!(*seen.last().unwrap(), 149);
        assert!(seen.len() > 90, "jitter covers the range");

        let mut l = lat(100, 50);
        let inputs: Vec<_> = (0..n)
            .map(|i| input(at(t0, i), &(i as u32).to_be_bytes()))
            .collect();
        let out = Sim::new(at(t0, 100_000)).run(&mut l, t0, inputs);
        let expect: Vec<u8> = (0..n as u32).flat_map(|i| i.to_be_bytes()).collect();
        assert_eq!(bytes_of(&out), expect, "order kept");
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
        for (i, (t, _)) in out.iter().enumerate() {
            let d = ms_after(t0, *t) as i64 - i as i64;
            assert!(d <= 149, "chunk {i} delayed {d} ms");
        }
    }

    #[test]
    fn same_seed_same_jitter() {
        let t0 = Instant::now();
        let run = |seed: u64| {
            let mut l = Latency::new(1000, 500, ToxicRng::new(seed));
            let inputs = (0..100).map(|i| input(at(t0, i * 10), b"z")).collect();
            Sim::new(at(t0, 100_000)).run(&mut l, t0, inputs)
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn huge_values_mean_forever_without_overflow() {
        let t0 = Instant::now();
        for (latency, jitter) in [(i64::MAX, 0), (i64::MAX, i64::MAX), (i64::MAX - 1, 5)] {
            let mut l = lat(latency, jitter);
            let mut waited = 0;
            for _ in 0..50 {
                l.push(data(b"x", t0), t0);
            }
            loop {
                match l.poll(at(t0, 1000)) {
                    Poll::Wait(w) => {
                        // The first chunk still queued is due in (practically) forever.
                        assert!(w >= t0 + Duration::from_secs(86400 * 365 * 10));
                        waited += 1;
                        break;
                    }
                    Poll::Ready(_) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(waited, 1);
            assert!(!l.drain().is_empty());
        }
        // Forever on an already-stacked timestamp.
        let mut l = lat(i64::MAX, 0);
        l.push(data(b"x", far_future(t0)), t0);
        assert!(matches!(l.poll(t0), Poll::Wait(_)));
    }

    #[test]
    fn extreme_jitter_values_do_not_panic() {
        let t0 = Instant::now();
        for (latency, jitter) in [(0, i64::MAX), (i64::MIN, i64::MAX), (i64::MAX, i64::MIN)] {
            let mut l = lat(latency, jitter);
            for _ in 0..100 {
                l.push(data(b"x", t0), t0);
            }
            let _ = l.poll(t0);
            l.update(
                &crate::toxics::kind("latency").with("latency", jitter).with("jitter", latency),
                t0,
            );
            let _ = l.poll(at(t0, 1));
        }
    }

    #[test]
    fn buffer_holds_1024_items() {
        let t0 = Instant::now();
        let mut l = lat(1000, 0);
        for i in 0..BUFFER {
            assert!(l.can_accept(), "item {i}");
            l.push(data(b"x", t0), t0);
        }
        assert!(!l.can_accept());
        assert_eq!(l.poll(t0), Poll::Wait(at(t0, 1000)));
        assert!(matches!(l.poll(at(t0, 1000)), Poll::Ready(_)));
        assert!(l.can_accept());
    }

    #[test]
    fn drain_returns_everything_in_order_with_original_timestamps() {
        let t0 = Instant::now();
        let mut l = lat(1000, 100);
        let items: Vec<Item> = (0..10u8).map(|i| data(&[i], at(t0, i as u64))).collect();
        for (i, item) in items.iter().enumerate() {
            l.push(item.clone(), at(t0, i as u64));
        }
        l.push(Item::Eof, at(t0, 20));
        let mut expect: VecDeque<Item> = items.into();
        expect.push_back(Item::Eof);
        assert_eq!(l.drain(), expect);
        assert_eq!(l.poll(at(t0, 5000)), Poll::Idle);
        assert!(l.drain().is_empty());
    }

    #[test]
    fn update_keeps_queued_chunks_and_applies_new_values() {
        let t0 = Instant::now();
        let mut l = lat(10_000, 0);
        l.push(data(b"a", t0), t0);
        l.push(data(b"b", at(t0, 100)), at(t0, 100));
        assert_eq!(l.poll(at(t0, 200)), Poll::Wait(at(t0, 10_000)));

        // Unrelated kinds are ignored.
        l.update(&crate::toxics::kind("bandwidth").with("rate", 1), at(t0, 200));
        assert_eq!(l.poll(at(t0, 200)), Poll::Wait(at(t0, 10_000)));

        // Lowering the latency re-schedules held chunks from their push time.
        l.update(
            &crate::toxics::kind("latency").with("latency", 150).with("jitter", 0),
            at(t0, 200),
        );
        match l.poll(at(t0, 200)) {
            Poll::Ready(Item::Data(c)) => assert_eq!(
                c,
                Chunk {
                    data: "a".into(),
                    ts: at(t0, 150)
                }
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(l.poll(at(t0, 200)), Poll::Wait(at(t0, 250)));
        l.push(data(b"c", at(t0, 210)), at(t0, 210));
        assert!(matches!(l.poll(at(t0, 250)), Poll::Ready(Item::Data(c)) if c.data == "b"));
        assert_eq!(l.poll(at(t0, 250)), Poll::Wait(at(t0, 360)));
        assert!(matches!(l.poll(at(t0, 360)), Poll::Ready(Item::Data(c)) if c.data == "c"));

        // Raising it delays chunks that were already due but not yet polled.
        l.push(data(b"d", at(t0, 400)), at(t0, 400));
        l.update(
            &crate::toxics::kind("latency").with("latency", 1000).with("jitter", 0),
            at(t0, 500),
        );
        assert_eq!(l.poll(at(t0, 600)), Poll::Wait(at(t0, 1400)));
    }

    #[test]
    fn update_with_same_values_changes_nothing() {
        let t0 = Instant::now();
        let mut l = lat(100, 50);
        l.push(data(b"a", t0), t0);
        let before = l.queue[0].release;
        l.update(
            &crate::toxics::kind("latency").with("latency", 100).with("jitter", 50),
            at(t0, 10),
        );
        assert_eq!(l.queue[0].release, before);
    }
}

#[cfg(test)]
mod distribution_tests {
    use super::*;

    const N: usize = 10_000;
    const JITTER: i64 = 20;

    fn draws(dist: Distribution, correlation: f64, seed: u64) -> Vec<f64> {
        let mut shape = Shape::new(dist, correlation);
        let mut rng = ToxicRng::new(seed);
        (0..N).map(|_| shape.draw(&mut rng, JITTER)).collect()
    }

    fn quantile(sorted: &[f64], p: f64) -> f64 {
        sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
    }

    /// netem's definitions, written out independently of the sampler: the inverse CDF at
    /// `p`, in units of `jitter`.
    fn netem_z(dist: Distribution, p: f64) -> f64 {
        // Standard normal quantiles at the probabilities the tests use.
        let normal = match p {
            0.5 => 0.0,
            0.9 => 1.281_551_6,
            0.99 => 2.326_347_9,
            _ => unreachable!(),
        };
        // Pareto, shape 3: x = (1 - p)^(-1/3); the table holds 4/3 (x - 1.5), capped at
        // 32767 / 8192.
        let pareto = (4.0 / 3.0 * ((1.0 - p).powf(-1.0 / 3.0) - 1.5)).min(32767.0 / 8192.0);
        match dist {
            Distribution::Uniform => 2.0 * p - 1.0,
            Distribution::Normal => normal,
            Distribution::Pareto => pareto,
            Distribution::ParetoNormal => (normal + 3.0 * pareto) / 4.0,
        }
    }

    fn check_quantiles(dist: Distribution, correlation: f64, slack: f64) {
        let mut d = draws(dist, correlation, 11);
        d.sort_by(f64::total_cmp);
        for p in [0.5, 0.9, 0.99] {
            let want = netem_z(dist, p) * JITTER as f64;
            let got = quantile(&d, p);
            // 5 % of the value or 1 ms (the contract), times `slack`.
            let tol = (want.abs() * 0.05).max(1.0) * slack;
            assert!(
                (got - want).abs() <= tol,
                "{dist:?} correlation {correlation}: p{} is {got:.3} ms, netem's {want:.3} ms",
                p * 100.0
            );
        }
    }

    #[test]
    fn quantiles_match_netem() {
        for dist in [
            Distribution::Uniform,
            Distribution::Normal,
            Distribution::Pareto,
            Distribution::ParetoNormal,
        ] {
            check_quantiles(dist, 0.0, 1.0);
        }
    }

    #[test]
    fn netem_table_points() {
        // A few entries of the tables iproute2 generates (value / 8192), recomputed from
        // its definitions: the Pareto table's median is 4/3 (2^(1/3) - 1.5).
        assert!((netem_z(Distribution::Pareto, 0.5) - -0.320_13).abs() < 1e-4);
        assert!((netem_z(Distribution::Pareto, 0.99) - 3.999_88).abs() < 1e-4);
        assert!((netem_z(Distribution::ParetoNormal, 0.9) - 0.974_8).abs() < 1e-3);
        // The sampler's own tail transform agrees with them.
        assert!((pareto_z(0.5) - netem_z(Distribution::Pareto, 0.5)).abs() < 1e-12);
        assert!((pareto_z(0.1) - netem_z(Distribution::Pareto, 0.9)).abs() < 1e-12);
    }

    fn lag1(x: &[f64]) -> f64 {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var: f64 = x.iter().map(|v| (v - mean).powi(2)).sum();
        let cov: f64 = x.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum();
        cov / var
    }

    #[test]
    fn correlation_is_the_lag1_autocorrelation() {
        for dist in [
            Distribution::Uniform,
            Distribution::Normal,
            Distribution::Pareto,
            Distribution::ParetoNormal,
        ] {
            let r0 = lag1(&draws(dist, 0.0, 5));
            assert!(r0.abs() < 0.04, "{dist:?} uncorrelated: lag-1 {r0:.3}");
            for c in [25.0, 50.0, 90.0] {
                let r = lag1(&draws(dist, c, 5));
                // The heavy Pareto tail pulls its linear correlation a little lower.
                let tol = if dist == Distribution::Pareto { 0.1 } else { 0.05 };
                assert!(
                    (r - c / 100.0).abs() < tol,
                    "{dist:?} correlation {c}: lag-1 {r:.3}"
                );
            }
        }
    }

    #[test]
    fn correlation_keeps_the_distribution() {
        // Correlated draws wander, so 10,000 of them pin the quantiles less tightly.
        for dist in [Distribution::Normal, Distribution::ParetoNormal] {
            check_quantiles(dist, 50.0, 2.0);
        }
    }

    #[test]
    fn delays_are_never_negative_and_order_is_kept() {
        let t0 = Instant::now();
        for d in ["normal", "pareto", "paretonormal", "uniform"] {
            let kind = crate::toxics::kind("latency")
                .with("latency", 5)
                .with("jitter", 50)
                .with("distribution", d)
                .with("correlation", 30.0);
            let mut l = build(&kind, ToxicRng::new(3), t0);
            let mut out = Vec::new();
            let mut now = t0;
            for i in 0..2000u32 {
                l.push(
                    Item::Data(crate::toxics::Chunk {
                        data: bytes::Bytes::copy_from_slice(&i.to_be_bytes()),
                        ts: now,
                    }),
                    now,
                );
                while let Poll::Ready(Item::Data(c)) = l.poll(now) {
                    out.extend_from_slice(&c.data);
                }
                now += Duration::from_micros(500);
            }
            loop {
                match l.poll(now) {
                    Poll::Ready(Item::Data(c)) => out.extend_from_slice(&c.data),
                    Poll::Wait(t) => {
                        assert!(t >= now);
                        now = t;
                    }
                    _ => break,
                }
            }
            let expect: Vec<u8> = (0..2000u32).flat_map(|i| i.to_be_bytes()).collect();
            assert_eq!(out, expect, "{d}: every byte, in order");
        }
    }

    #[test]
    fn same_seed_same_draws() {
        for dist in [Distribution::Normal, Distribution::ParetoNormal] {
            assert_eq!(draws(dist, 40.0, 9), draws(dist, 40.0, 9));
            assert_ne!(draws(dist, 40.0, 9), draws(dist, 40.0, 10));
        }
    }

    #[test]
    fn new_attributes_show_only_when_set() {
        let plain = crate::toxics::kind("latency").with("latency", 1);
        let names: Vec<_> = plain.attributes().map(|(a, _)| a.name).collect();
        assert_eq!(names, ["latency", "jitter"]);
        let set = plain.with("distribution", "pareto").with("correlation", 10.0);
        let names: Vec<_> = set.attributes().map(|(a, _)| a.name).collect();
        assert_eq!(names, ["latency", "jitter", "distribution", "correlation"]);
        assert!(set.validate().is_ok());
        let bad = crate::toxics::kind("latency").with("correlation", 101.0);
        assert_eq!(
            bad.validate().unwrap_err(),
            "correlation must be between 0 and 100"
        );
        let bad = crate::toxics::kind("latency").with("distribution", "gauss");
        assert!(bad.validate().unwrap_err().starts_with("distribution must be one of"));
    }
}
