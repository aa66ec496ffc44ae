//! Zero-copy forwarding for bulk streams on Linux: source socket → pipe → destination
//! socket with `splice(2)`, so the bytes never pass through user space.
//!
//! A [`Pipe`] is created only while a link streams in bulk and is closed (on drop) as soon
//! as it goes idle, so idle connections hold no pipe. It counts the bytes it holds, so its
//! user always knows what is in flight.
//!
//! Both helpers are non-blocking (`SPLICE_F_NONBLOCK`, and tokio's sockets are
//! `O_NONBLOCK`) and report "not ready" as [`io::ErrorKind::WouldBlock`], for use inside
//! `TcpStream::try_io`. One trap: splicing into a *full* pipe also fails with `EAGAIN`,
//! which tokio would take as "socket not readable" and lose a wake-up; [`splice_in`]
//! therefore refuses to run unless the pipe is empty.
//!
//! With the `timerfd` calls of `timer.rs`, the receive timestamps of `rxstamp.rs` and the
//! listener registration of `mod.rs`, everything unsafe in the proxy lives here.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};

/// Cleared for good when the kernel refuses to splice (see [`is_unsupported`]).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether links may splice (the kernel has not refused it in this process).
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether `e` (from `splice_in` or `splice_out`) means splice cannot work here at all
/// (a kernel without splice for these descriptors, a seccomp filter, a sandbox): the link
/// falls back to buffered copying.
pub(crate) fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EPERM)
    )
}

/// Turns splicing off for the process after `e`, logging it once.
pub(crate) fn disable(e: &io::Error) {
    if ENABLED.swap(false, Ordering::Relaxed) {
        tracing::warn!(error = %e, "splice(2) refused; copying through buffers from now on");
    }
}

/// Test hook: the next `splice_out` fails with this errno (0: none).
#[cfg(test)]
pub(crate) static FAIL_NEXT_OUT: std::sync::atomic::AtomicI32 =
    std::sync::atomic::AtomicI32::new(0);

/// Test hook: splicing allowed again.
#[cfg(test)]
pub(crate) fn enable_for_tests() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// The pipe size asked for with `F_SETPIPE_SZ` (the kernel may refuse: above
/// `fs.pipe-max-size`, or over the per-user pipe limits; the pipe then keeps its default
/// size, which works as well).
pub(crate) const PIPE_SIZE: usize = 256 * 1024;

/// The size asked for first while fewer than [`BIG_PIPES`] pipes are open. A 1 MiB pipe
/// moves more per pair of calls, so the destination's reader is woken less often per
/// byte: single-stream iperf3 through `toxi-server` ran 2.29-2.49 GB/s against
/// 2.05-2.10 with 256 KiB.
pub(crate) const BIG_PIPE_SIZE: usize = 1024 * 1024;

/// How many pipes may be [`BIG_PIPE_SIZE`] at once. An unprivileged user's pipes share
/// `fs.pipe-user-pages-soft` (64 MiB by default), past which new pipes get two pages and
/// links stop splicing: sixteen big pipes take a quarter of it, which leaves room for 192
/// more streams at [`PIPE_SIZE`].
const BIG_PIPES: usize = 16;

/// Pipes open now, in this process.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Below this capacity a pipe is not used: the buffered path moves more per call.
const MIN_USEFUL: usize = super::link::CHUNK_SIZE;

/// A kernel pipe used as a splice buffer; both ends close on drop.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes spliced in and not yet spliced out.
    len: usize,
    /// Capacity in bytes (the most one `splice_in` asks for).
    cap: usize,
    _counted: Counted,
}

