//! Temporary pass-through (replaced by the real toxic).
use super::{Item, Poll, Toxic};
use crate::model::ToxicKind;
use std::collections::VecDeque;
use tokio::time::Instant;
#[derive(Default)]
pub struct Latency {
    q: VecDeque<Item>,
}
impl Latency {
    #[allow(unused_variables, clippy::new_ret_no_self)]
    pub fn new(latency: i64, jitter: i64, rng: rand::rngs::SmallRng) -> Self {
        Self::default()
    }
}
impl Toxic for Latency {
    fn can_accept(&self) -> bool {
        self.q.is_empty()
    }
    fn push(&mut self, item: Item, _now: Instant) {
        self.q.push_back(item)
    }
    fn poll(&mut self, _now: Instant) -> Poll {
        self.q.pop_front().map_or(Poll::Idle, Poll::Ready)
    }
    fn update(&mut self, _kind: &ToxicKind, _now: Instant) {}
    fn drain(&mut self) -> VecDeque<Item> {
        std::mem::take(&mut self.q)
    }
}
