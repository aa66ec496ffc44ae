//! The toxic chain of one link: an ordered list of [`Stage`]s, one per toxic, plus the
//! items that have passed them all and wait to be written. The link's task drives it
//! ([`Pipeline::pump`]) and edits it in place when the chain changes ([`Pipeline::apply`]);
//! it never touches a socket, so tests can drive it on a simulated clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use tokio::time::Instant;

use super::chain::{mix, roll, targets_client, ChainEntry};
use crate::model::Clients;
use crate::toxics::{self, Chunk, CloseKind, Item, Poll, Toxic};
use std::net::IpAddr;

/// The link task's view of time: the `now` it hands to toxics, and when to arm its timer.
///
/// * `now` never goes backwards.
/// * A toxic's wait never ends early: a 2000 ms latency is never 1999 ms, which tests of
///   the form `elapsed >= latency` notice. The link waits for a deadline on a
///   [`PreciseTimer`](super::timer::PreciseTimer), which returns only once it has passed, typically within
///   tens of microseconds (tokio's own timer rounds up to its next millisecond tick).
///
/// The link task and the toxic tests' simulated driver share this, so the tests see the
/// wake-up rules production runs.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    last: Option<Instant>,
}

impl Clock {
    /// The `now` for the next step, given the real time.
    pub(crate) fn now(&mut self, real: Instant) -> Instant {
        let now = self.last.map_or(real, |last| real.max(last));
        self.last = Some(now);
        now
    }

    /// When to wake for `deadline` (what [`Pipeline::pump`] returned); `None` means no
    /// timer.
    pub(crate) fn timer(&mut self, deadline: Option<Instant>, _now: Instant) -> Option<Instant> {
        deadline
    }

    /// The timer armed by the last [`Clock::timer`] fired.
    pub(crate) fn fired(&mut self) {}
}

/// The stages of a link plus the items that have passed them all.
pub(crate) struct Pipeline<'t> {
    pub(crate) stages: Vec<Stage<'t>>,
    /// Items out of the last stage, waiting to be written.
    pub(crate) out: VecDeque<Item>,
    /// Bytes of `out.front()` already written.
    pub(crate) out_pos: usize,
    /// Set when a toxic asked to close while later stages still held data: the stages up
    /// to it are gone, an end-of-stream marker follows the data through the rest, and the
    /// connection closes this way when that marker comes out.
    closing: Option<CloseKind>,
    /// Bytes of data read into this pipeline and not yet dropped (written, cut off by a
    /// toxic or discarded), shared with every chunk's buffer.
    held: Arc<AtomicUsize>,
    /// The connection's client address, for toxics that target clients.
    client: Option<IpAddr>,
}

impl Pipeline<'static> {
    /// A pipeline with one fresh stage per entry of `chain`, attached at `now`.
    #[cfg(test)]
    pub(crate) fn new(chain: &[ChainEntry], seed: u64, now: Instant) -> Pipeline<'static> {
        Pipeline::for_client(chain, seed, None, now)
    }

    /// [`Pipeline::new`] for a connection from `client`: toxics that target clients are
    /// active only when it matches.
    pub(crate) fn for_client(
        chain: &[ChainEntry],
        seed: u64,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Pipeline<'static> {
        let stages = chain
            .iter()
            .map(|e| Stage::new(e, seed, client, now))
            .collect();
        let mut pipe = Pipeline::from_stages(stages);
        pipe.client = client;
        pipe
    }
}

