//! When a toxic's chunk arrived: the kernel's receive timestamp of the bytes a read
//! returned, so that a slow wake-up of the reading thread is not added to a latency.
//!
//! With `SO_TIMESTAMPNS` on the source socket, TCP's `recvmsg` reports the time the last
//! segment it consumed arrived. Every byte of the read had arrived by then, so a delay
//! counted from it never releases a byte before its time. The timestamp is on
//! `CLOCK_REALTIME`, and is turned into an `Instant` through the offset between the two
//! clocks read just after the `recvmsg`. A step of the realtime clock would move that
//! offset, so a read's timestamp is trusted only while the offset is within
//! [`STEP_LIMIT`] of the one seen at the link's previous read; otherwise, and for the
//! first read of a link, the chunk is stamped with the time of the read, as without
//! timestamps. Chunk times never go backwards, and never pass the time of the read.
//!
//! Linux only; elsewhere (and when the option cannot be set) chunks carry the time of the
//! read. With the `splice` module, the `timerfd` calls and the listener registration,
//! the only unsafe code of the proxy.

use std::io;
#[cfg(target_os = "linux")]
use std::time::Duration;

#[cfg(target_os = "linux")]
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How far the realtime clock may move against the monotonic one between two reads of a
/// link before the kernel's timestamps are set aside: more than the clocks' reading
/// noise, far less than any latency worth setting.
#[cfg(target_os = "linux")]
const STEP_LIMIT: Duration = Duration::from_micros(100);

/// A link's receive stamps: the clock offset at its previous read and the time of its
/// previous chunk.
#[derive(Default)]
pub(crate) struct Stamps {
    /// Turned on for this link's source socket (`None`: not tried yet).
    #[cfg(target_os = "linux")]
    on: Option<bool>,
    /// Realtime minus monotonic, in nanoseconds, at the previous read.
    #[cfg(target_os = "linux")]
    offset: Option<i128>,
    /// The previous chunk's time.
    last: Option<Instant>,
}

impl Stamps {
    /// Reads once from `src` into `buf` (clearing readiness on `WouldBlock`, as
    /// `TcpStream::try_read` does), and returns how many bytes and the chunk's time.
    /// `floor` is when the link last started waiting to read: bytes that came while it
    /// was not reading (its toxics held their byte budget) count from then, so only the
    /// reading thread's own delay is taken back.
    pub(crate) fn read(
        &mut self,
        src: &TcpStream,
        buf: &mut [u8],
        floor: Instant,
    ) -> io::Result<(usize, Instant)> {
        #[cfg(target_os = "linux")]
        {
            if self.on.is_none() {
                self.on = Some(linux::enable(src).is_ok());
            }
            if self.on == Some(true) {
                let (n, arrived) =
                    src.try_io(Interest::READABLE, || linux::recv_stamped(src, buf))?;
                // The clocks before `now`: the realtime reading is then no later than
                // `now`, so the age below is never more than the segment's true age.
                let clocks = linux::clocks();
                let now = Instant::now();
                return Ok((n, self.time_of(arrived, clocks, now, floor)));
            }
        }
        let _ = floor;
        let n = src.try_read(buf)?;
        Ok((n, self.keep(Instant::now())))
    }

    /// The chunk time for a read at `now` whose last segment arrived at realtime
    /// `arrived`, given the clocks read just before `now` (all in nanoseconds).
    #[cfg(target_os = "linux")]
    fn time_of(
        &mut self,
        arrived: Option<i128>,
        clocks: Option<(i128, i128)>,
        now: Instant,
        floor: Instant,
    ) -> Instant {
        let offset = clocks.map(|(real, mono)| real - mono);
        let steady = match (self.offset, offset) {
            (Some(before), Some(after)) => (after - before).unsigned_abs() <= STEP_LIMIT.as_nanos(),
            _ => false,
        };
        self.offset = offset;
        let at = match (steady, arrived, clocks) {
            (true, Some(arrived), Some((real, _))) if real > arrived => {
                let age = Duration::from_nanos((real - arrived).min(i128::from(u64::MAX)) as u64);
                now.checked_sub(age).unwrap_or(now).max(floor.min(now))
            }
            _ => now,
        };
        self.keep(at)
    }

