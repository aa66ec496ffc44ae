//! The toxic chain of one link: an ordered list of [`Stage`]s, one per toxic, plus the
//! items that have passed them all and wait to be written. The link's task drives it
//! ([`Pipeline::pump`]) and edits it in place when the chain changes ([`Pipeline::apply`]);
//! it never touches a socket, so tests can drive it on a simulated clock.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::chain::{mix, roll, ChainEntry};
use crate::model::ToxicKind;
use crate::toxics::{self, CloseKind, Item, Poll, Toxic};

/// The stages of a link plus the items that have passed them all.
pub(crate) struct Pipeline {
    pub(crate) stages: Vec<Stage>,
    /// Items out of the last stage, waiting to be written.
    pub(crate) out: VecDeque<Item>,
    /// Bytes of `out.front()` already written.
    pub(crate) out_pos: usize,
}

impl Pipeline {
    /// A pipeline with one fresh stage per entry of `chain`, attached at `now`.
    pub(crate) fn new(chain: &[ChainEntry], seed: u64, now: Instant) -> Pipeline {
        Pipeline {
            stages: chain.iter().map(|e| Stage::new(e, seed, now)).collect(),
            out: VecDeque::new(),
            out_pos: 0,
        }
    }

    pub(crate) fn first_can_accept(&self) -> bool {
        self.stages.first().is_some_and(Stage::can_accept)
    }

    pub(crate) fn push_first(&mut self, item: Item, now: Instant) {
        match self.stages.first_mut() {
            Some(stage) => stage.push(item, now),
            None => self.out.push_back(item),
        }
    }

    /// Moves items down the chain as far as they can go now. Returns the earliest instant
    /// a stage wants to be polled again, or the close a toxic asked for.
    pub(crate) fn pump(&mut self, now: Instant) -> Result<Option<Instant>, CloseKind> {
        loop {
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
                            // A deadline already due is retried a millisecond later at most.
                            let t = if t <= now {
                                now + std::time::Duration::from_millis(1)
                            } else {
                                t
                            };
                            deadline = Some(deadline.map_or(t, |d| d.min(t)));
                            break;
                        }
                        Poll::Idle => break,
                        Poll::Close(kind) => return Err(kind),
                    }
                }
            }
            if !progressed {
                return Ok(deadline);
            }
        }
    }

    /// Edits the stages to match `chain`: keeps and updates surviving toxics, drains
    /// removed ones into the next surviving stage (or the output), and appends new ones.
    pub(crate) fn apply(
        &mut self,
        chain: &[ChainEntry],
        seed: u64,
        now: Instant,
    ) -> Result<(), CloseKind> {
        let old = std::mem::take(&mut self.stages);
        let mut kept: Vec<Stage> = Vec::with_capacity(chain.len());
        let mut carry: VecDeque<Item> = VecDeque::new();
        let mut teardown = false;
        // Walk from the last stage back: a removed stage's items are later in the stream
        // than anything downstream of it, so they queue behind what the next survivor holds.
        for mut stage in old.into_iter().rev() {
            match chain.iter().find(|e| e.uid == stage.uid) {
                Some(entry) => {
                    Self::deliver(&mut carry, kept.last_mut(), &mut self.out);
                    stage.refresh(entry, seed, now);
                    kept.push(stage);
                }
                None => {
                    teardown |= toxics::closes_on_remove(&stage.kind);
                    carry.extend(stage.drain());
                }
            }
        }
        Self::deliver(&mut carry, kept.last_mut(), &mut self.out);
        kept.reverse();
        let mut stages = Vec::with_capacity(chain.len());
        let mut kept = kept.into_iter().peekable();
        for entry in chain {
            match kept.next_if(|s| s.uid == entry.uid) {
                Some(stage) => stages.push(stage),
                None => stages.push(Stage::new(entry, seed, now)),
            }
        }
        self.stages = stages;
        if teardown {
            Err(CloseKind::Fin)
        } else {
            Ok(())
        }
    }

    fn deliver(carry: &mut VecDeque<Item>, target: Option<&mut Stage>, out: &mut VecDeque<Item>) {
        if carry.is_empty() {
            return;
        }
        match target {
            Some(stage) => stage.inbox.append(carry),
            None => out.append(carry),
        }
    }
}

/// One toxic on one link, with its toxicity roll.
pub(crate) struct Stage {
    uid: u64,
    attr_gen: u64,
    toxicity_gen: u64,
    kind: ToxicKind,
    /// The roll: when false the stage passes items through untouched.
    active: bool,
    toxic: Box<dyn Toxic>,
    /// Items handed over by a removed stage upstream, waiting to enter this one.
    inbox: VecDeque<Item>,
    /// Items that leave before anything the toxic holds (left over from a deactivation,
    /// or passing through while inactive).
    bypass: VecDeque<Item>,
}

impl Stage {
    fn new(entry: &ChainEntry, seed: u64, now: Instant) -> Stage {
        let rng = toxics::ToxicRng::new(mix(seed, entry.uid));
        let active = roll(seed, entry.uid, entry.toxicity_gen, entry.toxicity);
        if active {
            entry.activations.fetch_add(1, Ordering::Relaxed);
        }
        Stage {
            uid: entry.uid,
            attr_gen: entry.attr_gen,
            toxicity_gen: entry.toxicity_gen,
            kind: entry.kind.clone(),
            active,
            toxic: toxics::build(&entry.kind, rng, now),
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

    fn refresh(&mut self, entry: &ChainEntry, seed: u64, now: Instant) {
        if entry.attr_gen != self.attr_gen {
            self.toxic.update(&entry.kind, now);
            self.kind = entry.kind.clone();
            self.attr_gen = entry.attr_gen;
        }
        if entry.toxicity_gen != self.toxicity_gen {
            let active = roll(seed, entry.uid, entry.toxicity_gen, entry.toxicity);
            if self.active && !active {
                let mut held = self.toxic.drain();
                self.bypass.append(&mut held);
            }
            if active && !self.active {
                entry.activations.fetch_add(1, Ordering::Relaxed);
            }
            self.active = active;
            self.toxicity_gen = entry.toxicity_gen;
        }
    }
}