impl<'t> Pipeline<'t> {
    pub(crate) fn from_stages(stages: Vec<Stage<'t>>) -> Pipeline<'t> {
        Pipeline {
            stages,
            out: VecDeque::new(),
            out_pos: 0,
            closing: None,
            held: Arc::default(),
            client: None,
        }
    }

    /// Whether the first stage takes input now. False once the link is closing: nothing
    /// more is read.
    pub(crate) fn first_can_accept(&self) -> bool {
        self.closing.is_none() && self.stages.first().is_some_and(Stage::can_accept)
    }

    /// How the connection must close when the end-of-stream marker comes out, if a toxic
    /// asked to close (otherwise the marker is the source's FIN).
    pub(crate) fn closing(&self) -> Option<CloseKind> {
        self.closing
    }

    /// Bytes of data this pipeline holds, in any stage or waiting to be written.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// A data chunk of a copy of `bytes`, read at `ts`, counted in [`Self::held_bytes`]
    /// until its last piece is dropped.
    pub(crate) fn chunk(&self, bytes: &[u8], ts: Instant) -> Item {
        self.held.fetch_add(bytes.len(), Ordering::Relaxed);
        let data = Bytes::from_owner(Held {
            data: bytes.into(),
            held: self.held.clone(),
        });
        Item::Data(Chunk { data, ts })
    }

    pub(crate) fn push_first(&mut self, item: Item, now: Instant) {
        match self.stages.first_mut() {
            Some(stage) => stage.push(item, now),
            None => self.out.push_back(item),
        }
    }

    /// Moves items down the chain as far as they can go now. Returns the earliest instant
    /// a stage wants to be polled again (`now` itself for a deadline already due), or the
    /// close a toxic asked for when nothing it let through is still held after it.
    pub(crate) fn pump(&mut self, now: Instant) -> Result<Option<Instant>, CloseKind> {
        'round: loop {
            let mut progressed = false;
            let mut deadline: Option<Instant> = None;
            for i in (0..self.stages.len()).rev() {
                loop {
                    let room = match self.stages.get(i + 1) {
                        Some(next) => next.can_accept(),
                        None => self.out.is_empty(),
                    };
                    if !room {
                        break;
                    }
                    match self.stages[i].poll(now) {
                        Poll::Ready(item) => {
                            progressed = true;
                            match self.stages.get_mut(i + 1) {
                                Some(next) => next.push(item, now),
                                None => self.out.push_back(item),
                            }
                        }
                        Poll::Wait(t) => {
                            let t = t.max(now);
                            deadline = Some(deadline.map_or(t, |d| d.min(t)));
                            break;
                        }
                        Poll::Idle => break,
                        Poll::Close(kind) => {
                            if i + 1 == self.stages.len() {
                                return Err(kind);
                            }
                            self.close_after(i, kind);
                            continue 'round;
                        }
                    }
                }
            }
            if !progressed {
                return Ok(deadline);
            }
        }
    }

    /// Stage `i` asked to close and later stages exist: what they hold still goes out, in
    /// order, followed by an end-of-stream marker; the stages up to `i` (and what they
    /// hold, which the closing toxic never let through) are dropped.
    fn close_after(&mut self, i: usize, kind: CloseKind) {
        self.stages.drain(..=i);
        self.stages[0].inbox.push_back(Item::Eof);
        self.closing.get_or_insert(kind);
    }

    /// Edits the stages to match `chain`, matching stages to entries by uid: keeps and
    /// updates surviving toxics, drains removed ones into the next surviving stage (or the
    /// output), and adds new ones. A surviving toxic that moved ahead of a later survivor
    /// keeps its state but hands its items downstream too, so the stream keeps its order.
    pub(crate) fn apply(
        &mut self,
        chain: &[ChainEntry],
        seed: u64,
        now: Instant,
    ) -> Result<(), CloseKind> {
        let old = std::mem::take(&mut self.stages);
        // Survivors in order, from the last stage back, and survivors that moved (emptied).
        let mut kept: Vec<Stage<'t>> = Vec::with_capacity(chain.len());
        let mut moved: Vec<Stage<'t>> = Vec::new();
        let mut carry: VecDeque<Item> = VecDeque::new();
        let mut teardown = false;
        // The new position of the nearest survivor downstream.
        let mut bound = usize::MAX;
        // Walk from the last stage back: a removed stage's items are later in the stream
        // than anything downstream of it, so they queue behind what the next survivor holds.
        for mut stage in old.into_iter().rev() {
            match chain.iter().position(|e| e.uid == stage.uid) {
                Some(p) if p < bound => {
                    Self::deliver(&mut carry, kept.last_mut(), &mut self.out);
                    stage.refresh(&chain[p], seed, self.client, now);
                    bound = p;
                    kept.push(stage);
                }
                Some(p) => {
                    carry.extend(stage.drain());
                    stage.refresh(&chain[p], seed, self.client, now);
                    moved.push(stage);
                }
                None => {
                    teardown |= stage.closes_on_remove;
                    carry.extend(stage.drain());
                }
            }
        }
        Self::deliver(&mut carry, kept.last_mut(), &mut self.out);
        let mut stages = Vec::with_capacity(chain.len());
        for entry in chain {
            let take = |v: &mut Vec<Stage<'t>>| {
                let i = v.iter().position(|s| s.uid == entry.uid)?;
                Some(v.swap_remove(i))
            };
            match take(&mut kept).or_else(|| take(&mut moved)) {
                Some(stage) => stages.push(stage),
                // A closing link reads nothing more: toxics added now would see no data.
                None if self.closing.is_some() => {}
                None => stages.push(Stage::new(entry, seed, self.client, now)),
            }
        }
        self.stages = stages;
        if teardown {
            Err(CloseKind::Fin)
        } else {
            Ok(())
        }
    }

    fn deliver(
        carry: &mut VecDeque<Item>,
        target: Option<&mut Stage<'t>>,
        out: &mut VecDeque<Item>,
    ) {
        if carry.is_empty() {
            return;
        }
        match target {
            Some(stage) => stage.inbox.append(carry),
            None => out.append(carry),
        }
    }
}

