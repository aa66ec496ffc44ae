//! `timeout`: discards all data in its direction and, when `timeout > 0`, tears the
//! connection down once `timeout` ms pass without a new chunk arriving.
//!
//! The idle timer starts when the toxic is attached (`now` given to [`Timeout::new`]) and
//! restarts on every received chunk, and on `update` (the reference restarts the stub, and
//! with it the timer). `timeout <= 0` discards data forever and never closes by itself. The
//! stage always accepts input, so the source keeps being read.
//!
//! The end-of-stream marker is forwarded, and the timer stops: the direction has ended
//! normally. (Closing connections when the toxic is removed is the link's job.)

use std::collections::VecDeque;
use tokio::time::Instant;

use super::{add_saturating, millis, CloseKind, Item, Poll, Toxic, ToxicRng};
use crate::model::{AttrDef, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("timeout", "TimeoutToxic")
    .summary("drop all data; close the connection once no data came for a while")
    .attrs(&[AttrDef::int("timeout")
        .unit("ms")
        .help("idle time before closing; 0 drops data and never closes")])
    .closes_on_remove();

pub fn build(kind: &ToxicKind, _rng: ToxicRng, now: Instant) -> Box<dyn Toxic> {
    Box::new(Timeout::new(kind.int("timeout"), now))
}

/// A timeout stage.
pub struct Timeout {
    timeout: i64,
    /// Start of the current idle period.
    last: Instant,
    eof: EofState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EofState {
    NotSeen,
    Held,
    Sent,
}

impl Timeout {
    pub fn new(timeout: i64, now: Instant) -> Timeout {
        Timeout {
            timeout,
            last: now,
            eof: EofState::NotSeen,
        }
    }
}

impl Toxic for Timeout {
    fn can_accept(&self) -> bool {
        self.eof != EofState::Held
    }

    fn push(&mut self, item: Item, now: Instant) {
        match item {
            Item::Data(_) => self.last = now,
            Item::Eof => {
                if self.eof == EofState::NotSeen {
                    self.eof = EofState::Held;
                }
            }
        }
    }

    fn poll(&mut self, now: Instant) -> Poll {
        match self.eof {
            EofState::Held => {
                self.eof = EofState::Sent;
                return Poll::Ready(Item::Eof);
            }
            EofState::Sent => return Poll::Idle,
            EofState::NotSeen => {}
        }
        if self.timeout <= 0 {
            return Poll::Idle;
        }
        let due = add_saturating(self.last, millis(self.timeout));
        if now >= due {
            Poll::Close(CloseKind::Fin)
        } else {
            Poll::Wait(due)
        }
    }

    fn update(&mut self, kind: &ToxicKind, now: Instant) {
        if kind.is(&DEF) {
            self.timeout = kind.int("timeout");
            self.last = now;
        }
    }

    fn drain(&mut self) -> VecDeque<Item> {
        if self.eof == EofState::Held {
            self.eof = EofState::Sent;
            VecDeque::from([Item::Eof])
        } else {
            VecDeque::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::test_util::{at, data, input, Out, Sim};
    use std::time::Duration;

    #[test]
    fn drops_data_and_closes_after_idle_period() {
        // Reference observation: timeout 1000 with a byte every 400 ms for 2 s closes 1.0 s
        // after the last byte.
        let t0 = Instant::now();
        let mut t = Timeout::new(1000, t0);
        let inputs = (0..=5).map(|i| input(at(t0, i * 400), b"x")).collect();
        let out = Sim::new(at(t0, 100_000)).run(&mut t, t0, inputs);
        assert_eq!(out, vec![(at(t0, 3000), Out::Close(CloseKind::Fin))]);
    }

    #[test]
    fn fires_from_construction_without_traffic() {
        let t0 = Instant::now();
        let mut t = Timeout::new(250, at(t0, 50));
        assert!(t.can_accept());
        assert_eq!(t.poll(at(t0, 50)), Poll::Wait(at(t0, 300)));
        assert_eq!(t.poll(at(t0, 300)), Poll::Close(CloseKind::Fin));
    }

    #[test]
    fn zero_or_negative_drops_forever() {
        let t0 = Instant::now();
        for timeout in [0, -1, i64::MIN] {
            let mut t = Timeout::new(timeout, t0);
            let inputs = (0..100).map(|i| input(at(t0, i * 1000), b"abc")).collect();
            let out = Sim::new(at(t0, 1_000_000)).run(&mut t, t0, inputs);
            assert!(out.is_empty());
            assert_eq!(t.poll(at(t0, 10_000_000)), Poll::Idle);
        }
    }

    #[test]
    fn huge_timeout_never_fires() {
        let t0 = Instant::now();
        let mut t = Timeout::new(i64::MAX, t0);
        t.push(data(b"x", t0), at(t0, 5));
        match t.poll(at(t0, 5)) {
            Poll::Wait(w) => assert!(w > t0 + Duration::from_secs(86400 * 365 * 10)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn eof_is_forwarded_and_stops_the_timer() {
        let t0 = Instant::now();
        let mut t = Timeout::new(100, t0);
        let inputs = vec![input(t0, b"dropped"), (at(t0, 50), Item::Eof)];
        let out = Sim::new(at(t0, 100_000)).run(&mut t, t0, inputs);
        assert_eq!(out, vec![(at(t0, 50), Out::Item(Item::Eof))]);
        assert_eq!(t.poll(at(t0, 5000)), Poll::Idle);
        assert!(t.drain().is_empty());
    }

    #[test]
    fn drain_returns_a_held_eof() {
        let t0 = Instant::now();
        let mut t = Timeout::new(100, t0);
        t.push(data(b"x", t0), t0);
        assert!(t.drain().is_empty());
        t.push(Item::Eof, at(t0, 1));
        assert!(!t.can_accept());
        assert_eq!(t.drain(), VecDeque::from([Item::Eof]));
        assert!(t.drain().is_empty());
    }

    #[test]
    fn update_restarts_the_timer_with_new_value() {
        let t0 = Instant::now();
        let mut t = Timeout::new(0, t0);
        t.push(data(b"x", t0), t0);
        assert_eq!(t.poll(at(t0, 500)), Poll::Idle);
        t.update(&crate::toxics::kind("slow_close").with("delay", 1), at(t0, 500));
        assert_eq!(t.poll(at(t0, 500)), Poll::Idle);
        t.update(&crate::toxics::kind("timeout").with("timeout", 200), at(t0, 600));
        assert_eq!(t.poll(at(t0, 600)), Poll::Wait(at(t0, 800)));
        t.push(data(b"y", at(t0, 700)), at(t0, 700));
        assert_eq!(t.poll(at(t0, 800)), Poll::Wait(at(t0, 900)));
        t.update(&crate::toxics::kind("timeout").with("timeout", -3), at(t0, 850));
        assert_eq!(t.poll(at(t0, 5000)), Poll::Idle);
    }
}
