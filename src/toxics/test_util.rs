//! Test harness shared by the toxic unit tests: a simulated link driver on a virtual clock.
//!
//! [`Sim::run`] wraps the toxics under test into the real link code's stages
//! (`proxy::pipeline`) and drives them on a virtual clock the way the link task does
//! (the same pump, the same monotonic clock and timer rules), recording every item that
//! leaves the last stage, or the `Close` that ends the run, with the virtual time it
//! happened at.

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

use super::{Chunk, CloseKind, Item, Poll, Toxic};
use crate::proxy::chain::ChainEntry;
use crate::proxy::pipeline::{Clock, Pipeline, Stage};

/// Something that left the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Item(Item),
    Close(CloseKind),
}

impl Out {
    /// The payload if this is a data item.
    pub fn data(&self) -> Option<&Bytes> {
        match self {
            Out::Item(Item::Data(c)) => Some(&c.data),
            _ => None,
        }
    }
}

/// `ms` milliseconds after `t0`.
pub fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

/// A data item read at `ts`.
pub fn data(bytes: &[u8], ts: Instant) -> Item {
    Item::Data(Chunk {
        data: Bytes::copy_from_slice(bytes),
        ts,
    })
}

/// A timed input: `bytes` read off the socket at `t` (the chunk is stamped `t`).
pub fn input(t: Instant, bytes: &[u8]) -> (Instant, Item) {
    (t, data(bytes, t))
}

/// Concatenation of every data payload in `out`.
pub fn bytes_of(out: &[(Instant, Out)]) -> Vec<u8> {
    out.iter()
        .filter_map(|(_, o)| o.data())
        .flat_map(|b| b.iter().copied())
        .collect()
}

/// Number of data items in `out`.
pub fn pieces(out: &[(Instant, Out)]) -> usize {
    out.iter().filter(|(_, o)| o.data().is_some()).count()
}

/// Simulation settings.
pub struct Sim {
    /// Added to every wake-up caused by a `Wait` deadline (models timer lateness).
    pub overshoot: Box<dyn FnMut() -> Duration>,
    /// The run stops before any wake-up later than this.
    pub until: Instant,
}

/// A borrowed toxic as a stage's toxic, so tests can inspect it after a run.
impl<T: Toxic + ?Sized> Toxic for &mut T {
    fn can_accept(&self) -> bool {
        (**self).can_accept()
    }
    fn push(&mut self, item: Item, now: Instant) {
        (**self).push(item, now)
    }
    fn poll(&mut self, now: Instant) -> Poll {
        (**self).poll(now)
    }
    fn update(&mut self, kind: &crate::model::ToxicKind, now: Instant) {
        (**self).update(kind, now)
    }
    fn drain(&mut self) -> VecDeque<Item> {
        (**self).drain()
    }
    fn share(&mut self, shared: &std::sync::Arc<super::SharedRate>) {
        (**self).share(shared)
    }
}

impl Sim {
    /// Exact timers, stopping after `until`.
    pub fn new(until: Instant) -> Sim {
        Sim {
            overshoot: Box::new(|| Duration::ZERO),
            until,
        }
    }

    /// Timers that fire `late` after their deadline.
    pub fn late(until: Instant, late: Duration) -> Sim {
        Sim {
            overshoot: Box::new(move || late),
            until,
        }
    }

    /// Runs one stage from `start` (see [`Sim::run_chain`]).
    pub fn run(
        &mut self,
        toxic: &mut dyn Toxic,
        start: Instant,
        inputs: Vec<(Instant, Item)>,
    ) -> Vec<(Instant, Out)> {
        self.run_chain(&mut [toxic], start, inputs)
    }

    /// Runs `inputs` (each readable from its instant, in order) through `stages` starting
    /// at `start`, until the chain closes, nothing more can happen, or the next wake-up
    /// would be after `until`.
    pub fn run_chain(
        &mut self,
        stages: &mut [&mut dyn Toxic],
        start: Instant,
        inputs: Vec<(Instant, Item)>,
    ) -> Vec<(Instant, Out)> {
        assert!(!stages.is_empty(), "empty chain");
        let stages = stages
            .iter_mut()
            .enumerate()
            .map(|(i, t)| Stage::of(i as u64, Box::new(&mut **t)))
            .collect();
        self.drive(Pipeline::from_stages(stages), start, inputs)
    }

