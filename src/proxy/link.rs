//! One direction of one proxied connection: read the source socket, run the toxic chain,
//! write the destination socket.
//!
//! A link has two modes, and switches between them without losing or reordering bytes:
//!
//! * **Fast path** (no toxics): read into a pooled buffer and write it straight out. An idle
//!   link holds no buffer at all, and steady streaming reuses one buffer, so the path
//!   allocates nothing per chunk.
//! * **Toxic path**: every read becomes a time-stamped [`Chunk`] that moves through one
//!   [`Stage`](super::pipeline::Stage) per toxic. All stages of a link live in this one task, so a chain edit
//!   (add, update, remove) is applied in place between two steps: a removed stage hands
//!   back what it holds and those items continue downstream in order.
//!
//! Chain edits arrive through a `watch` channel, so the API never waits on a link: a link
//! that is blocked writing to a peer that stopped reading picks the edit up later.

use std::io::{self, Read as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::chain::Chain;
use super::pipeline::{Clock, Pipeline};
use super::rxstamp::Stamps;
use super::splice;
use super::timer::PreciseTimer;
use crate::metrics::DirectionCounters;
use crate::toxics::{CloseKind, Item};

/// The largest single read, as in the reference (each read becomes one chunk).
pub(crate) const CHUNK_SIZE: usize = 32 * 1024;

/// Full [`CHUNK_SIZE`] reads in a row after which a fast-path stream counts as bulk and
/// is spliced (zero-copy) instead of copied.
const SPLICE_AFTER: u32 = 4;

/// How a link ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkEnd {
    /// The source sent FIN; writing toward the destination was shut down (half-close).
    Eof,
    /// The whole connection must close (a toxic, or an I/O error).
    Teardown(CloseKind),
    /// The connection was cancelled (proxy stopped, or the other link tore it down).
    Cancelled,
}

pub(crate) struct Link<'a> {
    pub src: &'a TcpStream,
    pub dst: &'a TcpStream,
    pub chain: watch::Receiver<Chain>,
    /// Whether `chain` can still change (its sender lives).
    pub watching: bool,
    /// The connection's token: cancelled to tear both links down.
    pub cancel: &'a CancellationToken,
    /// Seed of this (connection, direction); toxicity rolls and toxic RNGs derive from it.
    pub seed: u64,
    /// The client's address: toxics that target clients apply only when it matches.
    pub client: Option<std::net::IpAddr>,
    pub counters: &'a DirectionCounters,
    /// The most data bytes the toxic chain may hold before the link stops reading.
    pub held_limit: usize,
    /// Bytes read and not yet written, handed from the fast path to whatever runs next
    /// (the toxic path, or buffered copying after a splice failure). `None` to start.
    pub carry: Option<Bytes>,
    /// This connection's bytes written toward the destination (the connections API).
    pub conn_bytes: &'a AtomicU64,
    /// Until the link's first read and first write: the sockets are new to the reactor,
    /// whose readiness starts empty, so those two go straight to the socket (a client's
    /// first request is usually already there, a fresh upstream is writable) instead of
    /// waiting a reactor turn to learn it. A just-dialled upstream has rarely spoken yet,
    /// so the downstream link's first read waits for readiness like any other.
    pub fresh: [bool; 2],
    /// The connection's two links, by direction: whether each has passed its source's
    /// end on (see [`Link::pass_eof`]), and which one this is. `None`: this link does not
    /// know whether its sockets close when it ends.
    pub ends: Option<(&'a [AtomicBool; 2], usize)>,
    /// Whether the destination's congestion control has been looked at for bulk (see
    /// `addr::unpace_within_host`): once, at the link's first splice burst.
    pub unpaced: bool,
}

const FIRST_READ: usize = 0;
const FIRST_WRITE: usize = 1;

/// How far [`Link::write_out`] got.
enum Written {
    All,
    /// The chain turned toxic while the destination was not taking bytes: this many were
    /// written; the rest must go through the toxics.
    Partial(usize),
}

