//! A link's toxic timer: wakes at a deadline to within tens of microseconds, never before
//! it.
//!
//! tokio's timer wheel ticks in milliseconds and rounds every deadline up to its next tick,
//! so a wait on it alone comes out 0-1 ms long (more under load). A [`PreciseTimer`] waits
//! in two stretches:
//!
//! * **coarse**: a plain tokio sleep until [`MARGIN`] before the deadline, when the wait
//!   is longer than that (long and "forever" waits cost no file descriptor);
//! * **fine** (Linux): a `timerfd` on `CLOCK_MONOTONIC` armed at an absolute time
//!   (`TFD_TIMER_ABSTIME`), registered with the runtime's reactor through
//!   [`AsyncFd`](tokio::io::unix::AsyncFd), so the kernel's high-resolution timer wakes
//!   the task. std's (and tokio's) `Instant` is `CLOCK_MONOTONIC` on Linux; the deadline
//!   is converted by the offset between one `Instant::now()` and one `clock_gettime` read
//!   after it, which can only move the deadline later.
//! * **last stretch**: waking an idle thread takes time of its own (0.1-0.2 ms on a VM,
//!   measured), which a timer armed at the deadline would add to every wait. So the
//!   `timerfd` is armed a *lead* before the deadline, the wake-up latency the process
//!   has measured so far plus 25 µs (at most 0.3 ms), and the task then yields to the
//!   runtime until the deadline: the thread is running when the deadline comes, and the
//!   other tasks of the worker run meanwhile. A wait that starts within the lead (the
//!   chunks of a burst follow each other closely, and the thread is awake anyway) arms
//!   the `timerfd` at the deadline itself, so a stream never keeps a worker yielding.
//!
//! The wait returns only once `Instant::now() >= deadline`, so a toxic's wait never ends
//! early. Nothing runs in the background and nothing spins while idle: an idle wait is
//! one armed kernel timer, and the yielding is bounded by the lead per wait. The timer
//! works on any runtime flavour (current-thread or multi-thread) and wakes only the task
//! that waits.
//!
//! The `timerfd` is opened at the start of a fine stretch and kept, re-armed only when the
//! deadline changes, while deadlines follow each other closely (a burst of chunks); it is
//! closed when the link next waits longer than [`MARGIN`], so links holding data in a long
//! latency hold no descriptor. If it cannot be opened (say, out of file descriptors) that
//! wait falls back to tokio's sleep. Other systems use tokio's sleep throughout.

use std::time::Duration;

use tokio::time::Instant;

/// How long before the deadline the coarse sleep ends. tokio's timer rounds a deadline up
/// to its next millisecond tick and then fires about 1.2 ms late (measured), and up to
/// 2 ms late now and then on a busy machine: 4 ms leaves the fine stretch room to start.
pub(crate) const MARGIN: Duration = Duration::from_millis(4);

/// One link's timer. Holds a descriptor only during fine stretches.
#[derive(Default)]
pub(crate) struct PreciseTimer {
    #[cfg(target_os = "linux")]
    fine: linux::Fine,
}

impl PreciseTimer {
    /// Waits until `deadline` (at once when it has passed). Cancel-safe: dropping the
    /// future leaves the timer reusable, and a later call with the same deadline keeps
    /// the armed kernel timer.
    pub(crate) async fn sleep_until(&mut self, deadline: Instant) {
        let now = Instant::now();
        if deadline <= now {
            return;
        }
        if deadline - now > MARGIN {
            // A link between deadlines holds no descriptor.
            #[cfg(target_os = "linux")]
            self.fine.release();
            tokio::time::sleep_until(deadline - MARGIN).await;
        }
        #[cfg(target_os = "linux")]
        if self.fine.sleep_until(deadline).await {
            return;
        }
        // No fine timer here: tokio's sleep, which never fires early either.
        tokio::time::sleep_until(deadline).await;
    }
}