/// A chunk's buffer: counted in its pipeline's held bytes until dropped.
struct Held {
    data: Box<[u8]>,
    held: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.fetch_sub(self.data.len(), Ordering::Relaxed);
    }
}

/// Whether a toxic acts on a link: its toxicity roll, and its client targeting.
fn applies(entry: &ChainEntry, seed: u64, client: Option<IpAddr>) -> bool {
    roll(seed, entry.uid, entry.toxicity_gen, entry.toxicity) && targets_client(entry, client)
}

/// One toxic on one link, with its toxicity roll.
pub(crate) struct Stage<'t> {
    uid: u64,
    attr_gen: u64,
    toxicity_gen: u64,
    /// Whether removing this toxic tears the connection down.
    closes_on_remove: bool,
    /// The toxicity roll and the client targeting: kept across schedule flips, redone only when `toxicity` is updated.
    rolled: bool,
    /// The schedule's state as last published ([`ChainEntry::active`]).
    scheduled: bool,
    /// `rolled && scheduled`: when false the stage passes items through untouched.
    active: bool,
    /// The targeting `active` was last decided with.
    clients: Option<Clients>,
    toxic: Box<dyn Toxic + 't>,
    /// Items handed over by a removed stage upstream, waiting to enter this one.
    inbox: VecDeque<Item>,
    /// Items that leave before anything the toxic holds (left over from a deactivation,
    /// or passing through while inactive).
    bypass: VecDeque<Item>,
}

impl Stage<'static> {
    fn new(entry: &ChainEntry, seed: u64, client: Option<IpAddr>, now: Instant) -> Stage<'static> {
        let rng = toxics::ToxicRng::new(mix(seed, entry.uid));
        let rolled = applies(entry, seed, client);
        let active = rolled && entry.active;
        if active {
            entry.activations.fetch_add(1, Ordering::Relaxed);
        }
        Stage {
            uid: entry.uid,
            attr_gen: entry.attr_gen,
            toxicity_gen: entry.toxicity_gen,
            closes_on_remove: toxics::closes_on_remove(&entry.kind),
            rolled,
            scheduled: entry.active,
            active,
            clients: entry.clients.clone(),
            toxic: {
                let mut toxic = toxics::build(&entry.kind, rng, now);
                toxic.share(&entry.shared);
                toxic
            },
            inbox: VecDeque::new(),
            bypass: VecDeque::new(),
        }
    }
}

