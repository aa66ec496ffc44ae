//! Test harness shared by the toxic unit tests: a simulated link driver on a virtual clock.
//!
//! [`Sim::run`] feeds timed input items through a chain of stages the way the real link
//! task does (push only when `can_accept`, poll a stage only when the next stage can take an
//! item, sleep until the earliest deadline), and records every item that leaves the last
//! stage, or the `Close` that ends the run, with the virtual time it happened at.

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

use super::{Chunk, CloseKind, Item, Poll, Toxic};

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

    /// Runs `inputs` (each available from its instant, in order) through `stages` starting
    /// at `start`, until a stage returns `Close`, nothing more can happen, or the next
    /// wake-up would be after `until`.
    pub fn run_chain(
        &mut self,
        stages: &mut [&mut dyn Toxic],
        start: Instant,
        inputs: Vec<(Instant, Item)>,
    ) -> Vec<(Instant, Out)> {
        let mut src: VecDeque<(Instant, Item)> = inputs.into();
        let mut out = Vec::new();
        let mut now = start;
        let n = stages.len();
        assert!(n > 0, "empty chain");
        // Guards against a stage that keeps returning Ready forever.
        let mut budget: u64 = 50_000_000;
        loop {
            let mut wake: Option<Instant>;
            loop {
                let mut progressed = false;
                if let Some((t, _)) = src.front() {
                    if *t <= now && stages[0].can_accept() {
                        let (_, item) = src.pop_front().expect("front checked");
                        stages[0].push(item, now);
                        progressed = true;
                    }
                }
                wake = None;
                for i in 0..n {
                    loop {
                        if i + 1 < n && !stages[i + 1].can_accept() {
                            break;
                        }
                        budget = budget.checked_sub(1).expect("stage never settles");
                        match stages[i].poll(now) {
                            Poll::Ready(item) => {
                                progressed = true;
                                if i + 1 < n {
                                    stages[i + 1].push(item, now);
                                } else {
                                    out.push((now, Out::Item(item)));
                                }
                            }
                            Poll::Wait(t) => {
                                assert!(t > now, "Wait({t:?}) not after now ({now:?})");
                                wake = Some(wake.map_or(t, |w| w.min(t)));
                                break;
                            }
                            Poll::Idle => break,
                            Poll::Close(kind) => {
                                out.push((now, Out::Close(kind)));
                                return out;
                            }
                        }
                    }
                }
                if !progressed {
                    break;
                }
            }
            let timer = wake.map(|w| w + (self.overshoot)());
            let arrival = src
                .front()
                .map(|(t, _)| *t)
                .filter(|_| stages[0].can_accept());
            let next = match (timer, arrival) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => return out,
                },
            };
            if next > self.until {
                return out;
            }
            now = now.max(next);
        }
    }
}