/// The `timerfd` syscalls: with the splice and receive-timestamp modules and the listener
/// registration in `mod.rs`, the only unsafe code of the proxy.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::io::unix::AsyncFd;
    use tokio::time::Instant;

    #[derive(Default)]
    pub(super) struct Fine {
        /// `None` outside fine stretches; `Err` when creating it failed (retried at the
        /// next fine stretch).
        fd: Option<Result<AsyncFd<OwnedFd>, ()>>,
        /// The deadline the kernel timer is armed for, until it is read as expired.
        armed: Option<Instant>,
        /// The deadline whose early timer (armed [`lead`] before it) has expired.
        early: Option<Instant>,
    }

    impl Fine {
        /// Closes the `timerfd` (a later fine stretch opens a new one).
        pub(super) fn release(&mut self) {
            self.fd = None;
            self.armed = None;
            self.early = None;
        }

        /// Waits on the `timerfd` until `deadline`; false when there is none to wait on.
        ///
        /// A long enough wait arms the kernel timer [`lead`] before the deadline, so that
        /// the thread is running again when it comes, and yields to the runtime for what
        /// is left (see the module documentation).
        pub(super) async fn sleep_until(&mut self, deadline: Instant) -> bool {
            let fd = match self.fd.get_or_insert_with(create) {
                Ok(fd) => fd,
                Err(()) => return false,
            };
            loop {
                let now = Instant::now();
                if now >= deadline {
                    return true;
                }
                if self.early == Some(deadline) {
                    // The early kernel timer has fired: yield the rest, never blocking.
                    tokio::task::yield_now().await;
                    continue;
                }
                let lead = lead();
                // Closer than the lead (a burst of chunks, which keeps the thread busy
                // anyway): the kernel timer is armed at the deadline itself.
                let at = if deadline - now > lead {
                    deadline - lead
                } else {
                    deadline
                };
                if self.armed != Some(at) {
                    if arm(fd.get_ref(), at).is_err() {
                        self.armed = None;
                        return false;
                    }
                    self.armed = Some(at);
                }
                let Ok(mut guard) = fd.readable().await else {
                    return false;
                };
                // A readiness left over from an expiry of an earlier deadline reads as
                // `EAGAIN` (re-arming resets the count) and is cleared here.
                if let Ok(Ok(_)) = guard.try_io(|fd| read_expiries(fd.get_ref())) {
                    self.armed = None;
                    if at < deadline {
                        learn(Instant::now().saturating_duration_since(at));
                        self.early = Some(deadline);
                    }
                }
            }
        }
    }

    /// The wake-up latency learned so far, in nanoseconds: how long after its kernel timer
    /// expires a waiting task runs again. One figure for the process (it is the machine's
    /// and the runtime's, not a link's).
    static WAKE_NS: AtomicU64 = AtomicU64::new(INITIAL_WAKE.as_nanos() as u64);

    /// The first estimate, before any wake-up was measured.
    const INITIAL_WAKE: Duration = Duration::from_micros(100);
    /// The most the lead grows to, however slow wake-ups get: a descheduled thread's
    /// wake-up says nothing about the next one, and the lead is spent yielding.
    const MAX_LEAD: Duration = Duration::from_micros(300);
    /// Added to the estimate, so that most wake-ups land before the deadline.
    const HEADROOM: Duration = Duration::from_micros(25);

    /// How long before a deadline its kernel timer is armed.
    pub(super) fn lead() -> Duration {
        (Duration::from_nanos(WAKE_NS.load(Ordering::Relaxed)) + HEADROOM).min(MAX_LEAD)
    }

    /// Folds one measured wake-up latency into the estimate (a moving average over about
    /// eight wake-ups; a sample above [`MAX_LEAD`] counts as `MAX_LEAD`).
    pub(super) fn learn(latency: Duration) {
        let sample = latency.min(MAX_LEAD).as_nanos() as i64;
        let old = WAKE_NS.load(Ordering::Relaxed) as i64;
        let new = old + (sample - old) / 8;
        // Racing updates from other workers may lose a sample: an estimate either way.
        WAKE_NS.store(new.max(0) as u64, Ordering::Relaxed);
    }

    fn create() -> Result<AsyncFd<OwnedFd>, ()> {
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the `AsyncFd` owns `fd`, which stays open and the same until it drops.
        unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|_| ())
    }

    /// Arms the timer at `deadline`, converted to `CLOCK_MONOTONIC` through the offset
    /// between `Instant::now()` and a `clock_gettime` read just after it (so the kernel
    /// deadline is never before `deadline`).
    fn arm(fd: &OwnedFd, deadline: Instant) -> io::Result<()> {
        let now = Instant::now();
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let left = deadline.saturating_duration_since(now).as_nanos() as i128;
        let at = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec) + left;
        // Never zero, which would disarm (the monotonic clock is past zero anyway).
        let at = at.max(1);
        let value = libc::timespec {
            tv_sec: (at / 1_000_000_000).min(i128::from(libc::time_t::MAX)) as libc::time_t,
            tv_nsec: (at % 1_000_000_000) as _,
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: valid descriptor and pointers; the old value is not wanted.
        let rc = unsafe {
            libc::timerfd_settime(
                fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads the expiry count (`EAGAIN` when the timer has not expired).
    fn read_expiries(fd: &OwnedFd) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `buf`.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(u64::from_ne_bytes(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn never_wakes_early_and_wakes_close_to_the_deadline() {
        rt().block_on(async {
            let mut timer = PreciseTimer::default();
            let mut late = Vec::new();
            for us in [0u64, 50, 300, 1_000, 1_900, 2_100, 5_000, 12_345] {
                let deadline = Instant::now() + Duration::from_micros(us);
                timer.sleep_until(deadline).await;
                let now = Instant::now();
                assert!(now >= deadline, "woke {:?} early", deadline - now);
                late.push(now - deadline);
            }
            // Generous: a loaded machine may deschedule us; tokio alone is ~1 ms late.
            late.sort();
            assert!(late[late.len() / 2] < Duration::from_millis(5), "{late:?}");
        });
    }

    /// However slow or fast wake-ups get, the lead stays between the headroom and its cap,
    /// so a wait never yields for long.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_lead_stays_bounded() {
        for _ in 0..50 {
            linux::learn(Duration::from_secs(10));
        }
        assert!(
            linux::lead() <= Duration::from_micros(300),
            "{:?}",
            linux::lead()
        );
        for _ in 0..200 {
            linux::learn(Duration::ZERO);
        }
        let lead = linux::lead();
        assert!(lead >= Duration::from_micros(25), "{lead:?}");
        assert!(lead <= Duration::from_micros(300), "{lead:?}");
    }

    #[test]
    fn a_dropped_wait_leaves_the_timer_usable() {
        rt().block_on(async {
            let mut timer = PreciseTimer::default();
            let far = Instant::now() + Duration::from_millis(500);
            let near = Instant::now() + Duration::from_micros(1_500);
            // Arms the fine timer for `far`... then gives up on it.
            let _ = tokio::time::timeout(Duration::from_millis(1), timer.sleep_until(near)).await;
            let _ = tokio::time::timeout(Duration::from_millis(1), timer.sleep_until(far)).await;
            let d = Instant::now() + Duration::from_micros(800);
            timer.sleep_until(d).await;
            assert!(Instant::now() >= d);
            assert!(Instant::now() < far);
            // Already due: returns at once.
            timer.sleep_until(Instant::now()).await;
        });
    }
}