impl<'a> Link<'a> {
    /// The `dir` link of one connection of `inst` (`seed`: the connection's seed).
    pub(crate) fn of(
        inst: &'a super::Instance,
        dir: crate::model::Direction,
        src: &'a TcpStream,
        dst: &'a TcpStream,
        cancel: &'a CancellationToken,
        seed: u64,
        conn: &'a super::Conn,
    ) -> Link<'a> {
        Link {
            src,
            dst,
            chain: inst.chains[dir.index()].subscribe(),
            watching: true,
            cancel,
            seed: super::conns::link_seed(seed, dir),
            client: Some(conn.client.ip()),
            counters: &inst.stats.directions[dir.index()],
            held_limit: inst.held_limit,
            carry: None,
            conn_bytes: &conn.bytes[dir.index()],
            fresh: [dir == crate::model::Direction::Upstream, true],
            ends: None,
            unpaced: false,
        }
    }

    /// The source ended: passes the FIN on toward the destination. When the other link
    /// has already passed its own source's end on, this one ends the connection and both
    /// sockets close now: `close` sends that FIN (the destination has nothing unread, the
    /// other link read it to its end), so no `shutdown` is needed.
    fn pass_eof(&self) -> LinkEnd {
        if let Some((ends, me)) = self.ends {
            ends[me].store(true, Ordering::Relaxed);
            if ends[1 - me].load(Ordering::Relaxed) {
                return LinkEnd::Eof;
            }
        }
        shutdown_write(self.dst);
        LinkEnd::Eof
    }

    pub(crate) async fn run(mut self) -> LinkEnd {
        loop {
            let has_toxics = !self.chain.borrow_and_update().is_empty();
            let end = if has_toxics {
                // Boxed: an idle fast-path link keeps only the fast path's state in its task.
                Box::pin(self.toxic_path()).await
            } else {
                self.fast_path().await
            };
            if let Some(end) = end {
                if let LinkEnd::Teardown(_) = end {
                    self.cancel.cancel();
                }
                return end;
            }
        }
    }

    /// Copies bytes until the chain becomes non-empty (`None`) or the link ends.
    ///
    /// Small messages go through a pooled buffer (`recv` + `send`). A stream that keeps the
    /// buffer full for [`SPLICE_AFTER`] reads in a row is bulk and switches to
    /// [`Link::splice_burst`] (zero-copy) until its source drains.
    async fn fast_path(&mut self) -> Option<LinkEnd> {
        let mut buf = pool::Buf::none();
        let mut full_reads = 0u32;
        // The source's FIN has arrived (the reactor reported it with the last readiness).
        let mut src_closed = false;
        loop {
            if let Some(data) = self.carry.take() {
                match self.write_out(&data, false).await {
                    Ok(Written::All) => {}
                    Ok(Written::Partial(n)) => {
                        self.carry = Some(data.slice(n..));
                        return None;
                    }
                    Err(end) => return Some(end),
                }
            }
            if full_reads >= SPLICE_AFTER && splice::enabled() {
                full_reads = 0;
                buf.release();
                if let Some(end) = self.splice_burst().await {
                    return end;
                }
                // Drained, or fell back to copying: what the pipe held (`carry`) goes first.
                continue;
            }
            // Drain whatever is readable now before waiting; release the buffer when idle.
            let read = if std::mem::take(&mut self.fresh[FIRST_READ]) {
                read_raw(self.src, buf.get())
            } else {
                read_clearing(self.src, buf.get())
            };
            match read {
                Ok(Read::Eof) => return Some(self.pass_eof()),
                Ok(Read::Data { n, full }) => {
                    // The source's FIN had arrived before this read, and the read drained
                    // the source: this is its last data, and the end follows (a `recv`
                    // would return 0, so none is spent on it). Passing the end on now lets
                    // the data and the FIN leave in one segment, as the source sent them
                    // (a response, then close), instead of two.
                    let last = src_closed && !full;
                    self.counters
                        .received
                        .fetch_add(n as u64, Ordering::Relaxed);
                    match self.write_out(&buf.get()[..n], last).await {
                        Ok(Written::All) if last => return Some(self.pass_eof()),
                        Ok(Written::All) => {
                            // `try_read`/`try_write` do not count toward tokio's cooperative
                            // budget: without this, a stream that is always ready would keep
                            // its worker thread and starve every other task (the API too).
                            tokio::task::consume_budget().await;
                        }
                        Ok(Written::Partial(w)) => {
                            self.carry = Some(Bytes::copy_from_slice(&buf.get()[w..n]));
                            return None;
                        }
                        Err(end) => return Some(end),
                    }
                    full_reads = if full { full_reads + 1 } else { 0 };
                    if !self.chain_turned_toxic() {
                        continue;
                    }
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    full_reads = 0;
                    buf.release();
                }
                Err(_) => return Some(LinkEnd::Teardown(CloseKind::Fin)),
            }
            let chain = &mut self.chain;
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Some(LinkEnd::Cancelled),
                changed = chain.changed(), if self.watching => {
                    match changed {
                        Ok(()) if !chain.borrow().is_empty() => return None,
                        Ok(()) => {}
                        Err(_) => self.watching = false,
                    }
                }
                ready = self.src.ready(Interest::READABLE) => match ready {
                    Ok(ready) => src_closed = ready.is_read_closed(),
                    Err(_) => return Some(LinkEnd::Teardown(CloseKind::Fin)),
                },
            }
        }
    }

    /// Whether the chain gained toxics since last looked at (a cheap check for loops that
    /// never wait, so a busy stream picks up a new toxic promptly).
    fn chain_turned_toxic(&mut self) -> bool {
        if !self.watching {
            return false;
        }
        match self.chain.has_changed() {
            Ok(true) => !self.chain.borrow_and_update().is_empty(),
            Ok(false) => false,
            Err(_) => {
                self.watching = false;
                false
            }
        }
    }

    /// Writes all of `data` to the destination (counting it as sent), waiting for
    /// writability. While it waits, a chain edit that adds toxics stops the write
    /// ([`Written::Partial`]), so a toxic added while the peer is not reading takes effect
    /// at once instead of after the peer drains.
    ///
    /// The connection's byte count includes `data` before the write, so a client that has
    /// received the bytes never reads a smaller count from the connections API; what is
    /// not written after all is taken back.
    ///
    /// `last`: the source's end follows at once (its FIN is passed on right after), so the
    /// kernel may hold the tail back (`MSG_MORE`) and send it with the FIN.
    async fn write_out(&mut self, data: &[u8], last: bool) -> Result<Written, LinkEnd> {
        self.conn_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let mut done = 0;
        let result = self.write_from(data, &mut done, last).await;
        if done < data.len() {
            self.conn_bytes
                .fetch_sub((data.len() - done) as u64, Ordering::Relaxed);
        }
        result
    }

    /// [`Link::write_out`]'s loop; `done` counts the bytes written, whatever the outcome.
    async fn write_from(
        &mut self,
        data: &[u8],
        done: &mut usize,
        last: bool,
    ) -> Result<Written, LinkEnd> {
        while *done < data.len() {
            let rest = &data[*done..];
            let tried = if last {
                self.dst
                    .try_io(Interest::WRITABLE, || write_raw(self.dst, rest, true))
            } else {
                self.dst.try_write(rest)
            };
            let wrote = match tried {
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        && std::mem::take(&mut self.fresh[FIRST_WRITE]) =>
                {
                    write_raw(self.dst, rest, last)
                }
                r => r,
            };
            self.fresh[FIRST_WRITE] = false;
            match wrote {
                Ok(n) => {
                    *done += n;
                    self.counters.sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.wait_writable().await? {
                        return Ok(Written::Partial(*done));
                    }
                }
                Err(_) => return Err(LinkEnd::Teardown(CloseKind::Fin)),
            }
        }
        Ok(Written::All)
    }

    /// Waits until the destination may be writable (`Ok(false)`), or the chain gained
    /// toxics (`Ok(true)`), or the link ends.
    async fn wait_writable(&mut self) -> Result<bool, LinkEnd> {
        loop {
            let chain = &mut self.chain;
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(LinkEnd::Cancelled),
                changed = chain.changed(), if self.watching => match changed {
                    Ok(()) if !chain.borrow().is_empty() => return Ok(true),
                    Ok(()) => {}
                    Err(_) => self.watching = false,
                },
                ready = self.dst.writable() => {
                    return match ready {
                        Ok(()) => Ok(false),
                        Err(_) => Err(LinkEnd::Teardown(CloseKind::Fin)),
                    };
                }
            }
        }
    }

    /// Splices source → pipe → destination while the source has data. Returns `None` when
    /// the source drained (the pipe is closed; the caller goes back to waiting), or what
    /// `fast_path` must return. The pipe is always empty when this returns, except on
    /// cancel or teardown: bytes never stay in flight across a switch to the toxic path
    /// or a half-close (what the pipe holds then moves to [`Link::carry`]). If no pipe can
    /// be opened (descriptor limits), returns `None` and the buffered path carries on. If
    /// the kernel refuses to splice these sockets (`EINVAL`, `ENOSYS`, `EPERM`), splicing
    /// is turned off for the process and the buffered path carries on with what the pipe
    /// held.
    async fn splice_burst(&mut self) -> Option<Option<LinkEnd>> {
        let Ok(mut pipe) = splice::Pipe::new() else {
            return None;
        };
        if !std::mem::replace(&mut self.unpaced, true) {
            super::addr::unpace_within_host(socket2::SockRef::from(self.dst));
        }
        // Hands what the pipe holds to `carry`; `false` if it could not be read back.
        let unload = |pipe: &mut splice::Pipe, carry: &mut Option<Bytes>| match pipe.drain() {
            Ok(held) => {
                *carry = Some(held);
                true
            }
            Err(_) => false,
        };
        loop {
            // In: only into an empty pipe (see `splice::splice_in`). `try_io` clears the
            // read readiness on `WouldBlock` without losing a wake-up.
            match self.src.try_io(Interest::READABLE, || {
                splice::splice_in(self.src, &mut pipe)
            }) {
                Ok(0) => return Some(Some(self.pass_eof())),
                Ok(n) => {
                    self.counters
                        .received
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if splice::is_unsupported(&e) => {
                    splice::disable(&e);
                    return None;
                }
                Err(_) => return Some(Some(LinkEnd::Teardown(CloseKind::Fin))),
            }
            // Out: drain the pipe completely.
            while !pipe.is_empty() {
                match self.dst.try_io(Interest::WRITABLE, || {
                    splice::splice_out(&mut pipe, self.dst)
                }) {
                    Ok(n) => {
                        self.counters.sent.fetch_add(n as u64, Ordering::Relaxed);
                        self.conn_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        match self.wait_writable().await {
                            Ok(false) => {}
                            Ok(true) => {
                                // A toxic arrived while the peer is not reading: what the
                                // pipe holds goes through it.
                                if !unload(&mut pipe, &mut self.carry) {
                                    return Some(Some(LinkEnd::Teardown(CloseKind::Fin)));
                                }
                                return Some(None);
                            }
                            Err(end) => return Some(Some(end)),
                        }
                    }
                    Err(e) if splice::is_unsupported(&e) => {
                        splice::disable(&e);
                        if !unload(&mut pipe, &mut self.carry) {
                            return Some(Some(LinkEnd::Teardown(CloseKind::Fin)));
                        }
                        return None;
                    }
                    Err(_) => return Some(Some(LinkEnd::Teardown(CloseKind::Fin))),
                }
            }
            if self.cancel.is_cancelled() {
                return Some(Some(LinkEnd::Cancelled));
            }
            if self.chain_turned_toxic() {
                return Some(None);
            }
            tokio::task::consume_budget().await;
        }
    }

    /// Runs the toxic chain until it is empty and flushed (`None`) or the link ends.
    ///
    /// Each step pumps the pipeline at a `now` that never goes backwards, writes what came
    /// out without waiting, then waits for one event: cancel, a chain edit, the
    /// destination writable (when output waits), the source readable (when the first
    /// stage takes input and the pipeline holds less than its byte budget), or the
    /// earliest toxic deadline. Every read is copied into a chunk of its own size, so a
    /// small chunk held by a latency toxic pins only its own bytes.
    async fn toxic_path(&mut self) -> Option<LinkEnd> {
        let mut clock = Clock::default();
        let now = clock.now(Instant::now());
        let chain = self.chain.borrow_and_update().clone();
        let mut pipe = Pipeline::for_client(&chain, self.seed, self.client, now);
        if let Some(data) = self.carry.take() {
            let item = pipe.chunk(&data, now);
            pipe.push_first(item, now);
        }
        let mut buf = pool::Buf::none();
        let mut src_eof = false;
        let mut timer = PreciseTimer::default();
        let mut stamps = Stamps::default();
        // Since when the link has been waiting to read, without a pause.
        let mut listening: Option<Instant> = None;
        loop {
            let now = clock.now(Instant::now());
            let deadline = match pipe.pump(now) {
                Ok(d) => d,
                Err(kind) => return Some(LinkEnd::Teardown(kind)),
            };
            // Write what is ready without waiting.
            let mut wrote = false;
            while let Some(front) = pipe.out.front() {
                let data = match front {
                    Item::Eof => {
                        if let Some(kind) = pipe.closing() {
                            return Some(LinkEnd::Teardown(kind));
                        }
                        return Some(self.pass_eof());
                    }
                    Item::Data(c) => &c.data[pipe.out_pos..],
                };
                match self.dst.try_write(data) {
                    Ok(n) => {
                        wrote = true;
                        self.counters.sent.fetch_add(n as u64, Ordering::Relaxed);
                        self.conn_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        pipe.out_pos += n;
                        if n == data.len() {
                            pipe.out.pop_front();
                            pipe.out_pos = 0;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return Some(LinkEnd::Teardown(CloseKind::Fin)),
                }
            }
            if wrote {
                tokio::task::consume_budget().await;
                continue;
            }
            if pipe.stages.is_empty() && pipe.out.is_empty() {
                return None;
            }
            let can_read =
                !src_eof && pipe.first_can_accept() && pipe.held_bytes() < self.held_limit.max(1);
            if can_read {
                listening.get_or_insert(now);
            } else {
                listening = None;
            }
            let want_write = !pipe.out.is_empty();
            let sleep_at = clock.timer(deadline, now);
            let chain = &mut self.chain;
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Some(LinkEnd::Cancelled),
                changed = chain.changed(), if self.watching => {
                    match changed {
                        Ok(()) => {
                            let entries = chain.borrow_and_update().clone();
                            let now = clock.now(Instant::now());
                            if let Err(kind) = pipe.apply(&entries, self.seed, now) {
                                return Some(LinkEnd::Teardown(kind));
                            }
                        }
                        Err(_) => self.watching = false,
                    }
                }
                ready = self.dst.writable(), if want_write => {
                    if ready.is_err() {
                        return Some(LinkEnd::Teardown(CloseKind::Fin));
                    }
                }
                ready = self.src.readable(), if can_read => {
                    if ready.is_err() {
                        return Some(LinkEnd::Teardown(CloseKind::Fin));
                    }
                    let read = stamps.read(self.src, buf.get(), listening.unwrap_or(now));
                    match read {
                        Ok((0, ts)) => {
                            src_eof = true;
                            pipe.push_first(Item::Eof, clock.now(ts));
                        }
                        Ok((n, ts)) => {
                            self.counters.received.fetch_add(n as u64, Ordering::Relaxed);
                            let item = pipe.chunk(&buf.get()[..n], ts);
                            pipe.push_first(item, clock.now(ts));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return Some(LinkEnd::Teardown(CloseKind::Fin)),
                    }
                    buf.release();
                }
                _ = timer.sleep_until(sleep_at.unwrap_or(now)), if sleep_at.is_some() => {
                    clock.fired();
                }
            }
        }
    }
}

/// The outcome of [`read_clearing`].
pub(super) enum Read {
    Eof,
    /// `full`: the read filled the buffer, so more may be waiting.
    Data {
        n: usize,
        full: bool,
    },
}

/// Reads once from `src`. After a short read (the socket is drained) tokio's read
/// readiness is cleared, so the next attempt does not spend a `recv` that fails with
/// `EAGAIN`. The read runs inside `try_io`, so the readiness cleared is the one observed
/// *before* the `recv`: a wake-up that arrives meanwhile is kept, never lost.
pub(super) fn read_clearing(src: &TcpStream, buf: &mut [u8]) -> io::Result<Read> {
    let mut got = 0;
    let res = src.try_io(Interest::READABLE, || {
        got = (&*socket2::SockRef::from(src)).read(buf)?;
        if got > 0 && got < buf.len() {
            // Not an error: makes `try_io` clear the readiness.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(got)
    });
    match res {
        Ok(0) => Ok(Read::Eof),
        Ok(n) => Ok(Read::Data { n, full: true }),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(Read::Data {
            n: got,
            full: false,
        }),
        Err(e) => Err(e),
    }
}

/// A read straight from the socket, past the reactor's readiness (see [`Link::fresh`]):
/// a `WouldBlock` leaves the readiness as it was, for the reactor to report.
fn read_raw(src: &TcpStream, buf: &mut [u8]) -> io::Result<Read> {
    match (&*socket2::SockRef::from(src)).read(buf)? {
        0 => Ok(Read::Eof),
        n => Ok(Read::Data {
            n,
            full: n == buf.len(),
        }),
    }
}

/// A write straight to the socket, past the reactor's readiness (see [`Link::fresh`]).
/// `more`: the caller shuts writing down right after, so on Linux the kernel may keep a
/// short tail back (`MSG_MORE`) and send it in the FIN's segment. Nothing is held past
/// that: the `shutdown` (or `close`) that follows sends it, and so does any
/// acknowledgement that comes first.
fn write_raw(dst: &TcpStream, data: &[u8], more: bool) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = {
        let _ = more;
        0
    };
    socket2::SockRef::from(dst).send_with_flags(data, flags)
}

/// Propagates a FIN: shut down writing toward `dst`, keep reading from it.
fn shutdown_write(dst: &TcpStream) {
    let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
}

/// A per-thread pool of read buffers for the fast path, so steady streaming allocates
/// nothing and idle connections hold no buffer.
mod pool {
    use std::cell::RefCell;

    use super::CHUNK_SIZE;

    const MAX_POOLED: usize = 64;

    thread_local! {
        static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) struct Buf(Option<Box<[u8]>>);

    impl Buf {
        pub(super) fn none() -> Buf {
            Buf(None)
        }

        pub(super) fn get(&mut self) -> &mut [u8] {
            self.0.get_or_insert_with(|| {
                POOL.with(|p| p.borrow_mut().pop())
                    .unwrap_or_else(|| vec![0u8; CHUNK_SIZE].into_boxed_slice())
            })
        }

        pub(super) fn release(&mut self) {
            if let Some(b) = self.0.take() {
                POOL.with(|p| {
                    let mut p = p.borrow_mut();
                    if p.len() < MAX_POOLED {
                        p.push(b);
                    }
                });
            }
        }
    }

    impl Drop for Buf {
        fn drop(&mut self) {
            self.release();
        }
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use std::sync::atomic::Ordering;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// A splice error in the middle of a bulk stream (data already in the pipe) hands what
    /// the pipe holds to buffered copying, turns splicing off for the process, and loses
    /// or reorders nothing.
    #[tokio::test]
    async fn splice_error_falls_back_to_copying_without_losing_bytes() {
        if splice::Pipe::new().is_err() {
            return; // No usable pipes for this user: links never splice here.
        }
        const LEN: usize = 8 << 20;
        let data: Vec<u8> = (0..LEN).map(|i| (i * 7 + i / 4099) as u8).collect();
        let (mut client, proxy_in) = pair().await;
        let (proxy_out, mut server) = pair().await;
        let (_tx, rx) = watch::channel(Chain::default());
        let cancel = CancellationToken::new();
        let counters = DirectionCounters::default();
        let conn_bytes = AtomicU64::new(0);
        splice::FAIL_NEXT_OUT.store(libc::EINVAL, Ordering::Relaxed);
        let link = Link {
            src: &proxy_in,
            dst: &proxy_out,
            chain: rx,
            watching: true,
            cancel: &cancel,
            seed: 1,
            counters: &counters,
            held_limit: super::super::TOXIC_BUFFER_BYTES,
            carry: None,
            conn_bytes: &conn_bytes,
            fresh: [true; 2],
            ends: None,
            client: None,
            unpaced: false,
        };
        let sent = data.clone();
        let writer = async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            client
        };
        let reader = async {
            let mut got = Vec::with_capacity(LEN);
            server.read_to_end(&mut got).await.unwrap();
            got
        };
        let (end, _client, got) = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            tokio::join!(link.run(), writer, reader)
        })
        .await
        .expect("the stream finishes");
        let injected_unused = splice::FAIL_NEXT_OUT.swap(0, Ordering::Relaxed);
        let spliced_later = splice::enabled();
        splice::enable_for_tests();
        assert_eq!(end, LinkEnd::Eof);
        assert_eq!(got.len(), LEN);
        assert!(got == data, "bytes lost or reordered");
        assert_eq!(injected_unused, 0, "the stream never spliced");
        assert!(!spliced_later, "splice stays off after the error");
        assert_eq!(counters.sent.load(Ordering::Relaxed), LEN as u64);
        assert_eq!(counters.received.load(Ordering::Relaxed), LEN as u64);
    }
}
