//! `noop`: passes every item through unchanged, one at a time (a synchronous hand-off).

use std::collections::VecDeque;
use tokio::time::Instant;

use super::{Item, Poll, Toxic, ToxicRng};
use crate::model::{ToxicDef, ToxicKind};

pub static DEF: ToxicDef =
    ToxicDef::new("noop", "NoopToxic").summary("pass data through unchanged");

pub fn build(_kind: &ToxicKind, _rng: ToxicRng, _now: Instant) -> Box<dyn Toxic> {
    Box::new(Noop::default())
}

/// Pass-through stage holding at most one item.
#[derive(Debug, Default)]
pub struct Noop {
    held: Option<Item>,
}

impl Toxic for Noop {
    fn can_accept(&self) -> bool {
        self.held.is_none()
    }

    fn push(&mut self, item: Item, _now: Instant) {
        debug_assert!(self.held.is_none(), "push while holding an item");
        self.held = Some(item);
    }

    fn poll(&mut self, _now: Instant) -> Poll {
        match self.held.take() {
            Some(item) => Poll::Ready(item),
            None => Poll::Idle,
        }
    }

    fn update(&mut self, _kind: &ToxicKind, _now: Instant) {}

    fn drain(&mut self) -> VecDeque<Item> {
        self.held.take().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::test_util::{at, bytes_of, input, Out, Sim};

    #[test]
    fn passes_items_through_at_once_in_order() {
        let t0 = Instant::now();
        let mut noop = Noop::default();
        let inputs = vec![
            input(t0, b"hello "),
            input(at(t0, 5), b"world"),
            (at(t0, 7), Item::Eof),
        ];
        let out = Sim::new(at(t0, 1000)).run(&mut noop, t0, inputs.clone());
        assert_eq!(out.len(), 3);
        for ((t_in, item_in), (t_out, item_out)) in inputs.into_iter().zip(out.iter()) {
            assert_eq!(t_in, *t_out);
            assert_eq!(Out::Item(item_in), *item_out);
        }
        assert_eq!(bytes_of(&out), b"hello world");
    }

    #[test]
    fn one_item_hand_off() {
        let t0 = Instant::now();
        let mut noop = Noop::default();
        assert!(noop.can_accept());
        assert_eq!(noop.poll(t0), Poll::Idle);
        noop.push(Item::Eof, t0);
        assert!(!noop.can_accept());
        assert_eq!(noop.poll(t0), Poll::Ready(Item::Eof));
        assert!(noop.can_accept());
        assert_eq!(noop.poll(t0), Poll::Idle);
    }

    #[test]
    fn drain_returns_held_item_and_update_keeps_it() {
        let t0 = Instant::now();
        let mut noop = Noop::default();
        assert!(noop.drain().is_empty());
        let item = crate::toxics::test_util::data(b"x", t0);
        noop.push(item.clone(), t0);
        noop.update(&crate::toxics::kind("noop"), t0);
        noop.update(
            &crate::toxics::kind("latency").with("latency", 5).with("jitter", 0),
            t0,
        );
        assert_eq!(noop.drain(), VecDeque::from([item]));
        assert!(noop.can_accept());
        assert!(noop.drain().is_empty());
    }
}
