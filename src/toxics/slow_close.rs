//! `slow_close`: passes data unchanged; after the source's end-of-stream, waits `delay` ms
//! and then tears the whole connection down with a normal close.
//!
//! While waiting, the stage accepts nothing more. If it is removed while waiting, `drain`
//! hands back the end-of-stream marker so the link's normal EOF handling takes over.
//! `update` applies a new `delay` to a wait already under way (counted from the EOF).

use std::collections::VecDeque;
use tokio::time::Instant;

use super::{add_saturating, millis, Chunk, CloseKind, Item, Poll, Toxic, ToxicRng};
use crate::model::{AttrDef, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("slow_close", "SlowCloseToxic")
    .summary("delay the close after the peer closed")
    .attrs(&[AttrDef::int("delay")
        .unit("ms")
        .help("how long to wait before closing")]);

pub fn build(kind: &ToxicKind, _rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    Box::new(SlowClose::new(kind.int("delay")))
}

/// A slow_close stage.
pub struct SlowClose {
    delay: i64,
    held: Option<Chunk>,
    /// When the end-of-stream marker arrived.
    eof_at: Option<Instant>,
}

impl SlowClose {
    pub fn new(delay: i64) -> SlowClose {
        SlowClose {
            delay,
            held: None,
            eof_at: None,
        }
    }
}

impl Toxic for SlowClose {
    fn can_accept(&self) -> bool {
        self.held.is_none() && self.eof_at.is_none()
    }

    fn push(&mut self, item: Item, now: Instant) {
        match item {
            Item::Data(chunk) => {
                debug_assert!(self.held.is_none(), "push while holding a chunk");
                self.held = Some(chunk);
            }
            Item::Eof => {
                self.eof_at.get_or_insert(now);
            }
        }
    }

    fn poll(&mut self, now: Instant) -> Poll {
        if let Some(chunk) = self.held.take() {
            return Poll::Ready(Item::Data(chunk));
        }
        match self.eof_at {
            None => Poll::Idle,
            Some(eof_at) => {
                let due = add_saturating(eof_at, millis(self.delay));
                if now >= due {
                    Poll::Close(CloseKind::Fin)
                } else {
                    Poll::Wait(due)
                }
            }
        }
    }

    fn update(&mut self, kind: &ToxicKind, _now: Instant) {
        if kind.is(&DEF) {
            self.delay = kind.int("delay");
        }
    }

    fn drain(&mut self) -> VecDeque<Item> {
        let mut out: VecDeque<Item> = self.held.take().map(Item::Data).into_iter().collect();
        if self.eof_at.take().is_some() {
            out.push_back(Item::Eof);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::test_util::{at, bytes_of, data, input, Out, Sim};
    use std::time::Duration;

    #[test]
    fn data_passes_then_close_after_delay() {
        let t0 = Instant::now();
        let mut s = SlowClose::new(500);
        let inputs = vec![
            input(t0, b"ab"),
            input(at(t0, 10), b"cd"),
            (at(t0, 20), Item::Eof),
        ];
        let out = Sim::new(at(t0, 10_000)).run(&mut s, t0, inputs);
        assert_eq!(bytes_of(&out), b"abcd");
        assert_eq!(out[0].0, t0);
        assert_eq!(out[1].0, at(t0, 10));
        assert_eq!(
            out.last().unwrap(),
            &(at(t0, 520), Out::Close(CloseKind::Fin))
        );
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn no_eof_no_close() {
        let t0 = Instant::now();
        let mut s = SlowClose::new(1);
        let out = Sim::new(at(t0, 10_000)).run(&mut s, t0, vec![input(t0, b"x")]);
        assert_eq!(out.len(), 1);
        assert_eq!(s.poll(at(t0, 9000)), Poll::Idle);
    }

    #[test]
    fn zero_and_negative_delay_close_at_once() {
        let t0 = Instant::now();
        for delay in [0, -1, i64::MIN] {
            let mut s = SlowClose::new(delay);
            s.push(Item::Eof, at(t0, 3));
            assert!(!s.can_accept());
            assert_eq!(s.poll(at(t0, 3)), Poll::Close(CloseKind::Fin));
        }
    }

    #[test]
    fn huge_delay_waits_forever() {
        let t0 = Instant::now();
        let mut s = SlowClose::new(i64::MAX);
        s.push(Item::Eof, t0);
        match s.poll(at(t0, 1000)) {
            Poll::Wait(t) => assert!(t > t0 + Duration::from_secs(86400 * 365 * 10)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn drain_while_waiting_returns_the_eof() {
        let t0 = Instant::now();
        let mut s = SlowClose::new(1000);
        s.push(Item::Eof, t0);
        assert_eq!(s.poll(at(t0, 10)), Poll::Wait(at(t0, 1000)));
        assert_eq!(s.drain(), VecDeque::from([Item::Eof]));
        assert!(s.can_accept());
        assert_eq!(s.poll(at(t0, 2000)), Poll::Idle);

        let mut s = SlowClose::new(1000);
        s.push(data(b"x", t0), t0);
        assert_eq!(s.drain(), VecDeque::from([data(b"x", t0)]));
        assert!(s.drain().is_empty());
    }

    #[test]
    fn update_changes_pending_delay() {
        let t0 = Instant::now();
        let mut s = SlowClose::new(1000);
        s.push(Item::Eof, at(t0, 100));
        assert_eq!(s.poll(at(t0, 200)), Poll::Wait(at(t0, 1100)));
        s.update(&crate::toxics::kind("timeout").with("timeout", 1), at(t0, 200));
        assert_eq!(s.poll(at(t0, 200)), Poll::Wait(at(t0, 1100)));
        s.update(&crate::toxics::kind("slow_close").with("delay", 300), at(t0, 200));
        assert_eq!(s.poll(at(t0, 300)), Poll::Wait(at(t0, 400)));
        assert_eq!(s.poll(at(t0, 400)), Poll::Close(CloseKind::Fin));
    }
}