/// One pipe counted in [`OPEN`] until it drops.
struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pipe {
    /// Opens a non-blocking, close-on-exec pipe of [`BIG_PIPE_SIZE`] (while few are open)
    /// or [`PIPE_SIZE`], whichever the kernel grants first.
    pub(crate) fn new() -> io::Result<Pipe> {
        let mut fds: [libc::c_int; 2] = [-1; 2];
        // SAFETY: `fds` is a writable array of two ints, as pipe2 requires.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let open = OPEN.fetch_add(1, Ordering::Relaxed);
        let counted = Counted;
        let sizes = if open < BIG_PIPES {
            &[BIG_PIPE_SIZE, PIPE_SIZE][..]
        } else {
            &[PIPE_SIZE][..]
        };
        // SAFETY: fcntl on a descriptor we own; both commands take an int argument.
        let cap = unsafe {
            sizes
                .iter()
                .map(|&size| {
                    libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int)
                })
                .find(|&n| n > 0)
                .unwrap_or_else(|| libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ))
        };
        let cap = usize::try_from(cap)
            .ok()
            .filter(|&c| c > 0)
            .unwrap_or(64 * 1024);
        if cap < MIN_USEFUL {
            // A user over `fs.pipe-user-pages-soft` gets two-page pipes: splicing 8 KiB
            // per pair of calls is slower than the buffered path's 32 KiB reads.
            return Err(io::Error::other("pipe too small to be worth splicing"));
        }
        Ok(Pipe {
            read,
            write,
            len: 0,
            cap,
            _counted: counted,
        })
    }

    /// Whether the pipe holds no bytes.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads back everything the pipe holds (into user space), leaving it empty.
    pub(crate) fn drain(&mut self) -> io::Result<Bytes> {
        let mut out = BytesMut::zeroed(self.len);
        let mut got = 0;
        while got < out.len() {
            let rest = &mut out[got..];
            // SAFETY: `rest` is a writable buffer of `rest.len()` bytes; the descriptor is
            // owned by this pipe.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
            match n {
                n if n > 0 => got += n as usize,
                0 => break,
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        if got < out.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.len = 0;
        Ok(out.freeze())
    }
}

/// Moves up to the pipe's capacity from `src` (a socket) into the **empty** `pipe`.
/// `Ok(0)` is end of stream; `WouldBlock` means `src` has nothing to read.
pub(crate) fn splice_in(src: &impl AsFd, pipe: &mut Pipe) -> io::Result<usize> {
    assert!(pipe.is_empty(), "splice_in into a non-empty pipe");
    let n = splice(src.as_fd().as_raw_fd(), pipe.write.as_raw_fd(), pipe.cap)?;
    pipe.len += n;
    Ok(n)
}

/// Moves what `pipe` holds into `dst` (a socket), possibly only part of it.
/// `WouldBlock` means `dst` cannot take more now.
pub(crate) fn splice_out(pipe: &mut Pipe, dst: &impl AsFd) -> io::Result<usize> {
    if pipe.len == 0 {
        return Ok(0);
    }
    #[cfg(test)]
    {
        let errno = FAIL_NEXT_OUT.swap(0, Ordering::Relaxed);
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(errno));
        }
    }
    let n = splice(pipe.read.as_raw_fd(), dst.as_fd().as_raw_fd(), pipe.len)?;
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    pipe.len -= n;
    Ok(n)
}

fn splice(from: libc::c_int, to: libc::c_int, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are borrowed from live owners for the duration of the
        // call; null offsets are required for pipes and sockets; no memory is passed.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many pipes are open at once, at most [`BIG_PIPES`] of them are big, and the
    /// rest still get a size worth splicing through.
    #[test]
    fn few_pipes_are_big() {
        let Ok(pipes) = (0..BIG_PIPES + 4)
            .map(|_| Pipe::new())
            .collect::<io::Result<Vec<Pipe>>>()
        else {
            return; // No usable pipes for this user: links never splice here.
        };
        let big = pipes.iter().filter(|p| p.cap > PIPE_SIZE).count();
        assert!(big <= BIG_PIPES, "{big} big pipes");
        assert!(pipes.iter().all(|p| p.cap >= MIN_USEFUL));
        let held = OPEN.load(Ordering::Relaxed);
        drop(pipes);
        assert!(
            OPEN.load(Ordering::Relaxed) < held,
            "closed pipes are no longer counted"
        );
    }
}