    /// `at`, moved up to the previous chunk's time if it is earlier (chunk times never go
    /// backwards), remembered as the previous chunk's time.
    fn keep(&mut self, at: Instant) -> Instant {
        let at = self.last.map_or(at, |last| at.max(last));
        self.last = Some(at);
        at
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod linux {
    use std::io;
    use std::os::fd::AsRawFd;

    use tokio::net::TcpStream;

    /// Turns on receive timestamps for `src`.
    pub(super) fn enable(src: &TcpStream) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: valid descriptor; the option value is a c_int that outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                src.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One `recvmsg` into `buf`: the byte count and, when the kernel gave one, the
    /// realtime arrival of the last segment read, in nanoseconds.
    pub(super) fn recv_stamped(
        src: &TcpStream,
        buf: &mut [u8],
    ) -> io::Result<(usize, Option<i128>)> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // Room for one `timespec` control message, aligned for `cmsghdr`.
        let mut control = [0u64; 8];
        // SAFETY: an all-zero msghdr is a valid empty one.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `msg` points at `iov` (into `buf`) and `control`, which outlive the call.
        let n = unsafe { libc::recvmsg(src.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut arrived = None;
        // SAFETY: walks the control messages the kernel wrote into `control`, within
        // `msg_controllen`, as the CMSG macros define.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    arrived = Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec));
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok((n as usize, arrived))
    }

    /// The realtime and then the monotonic clock, in nanoseconds.
    pub(super) fn clocks() -> Option<(i128, i128)> {
        Some((
            clock_ns(libc::CLOCK_REALTIME)?,
            clock_ns(libc::CLOCK_MONOTONIC)?,
        ))
    }

    /// `clock`'s reading in nanoseconds.
    fn clock_ns(clock: libc::clockid_t) -> Option<i128> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            return None;
        }
        Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    const MS: i128 = 1_000_000;

    /// Clocks as `recvmsg`'s caller reads them: realtime `real`, with realtime − monotonic
    /// = `offset`.
    fn clocks(real: i128, offset: i128) -> Option<(i128, i128)> {
        Some((real, real - offset))
    }

    #[test]
    fn a_steady_clock_gives_the_arrival_and_a_first_read_gives_now() {
        let mut s = Stamps::default();
        let t0 = Instant::now();
        let now = t0 + Duration::from_millis(10);
        let real = 1_000 * MS;
        // First read: no earlier offset to compare with, so the time of the read.
        assert_eq!(
            s.time_of(Some(real - 2 * MS), clocks(real, 7), now, t0),
            now
        );
        // Same offset: the segment came 2 ms before the read.
        let now = now + Duration::from_millis(5);
        let real = real + 5 * MS;
        let at = s.time_of(Some(real - 2 * MS), clocks(real, 7), now, t0);
        assert_eq!(at, now - Duration::from_millis(2));
    }

    #[test]
    fn never_before_the_floor_never_after_the_read_never_backwards() {
        let mut s = Stamps::default();
        let t0 = Instant::now();
        let real = 1_000 * MS;
        let now = t0 + Duration::from_millis(10);
        s.time_of(
            None,
            clocks(real - 9 * MS, 0),
            t0 + Duration::from_millis(1),
            t0,
        );
        // Arrived 8 ms before the read, but the link only listened from 1 ms before it.
        let floor = now - Duration::from_millis(1);
        assert_eq!(
            s.time_of(Some(real - 8 * MS), clocks(real, 0), now, floor),
            floor
        );
        // A timestamp in the future: the time of the read.
        let now2 = now + Duration::from_millis(1);
        let real2 = real + MS;
        assert_eq!(
            s.time_of(Some(real2 + MS), clocks(real2, 0), now2, t0),
            now2
        );
        // An older arrival than the previous chunk's: the previous chunk's time.
        let now3 = now2 + Duration::from_millis(1);
        let real3 = real2 + MS;
        assert_eq!(
            s.time_of(Some(real3 - 5 * MS), clocks(real3, 0), now3, t0),
            now2
        );
    }

    #[test]
    fn a_step_of_the_realtime_clock_falls_back_to_the_read() {
        let mut s = Stamps::default();
        let t0 = Instant::now();
        let now = t0 + Duration::from_millis(10);
        s.time_of(None, clocks(1_000 * MS, 0), now, t0);
        // The realtime clock jumped 1 s ahead: the segment looks a second old.
        let now = now + Duration::from_millis(1);
        let real = 2_001 * MS;
        assert_eq!(
            s.time_of(Some(real - 1_000 * MS), clocks(real, 1_000 * MS), now, t0),
            now
        );
    }

    /// On a real socket: a read reports the bytes and a time between the write and the
    /// read.
    #[tokio::test]
    async fn a_real_read_is_stamped_between_the_write_and_the_read() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut tx = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (rx, _) = listener.accept().await.unwrap();
        let mut s = Stamps::default();
        let mut buf = [0u8; 64];
        for i in 0..3u8 {
            let sent = Instant::now();
            tx.write_all(&[i; 5]).await.unwrap();
            rx.readable().await.unwrap();
            let (n, at) = s.read(&rx, &mut buf, sent).unwrap();
            let read = Instant::now();
            assert_eq!(&buf[..n], &[i; 5]);
            assert!(
                at >= sent && at <= read,
                "{i}: {:?}",
                at.duration_since(sent)
            );
        }
    }
}