    /// Drives `pipe` on the virtual clock the way the link task does (`link.rs`,
    /// `toxic_path`): pump at a monotonic `now`, take everything out ("write"), read the
    /// next input when the first stage takes it, else sleep until the earliest deadline
    /// with the link's timer rules ([`Clock`]). An input due no later than the timer
    /// is read first, as the link's select prefers a readable source to its timer.
    pub fn drive(
        &mut self,
        pipe: Pipeline<'_>,
        start: Instant,
        inputs: Vec<(Instant, Item)>,
    ) -> Vec<(Instant, Out)> {
        self.drive_edits(pipe, start, inputs, Vec::new(), 0)
    }

    /// [`Sim::drive`], applying each chain edit (`Pipeline::apply` with `seed`) at its
    /// instant; an edit comes before a read or a timer due at the same time, as in the
    /// link's select.
    pub fn drive_edits(
        &mut self,
        mut pipe: Pipeline<'_>,
        start: Instant,
        inputs: Vec<(Instant, Item)>,
        edits: Vec<(Instant, Vec<ChainEntry>)>,
        seed: u64,
    ) -> Vec<(Instant, Out)> {
        let mut edits: VecDeque<(Instant, Vec<ChainEntry>)> = edits.into();
        let mut src: VecDeque<(Instant, Item)> = inputs.into();
        let mut out = Vec::new();
        let mut clock = Clock::default();
        let mut real = start;
        // Guards against a stage that keeps returning Ready forever.
        let mut budget: u64 = 50_000_000;
        loop {
            budget = budget.checked_sub(1).expect("pipeline never settles");
            let now = clock.now(real);
            let deadline = match pipe.pump(now) {
                Ok(d) => d,
                Err(kind) => {
                    out.push((now, Out::Close(kind)));
                    return out;
                }
            };
            if let Some(d) = deadline {
                assert!(d > now, "a stage waits for {d:?}, not after now ({now:?})");
            }
            if !pipe.out.is_empty() {
                while let Some(item) = pipe.out.pop_front() {
                    // The link ends at the end-of-stream marker: a half-close, or the
                    // close a toxic asked for once what it let through is out.
                    if item == Item::Eof {
                        out.push((now, pipe.closing().map_or(Out::Item(item), Out::Close)));
                        return out;
                    }
                    out.push((now, Out::Item(item)));
                }
                continue;
            }
            // With no stages left the link would go back to its fast path: data passes.
            let open =
                pipe.first_can_accept() || pipe.stages.is_empty() && pipe.closing().is_none();
            if pipe.stages.is_empty() && src.is_empty() && edits.is_empty() {
                return out;
            }
            if let Some((t, _)) = edits.front() {
                if *t <= real || src.is_empty() && deadline.is_none() {
                    real = real.max(*t);
                    let (_, chain) = edits.pop_front().expect("front checked");
                    if let Err(kind) = pipe.apply(&chain, seed, clock.now(real)) {
                        out.push((clock.now(real), Out::Close(kind)));
                        return out;
                    }
                    continue;
                }
            }
            let edit_at = edits.front().map(|(t, _)| *t);
            let arrival = src.front().map(|(t, _)| *t).filter(|_| open);
            let timer = clock
                .timer(deadline, now)
                .map(|t| t.max(real) + (self.overshoot)());
            if let Some(e) = edit_at {
                if arrival.map_or(true, |a| e < a) && timer.map_or(true, |t| e <= t) {
                    real = real.max(e);
                    continue;
                }
            }
            match (arrival, timer) {
                (Some(a), t) if t.map_or(true, |t| a <= t) => {
                    if a > self.until {
                        return out;
                    }
                    real = real.max(a);
                    let (_, item) = src.pop_front().expect("front checked");
                    pipe.push_first(item, clock.now(real));
                }
                (_, Some(t)) => {
                    if t > self.until {
                        return out;
                    }
                    real = real.max(t);
                    clock.fired();
                }
                (_, None) => return out,
            }
        }
    }
}