impl<'t> Stage<'t> {
    /// An always-active stage around `toxic`, outside any chain (the toxic unit tests).
    #[cfg(test)]
    pub(crate) fn of(uid: u64, toxic: Box<dyn Toxic + 't>) -> Stage<'t> {
        Stage {
            uid,
            attr_gen: 0,
            toxicity_gen: 0,
            closes_on_remove: false,
            rolled: true,
            scheduled: true,
            active: true,
            clients: None,
            toxic,
            inbox: VecDeque::new(),
            bypass: VecDeque::new(),
        }
    }

    fn can_accept(&self) -> bool {
        self.inbox.is_empty()
            && if self.active {
                self.toxic.can_accept()
            } else {
                self.bypass.is_empty()
            }
    }

    fn push(&mut self, item: Item, now: Instant) {
        if self.active {
            self.toxic.push(item, now);
        } else {
            self.bypass.push_back(item);
        }
    }

    /// Moves inbox items into the toxic as far as it accepts them.
    fn feed(&mut self, now: Instant) {
        while !self.inbox.is_empty() {
            if self.active {
                if !self.toxic.can_accept() {
                    break;
                }
                let item = self.inbox.pop_front().expect("inbox is not empty");
                self.toxic.push(item, now);
            } else {
                self.bypass.append(&mut self.inbox);
            }
        }
    }

    fn poll(&mut self, now: Instant) -> Poll {
        if let Some(item) = self.bypass.pop_front() {
            return Poll::Ready(item);
        }
        self.feed(now);
        if let Some(item) = self.bypass.pop_front() {
            return Poll::Ready(item);
        }
        if self.active {
            let p = self.toxic.poll(now);
            self.feed(now);
            p
        } else {
            Poll::Idle
        }
    }

    fn drain(&mut self) -> VecDeque<Item> {
        let mut items = std::mem::take(&mut self.bypass);
        items.append(&mut self.toxic.drain());
        items.append(&mut self.inbox);
        items
    }

    fn refresh(&mut self, entry: &ChainEntry, seed: u64, client: Option<IpAddr>, now: Instant) {
        if entry.attr_gen != self.attr_gen {
            self.toxic.update(&entry.kind, now);
            self.attr_gen = entry.attr_gen;
        }
        if entry.toxicity_gen != self.toxicity_gen || entry.clients != self.clients {
            self.rolled = applies(entry, seed, client);
            self.clients = entry.clients.clone();
            self.toxicity_gen = entry.toxicity_gen;
        }
        let switched_on = entry.active && !self.scheduled;
        self.scheduled = entry.active;
        let active = self.rolled && self.scheduled;
        if self.active && !active {
            let mut held = self.toxic.drain();
            self.bypass.append(&mut held);
        }
        if active && !self.active {
            entry.activations.fetch_add(1, Ordering::Relaxed);
            if switched_on {
                // A schedule's activation attaches the toxic afresh (its timers start now);
                // it held nothing while inactive.
                let rng = toxics::ToxicRng::new(mix(seed, entry.uid));
                self.toxic = toxics::build(&entry.kind, rng, now);
            }
        }
        self.active = active;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::model::ToxicKind;
    use crate::toxics::test_util::{at, bytes_of, input, Out, Sim};

    fn entry(uid: u64, kind: ToxicKind) -> ChainEntry {
        ChainEntry {
            uid,
            kind,
            toxicity: 1.0,
            attr_gen: 0,
            toxicity_gen: 0,
            activations: Arc::new(AtomicU64::new(0)),
            active: true,
            clients: None,
            shared: Arc::default(),
        }
    }

    fn lat(ms: i64) -> ToxicKind {
        toxics::kind("latency")
            .with("latency", ms)
            .with("jitter", 0)
    }

    #[test]
    fn clock_never_goes_backwards_and_never_wakes_early() {
        let t0 = Instant::now();
        let mut clock = Clock::default();
        let now = clock.now(t0);
        assert_eq!(clock.timer(Some(at(t0, 100)), now), Some(at(t0, 100)));
        clock.fired();
        assert_eq!(clock.now(at(t0, 100)), at(t0, 100));
        assert_eq!(clock.now(at(t0, 99)), at(t0, 100), "time does not go back");
        assert_eq!(clock.now(at(t0, 101)), at(t0, 101));
        // An already-due deadline is not pushed out.
        assert_eq!(
            clock.timer(Some(at(t0, 101)), at(t0, 101)),
            Some(at(t0, 101))
        );
        assert_eq!(clock.timer(None, at(t0, 101)), None);
    }

    #[test]
    fn limit_data_before_latency_delivers_exactly_its_bytes() {
        let t0 = Instant::now();
        let chain = [
            entry(1, toxics::kind("limit_data").with("bytes", 10)),
            entry(2, lat(100)),
        ];
        let pipe = Pipeline::new(&chain, 7, t0);
        let inputs = vec![
            input(t0, b"123456"),
            input(at(t0, 10), b"abcdefgh"),
            input(at(t0, 20), b"never"),
        ];
        let out = Sim::new(at(t0, 10_000)).drive(pipe, t0, inputs);
        assert_eq!(bytes_of(&out), b"123456abcd");
        assert_eq!(
            out.last().unwrap(),
            &(at(t0, 110), Out::Close(CloseKind::Fin)),
            "the close follows the held data"
        );
    }

    #[test]
    fn kept_stages_are_matched_by_uid() {
        let t0 = Instant::now();
        let a = entry(1, toxics::kind("limit_data").with("bytes", 1 << 20));
        let b = entry(2, lat(1000));
        let mut pipe = Pipeline::new(&[a.clone(), b.clone()], 7, t0);
        pipe.push_first(pipe.chunk(b"one", t0), t0);
        assert_eq!(pipe.pump(t0), Ok(Some(at(t0, 1000))));
        // Reordered: the latency stage keeps its queue, whatever its new position.
        pipe.apply(&[b.clone(), a.clone()], 7, at(t0, 1)).unwrap();
        assert_eq!(pipe.stages.len(), 2);
        let two = pipe.chunk(b"two", at(t0, 2));
        let out = Sim::new(at(t0, 10_000)).drive(pipe, at(t0, 1), vec![(at(t0, 2), two)]);
        assert_eq!(bytes_of(&out), b"onetwo");
    }

    #[test]
    fn held_bytes_count_until_the_data_is_dropped() {
        let t0 = Instant::now();
        let mut pipe = Pipeline::new(&[entry(1, lat(100))], 7, t0);
        for i in 0..10u64 {
            pipe.push_first(pipe.chunk(&[0; 1000], at(t0, i)), at(t0, i));
        }
        assert_eq!(pipe.held_bytes(), 10_000);
        pipe.pump(at(t0, 100)).unwrap();
        assert_eq!(pipe.out.len(), 1);
        pipe.out.clear();
        assert_eq!(pipe.held_bytes(), 9000);
        drop(pipe);
    }

    #[test]
    fn a_schedule_flip_releases_held_data_and_keeps_the_roll() {
        let t0 = Instant::now();
        let on = entry(1, lat(1000));
        let off = ChainEntry {
            active: false,
            ..on.clone()
        };
        let mut pipe = Pipeline::new(std::slice::from_ref(&on), 7, t0);
        pipe.push_first(pipe.chunk(b"held", t0), t0);
        assert_eq!(pipe.pump(t0), Ok(Some(at(t0, 1000))));
        // Deactivated: what the toxic holds comes out at once, then data passes untouched.
        pipe.apply(std::slice::from_ref(&off), 7, at(t0, 10))
            .unwrap();
        pipe.push_first(pipe.chunk(b"-free", at(t0, 11)), at(t0, 11));
        let mut out = Vec::new();
        for _ in 0..3 {
            assert_eq!(pipe.pump(at(t0, 11)), Ok(None));
            for item in pipe.out.drain(..) {
                if let Item::Data(c) = item {
                    out.extend_from_slice(&c.data);
                }
            }
        }
        assert_eq!(out, b"held-free");
        // Reactivated: the toxic acts again, from now.
        pipe.apply(std::slice::from_ref(&on), 7, at(t0, 20))
            .unwrap();
        assert_eq!(on.activations.load(Ordering::Relaxed), 2);
        pipe.push_first(pipe.chunk(b"late", at(t0, 21)), at(t0, 21));
        assert_eq!(pipe.pump(at(t0, 21)), Ok(Some(at(t0, 1021))));
        // A link whose roll said no stays untouched whatever the schedule does.
        let seed = (0..1000u64)
            .find(|&s| !roll(s, 9, 0, 0.5))
            .expect("a seed that rolls no");
        let half = ChainEntry {
            toxicity: 0.5,
            ..entry(9, lat(1000))
        };
        let half_off = ChainEntry {
            active: false,
            ..half.clone()
        };
        let mut pipe = Pipeline::new(std::slice::from_ref(&half_off), seed, t0);
        pipe.apply(std::slice::from_ref(&half), seed, at(t0, 5))
            .unwrap();
        pipe.push_first(pipe.chunk(b"x", at(t0, 6)), at(t0, 6));
        assert_eq!(pipe.pump(at(t0, 6)), Ok(None));
        assert_eq!(pipe.out.len(), 1);
        assert_eq!(half.activations.load(Ordering::Relaxed), 0);
    }

    /// A toxic that keeps every byte, in order, whatever its values.
    fn lossless() -> impl Strategy<Value = ToxicKind> {
        prop_oneof![
            (-5i64..300, -5i64..100).prop_map(|(latency, jitter)| toxics::kind("latency")
                .with("latency", latency)
                .with("jitter", jitter)),
            (1i64..64, 0.0f64..=1.0, -5i64..3000).prop_map(|(avg, frac, delay)| {
                toxics::kind("slicer")
                    .with("average_size", avg)
                    .with("size_variation", (avg as f64 * frac) as i64)
                    .with("delay", delay)
            }),
            (1i64..2000).prop_map(|rate| toxics::kind("bandwidth").with("rate", rate)),
            Just(toxics::kind("noop")),
            Just(toxics::kind("limit_data").with("bytes", i64::MAX)),
        ]
    }

    /// One chain: (uid, kind, toxicity index, scheduled active); uids are drawn from a
    /// small set so that edits keep, update, move, remove, add and flip toxics.
    fn chain() -> impl Strategy<Value = Vec<(u64, ToxicKind, u8, bool)>> {
        prop::collection::vec((0u64..6, lossless(), 0u8..3, any::<bool>()), 0..5).prop_map(
            |mut v| {
                let mut seen = std::collections::HashSet::new();
                v.retain(|(uid, _, _, _)| seen.insert(*uid));
                v
            },
        )
    }

    fn entries(spec: &[(u64, ToxicKind, u8, bool)]) -> Vec<ChainEntry> {
        spec.iter()
            .map(|(uid, kind, t, active)| ChainEntry {
                // Same uid, same type: a changed type is a new toxic.
                uid: uid * 16 + kind_index(kind),
                kind: kind.clone(),
                toxicity: [1.0, 0.5, 0.0][*t as usize],
                attr_gen: attr_hash(kind),
                toxicity_gen: u64::from(*t),
                activations: Arc::new(AtomicU64::new(0)),
                active: *active,
                clients: None,
                shared: Arc::default(),
            })
            .collect()
    }

    fn kind_index(kind: &ToxicKind) -> u64 {
        match kind.type_name() {
            "latency" => 0,
            "slicer" => 1,
            "bandwidth" => 2,
            "noop" => 3,
            _ => 4,
        }
    }

    fn attr_hash(kind: &ToxicKind) -> u64 {
        let text = format!("{kind:?}");
        crate::proxy::chain::hash_str(&text)
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(128),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// Every byte comes out once and in order through random chains under random
        /// chain edits, on the real pipeline driven as the link drives it.
        #[test]
        fn every_byte_once_in_order_under_chain_edits(
            first in chain(),
            edits in prop::collection::vec((0u64..400, chain()), 0..6),
            inputs in prop::collection::vec((0u64..60, 1usize..3000), 1..12),
            seed in any::<u64>(),
        ) {
            let t0 = Instant::now();
            let pipe = Pipeline::new(&entries(&first), seed, t0);
            let mut t = t0;
            let mut next = 0u8;
            let mut want = Vec::new();
            let mut timed = Vec::new();
            for (gap, len) in inputs {
                t += Duration::from_millis(gap);
                let data: Vec<u8> = (0..len).map(|_| { next = next.wrapping_add(1); next }).collect();
                want.extend_from_slice(&data);
                timed.push(input(t, &data));
            }
            timed.push((t, Item::Eof));
            let mut e = t0;
            let edits = edits
                .into_iter()
                .map(|(gap, spec)| {
                    e += Duration::from_millis(gap);
                    (e, entries(&spec))
                })
                .collect();
            let out = Sim::new(at(t0, 10_000_000)).drive_edits(pipe, t0, timed, edits, seed);
            let got = bytes_of(&out);
            let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
            prop_assert!(
                got.len() == want.len() && first_diff.is_none(),
                "{} of {} bytes, first difference at {:?}", got.len(), want.len(), first_diff
            );
            prop_assert_eq!(&out.last().unwrap().1, &Out::Item(Item::Eof));
        }
    }
}
