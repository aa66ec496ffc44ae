//! `reset_peer`: on the first chunk (or end-of-stream) in its direction, discards it and,
//! `timeout` ms later, tears the connection down with a reset.
//!
//! Before anything arrives nothing happens, so an idle connection stays open. Everything
//! arriving later is discarded too; the stage always accepts input. `timeout <= 0` resets at
//! once. `update` changes the timeout for a reset not yet triggered; one already under way
//! keeps its deadline (the reference's wait cannot be interrupted).
//!
//! `drain` returns nothing but an end-of-stream marker, if one was swallowed, so a link whose
//! source already ended can still finish after the toxic is removed.

use std::collections::VecDeque;
use tokio::time::Instant;

use super::{add_saturating, millis, CloseKind, Item, Poll, Toxic, ToxicRng};
use crate::model::{AttrDef, ToxicDef, ToxicKind};

pub static DEF: ToxicDef = ToxicDef::new("reset_peer", "ResetToxic")
    .summary("reset the connection (TCP RST) after data arrives")
    .attrs(&[AttrDef::int("timeout")
        .unit("ms")
        .help("how long after the first data to reset")]);

pub fn build(kind: &ToxicKind, _rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    Box::new(ResetPeer::new(kind.int("timeout")))
}

/// A reset_peer stage.
pub struct ResetPeer {
    timeout: i64,
    /// When the reset is due, once the first item has arrived.
    due: Option<Instant>,
    saw_eof: bool,
}

impl ResetPeer {
    pub fn new(timeout: i64) -> ResetPeer {
        ResetPeer {
            timeout,
            due: None,
            saw_eof: false,
        }
    }
}

impl Toxic for ResetPeer {
    fn can_accept(&self) -> bool {
        true
    }

    fn push(&mut self, item: Item, now: Instant) {
        if item == Item::Eof {
            self.saw_eof = true;
        }
        if self.due.is_none() {
            self.due = Some(add_saturating(now, millis(self.timeout)));
        }
    }

    fn poll(&mut self, now: Instant) -> Poll {
        match self.due {
            None => Poll::Idle,
            Some(due) if now >= due => Poll::Close(CloseKind::Reset),
            Some(due) => Poll::Wait(due),
        }
    }

    fn update(&mut self, kind: &ToxicKind, _now: Instant) {
        if kind.is(&DEF) {
            self.timeout = kind.int("timeout");
        }
    }

    fn drain(&mut self) -> VecDeque<Item> {
        if std::mem::take(&mut self.saw_eof) {
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
    fn idle_connection_stays_open() {
        let t0 = Instant::now();
        let mut r = ResetPeer::new(300);
        assert_eq!(r.poll(at(t0, 1_000_000)), Poll::Idle);
        let out = Sim::new(at(t0, 1_000_000)).run(&mut r, t0, vec![]);
        assert!(out.is_empty());
    }

    #[test]
    fn resets_timeout_after_first_data_and_discards_everything() {
        let t0 = Instant::now();
        let mut r = ResetPeer::new(300);
        let inputs = vec![
            input(at(t0, 1000), b"first"),
            input(at(t0, 1100), b"second"),
            input(at(t0, 1200), b"third"),
        ];
        let out = Sim::new(at(t0, 100_000)).run(&mut r, t0, inputs);
        assert_eq!(out, vec![(at(t0, 1300), Out::Close(CloseKind::Reset))]);
    }

    #[test]
    fn eof_also_triggers() {
        let t0 = Instant::now();
        let mut r = ResetPeer::new(50);
        let out = Sim::new(at(t0, 100_000)).run(&mut r, t0, vec![(at(t0, 10), Item::Eof)]);
        assert_eq!(out, vec![(at(t0, 60), Out::Close(CloseKind::Reset))]);
    }

    #[test]
    fn zero_or_negative_timeout_resets_at_once() {
        let t0 = Instant::now();
        for timeout in [0, -10, i64::MIN] {
            let mut r = ResetPeer::new(timeout);
            r.push(data(b"x", t0), at(t0, 7));
            assert_eq!(r.poll(at(t0, 7)), Poll::Close(CloseKind::Reset));
        }
    }

    #[test]
    fn huge_timeout_waits_forever() {
        let t0 = Instant::now();
        let mut r = ResetPeer::new(i64::MAX);
        r.push(data(b"x", t0), t0);
        match r.poll(at(t0, 5)) {
            Poll::Wait(w) => assert!(w > t0 + Duration::from_secs(86400 * 365 * 10)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn update_applies_before_trigger_only() {
        let t0 = Instant::now();
        let mut r = ResetPeer::new(1000);
        r.update(&crate::toxics::kind("timeout").with("timeout", 5), t0);
        r.update(&crate::toxics::kind("reset_peer").with("timeout", 100), t0);
        r.push(data(b"x", t0), at(t0, 10));
        assert_eq!(r.poll(at(t0, 10)), Poll::Wait(at(t0, 110)));
        r.update(&crate::toxics::kind("reset_peer").with("timeout", 5000), at(t0, 20));
        assert_eq!(r.poll(at(t0, 20)), Poll::Wait(at(t0, 110)));
        assert_eq!(r.poll(at(t0, 110)), Poll::Close(CloseKind::Reset));
    }

    #[test]
    fn drain_returns_only_a_swallowed_eof() {
        let t0 = Instant::now();
        let mut r = ResetPeer::new(1000);
        r.push(data(b"x", t0), t0);
        assert!(r.drain().is_empty());
        r.push(Item::Eof, t0);
        assert_eq!(r.drain(), VecDeque::from([Item::Eof]));
        assert!(r.drain().is_empty());
    }
}
