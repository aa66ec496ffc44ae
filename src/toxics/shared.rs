//! State one toxic shares across every connection of its proxy direction: the clock behind
//! `bandwidth` with `scope: "proxy"`.
//!
//! The registry makes one [`SharedRate`] per toxic (a toxic belongs to one proxy and one
//! direction) and hands it to every link's stage through the published chain. Links reserve
//! send slots on one virtual timeline: each reservation of `len` bytes takes the next
//! `len / rate` of it, so the sum over all links follows `rate`, and links that keep asking
//! one piece at a time take turns, which shares the rate fairly. The lock is held only for
//! the arithmetic of one reservation, never across an await, and the API never takes it.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use super::add_saturating;

/// A virtual send timeline shared by the links of one toxic.
#[derive(Debug, Default)]
pub struct SharedRate {
    /// When the last reserved slot ends; `None` until the first reservation.
    free_at: Mutex<Option<Instant>>,
}

impl SharedRate {
    pub fn new() -> SharedRate {
        SharedRate::default()
    }

    /// Reserves the next slot of `cost` at `now` and returns when it ends (when its bytes
    /// may leave). The timeline never lags `now` by more than `max_credit`, so idle time
    /// earns at most that much burst.
    pub fn reserve(&self, cost: Duration, now: Instant, max_credit: Duration) -> Instant {
        let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let floor = now.checked_sub(max_credit).unwrap_or(now);
        let start = free_at.map_or(now, |t| t.max(floor));
        let end = add_saturating(start, cost);
        *free_at = Some(end);
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_queue_back_to_back() {
        let s = SharedRate::new();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(s.reserve(ms(10), t0, ms(100)), t0 + ms(10));
        assert_eq!(s.reserve(ms(10), t0, ms(100)), t0 + ms(20));
        assert_eq!(s.reserve(ms(5), t0 + ms(1), ms(100)), t0 + ms(25));
        // After a long idle time at most `max_credit` of the past is used.
        let later = t0 + ms(10_000);
        assert_eq!(s.reserve(ms(10), later, ms(100)), later - ms(90));
        assert_eq!(s.reserve(ms(200), later, ms(100)), later + ms(110));
    }
}
