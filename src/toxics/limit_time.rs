//! `limit_time`: passes data untouched, then tears the connection down with a normal close
//! `duration` ms after the toxic was attached to it (when the connection opened, for a
//! toxic that was already there; when it was added, for a live connection).
//!
//! `duration <= 0` closes at once. An update changes the duration but keeps the moment of
//! attachment, so shortening it may close the connection at once. Data and end-of-stream
//! pass through without delay; one item is held at a time.

use std::collections::VecDeque;
use tokio::time::Instant;

use super::{add_saturating, millis, CloseKind, Item, Poll, Toxic, ToxicRng};
use crate::model::{AttrDef, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("limit_time", "LimitTimeToxic")
    .summary("close the connection a fixed time after it opened")
    .attrs(&[AttrDef::int("duration")
        .unit("ms")
        .help("how long each connection may live once the toxic is on it")]);

pub fn build(kind: &ToxicKind, _rng: ToxicRng, now: Instant) -> Box<dyn Toxic> {
    Box::new(LimitTime::new(kind.int("duration"), now))
}

/// A limit_time stage.
pub struct LimitTime {
    duration: i64,
    /// When the toxic was attached to the link.
    since: Instant,
    held: Option<Item>,
}

impl LimitTime {
    pub fn new(duration: i64, now: Instant) -> LimitTime {
        LimitTime {
            duration,
            since: now,
            held: None,
        }
    }

    fn due(&self) -> Instant {
        add_saturating(self.since, millis(self.duration))
    }
}

impl Toxic for LimitTime {
    fn can_accept(&self) -> bool {
        self.held.is_none()
    }

    fn push(&mut self, item: Item, _now: Instant) {
        debug_assert!(self.held.is_none(), "push while holding an item");
        self.held = Some(item);
    }

    fn poll(&mut self, now: Instant) -> Poll {
        let due = self.due();
        if now >= due {
            // Past the deadline nothing more goes through.
            self.held = None;
            return Poll::Close(CloseKind::Fin);
        }
        match self.held.take() {
            Some(item) => Poll::Ready(item),
            None => Poll::Wait(due),
        }
    }

    fn update(&mut self, kind: &ToxicKind, _now: Instant) {
        if kind.is(&DEF) {
            self.duration = kind.int("duration");
        }
    }

    fn drain(&mut self) -> VecDeque<Item> {
        self.held.take().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::test_util::{at, bytes_of, input, Out, Sim};

    #[test]
    fn passes_data_then_closes_on_time() {
        let t0 = Instant::now();
        let mut l = LimitTime::new(1000, t0);
        let inputs = vec![
            input(at(t0, 10), b"abc"),
            input(at(t0, 999), b"def"),
            input(at(t0, 1500), b"never"),
        ];
        let out = Sim::new(at(t0, 10_000)).run(&mut l, t0, inputs);
        assert_eq!(bytes_of(&out), b"abcdef");
        assert_eq!(
            out.last().unwrap(),
            &(at(t0, 1000), Out::Close(CloseKind::Fin))
        );
    }

    #[test]
    fn idle_link_closes_too_and_zero_closes_at_once() {
        let t0 = Instant::now();
        let mut l = LimitTime::new(250, at(t0, 50));
        assert_eq!(l.poll(at(t0, 50)), Poll::Wait(at(t0, 300)));
        assert_eq!(l.poll(at(t0, 300)), Poll::Close(CloseKind::Fin));
        for d in [0, -5, i64::MIN] {
            let mut l = LimitTime::new(d, t0);
            assert_eq!(l.poll(t0), Poll::Close(CloseKind::Fin));
        }
        let mut forever = LimitTime::new(i64::MAX, t0);
        assert!(matches!(forever.poll(at(t0, 5)), Poll::Wait(_)));
    }

    #[test]
    fn update_keeps_the_attachment_time() {
        let t0 = Instant::now();
        let mut l = LimitTime::new(10_000, t0);
        assert_eq!(l.poll(at(t0, 100)), Poll::Wait(at(t0, 10_000)));
        l.update(&crate::toxics::kind("limit_time").with("duration", 500), at(t0, 400));
        assert_eq!(l.poll(at(t0, 400)), Poll::Wait(at(t0, 500)));
        l.update(&crate::toxics::kind("limit_time").with("duration", 100), at(t0, 450));
        assert_eq!(l.poll(at(t0, 450)), Poll::Close(CloseKind::Fin));
    }
}
