//! One client connection: dial the upstream inside the connection's own task (with a
//! timeout), then run both links in this task until both directions end.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use super::chain::{hash_str, mix};
use super::conns::{CloseReason, Conn};
use super::link::{Link, LinkEnd};
use super::Instance;
use crate::model::Direction;
use crate::toxics::CloseKind;

/// How long a hostname upstream's resolution is reused. Like the reference, the name is
/// looked up again for new connections; reusing it for a second spares a blocking
/// lookup per connection without noticeably delaying a DNS change.
const RESOLVE_TTL: Duration = Duration::from_secs(1);

/// How long the next address of a hostname upstream waits for the one before it, as Go's
/// dialer waits before its fallback (Happy Eyeballs, RFC 8305): a black-holed `::1`
/// delays an IPv4 upstream by this much, not by the whole dial timeout.
const ATTEMPT_DELAY: Duration = Duration::from_millis(300);

/// First and longest pause between dials of a refused upstream (see `dial_retry`).
const RETRY_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(25));

/// Dials the upstream. A refused dial is tried again with a short backoff while the
/// instance's `dial_retry` window lasts (an upstream that is just starting up), then
/// fails as the reference's does. The caller bounds the whole with the dial timeout.
async fn dial(inst: &Instance) -> io::Result<TcpStream> {
    let start = tokio::time::Instant::now();
    let mut backoff = RETRY_BACKOFF.0;
    loop {
        match dial_once(inst).await {
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionRefused
                    && start.elapsed() + backoff <= inst.dial_retry =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF.1);
            }
            r => return r,
        }
    }
}

/// One dial: an address literal directly, a hostname through a short-lived cache of its
/// addresses, raced in Happy Eyeballs order ([`connect_any`]).
async fn dial_once(inst: &Instance) -> io::Result<TcpStream> {
    if let Ok(addr) = inst.upstream.parse::<SocketAddr>() {
        return connect(addr).await;
    }
    let now = tokio::time::Instant::now();
    let cached = {
        let guard = inst.resolved.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .filter(|(at, _)| now.duration_since(*at) < RESOLVE_TTL)
            .map(|(_, a)| a.clone())
    };
    let addrs = match cached {
        Some(addrs) => addrs,
        None => {
            let addrs: Arc<[SocketAddr]> = tokio::net::lookup_host(inst.upstream.as_str())
                .await?
                .collect();
            *inst.resolved.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, addrs.clone()));
            addrs
        }
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("lookup {}: no such host", inst.upstream),
        ));
    }
    connect_any(&addrs, ATTEMPT_DELAY).await
}

/// Dials `addr`, with `TCP_NODELAY` set before the handshake. On loopback the handshake
/// usually completes inside `connect(2)`; the stream is then returned at once, without a
/// trip through the reactor or a timer for the dial timeout. Otherwise it waits for the
/// socket to turn writable and reports the handshake's error, as a plain connect does.
async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let sock = {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_nonblocking(true)?;
        sock
    };
    let _ = sock.set_tcp_nodelay(true);
    match sock.connect(&addr.into()) {
        Ok(()) => return TcpStream::from_std(sock.into()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    if sock.peer_addr().is_ok() {
        return TcpStream::from_std(sock.into());
    }
    if let Some(e) = sock.take_error()? {
        return Err(e);
    }
    let stream = TcpStream::from_std(sock.into())?;
    stream.writable().await?;
    match stream.take_error()? {
        Some(e) => Err(e),
        None => Ok(stream),
    }
}

/// Connects to the first of `addrs` that answers. Addresses are tried in Happy Eyeballs
/// order (families alternate, starting with the resolver's first choice); each attempt
/// starts when the one before it failed or after `delay`, and the first to connect wins.
/// If all fail, the error is the first address's.
async fn connect_any(addrs: &[SocketAddr], delay: Duration) -> io::Result<TcpStream> {
    if let [addr] = addrs {
        return connect(*addr).await;
    }
    let first_v6 = addrs.first().is_some_and(|a| a.is_ipv6());
    let (mut primary, mut fallback): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.iter().partition(|a| a.is_ipv6() == first_v6);
    let mut order = Vec::with_capacity(addrs.len());
    primary.reverse();
    fallback.reverse();
    while !primary.is_empty() || !fallback.is_empty() {
        order.extend(primary.pop());
        order.extend(fallback.pop());
    }
    let mut attempts = tokio::task::JoinSet::new();
    let mut next = order.into_iter().enumerate();
    let mut errors: Vec<(usize, io::Error)> = Vec::new();
    loop {
        let may_start = attempts.is_empty();
        if may_start {
            match next.next() {
                Some((i, addr)) => {
                    attempts.spawn(async move { (i, connect(addr).await) });
                }
                None => break,
            }
        }
        tokio::select! {
            done = attempts.join_next() => match done {
                Some(Ok((_, Ok(stream)))) => return Ok(stream),
                Some(Ok((i, Err(e)))) => errors.push((i, e)),
                Some(Err(e)) => errors.push((usize::MAX, io::Error::other(e))),
                None => {}
            },
            _ = tokio::time::sleep(delay) => {
                if let Some((i, addr)) = next.next() {
                    attempts.spawn(async move { (i, connect(addr).await) });
                }
            }
        }
    }
    errors.sort_by_key(|(i, _)| *i);
    Err(errors
        .into_iter()
        .next()
        .map(|(_, e)| e)
        .unwrap_or_else(|| io::Error::other("no address to dial")))
}

pub(crate) async fn serve(
    client: TcpStream,
    peer: SocketAddr,
    inst: Arc<Instance>,
    seq: u64,
    cancel: CancellationToken,
) {
    // On Linux the client inherited `TCP_NODELAY` from its listener (`addr::bind_group`).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = client.set_nodelay(true);
    let dial = tokio::time::timeout(inst.dial_timeout, dial(&inst));
    let upstream = tokio::select! {
        biased;
        _ = cancel.cancelled() => return,
        r = dial => r,
    };
    let upstream = match upstream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!(name = %inst.name, upstream = %inst.upstream, client = %peer, error = %e,
                "Unable to open connection to upstream");
            return;
        }
        Err(_) => {
            tracing::error!(name = %inst.name, upstream = %inst.upstream, client = %peer,
                error = "dial timeout", "Unable to open connection to upstream");
            return;
        }
    };
    inst.stats
        .active
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(name = %inst.name, listen = %inst.listen, upstream = %inst.upstream,
        client = %peer, "Accepted client");

    let seed = mix(mix(inst.seed, hash_str(&inst.name)), seq);
    let record = inst.conns.open(peer, seed, cancel.clone());
    if let Some(http) = inst.http.clone() {
        // `protocol: http`: the HTTP layer runs between the two TCP links (proxy/http.rs).
        // Boxed: the HTTP layer's state would otherwise enlarge every TCP connection's task.
        Box::pin(super::http::serve(
            client, upstream, &inst, http, seed, &cancel, &record,
        ))
        .await;
        let reason = if record.killed.load(Relaxed) {
            CloseReason::Api
        } else if cancel.is_cancelled() {
            CloseReason::ProxyStopped
        } else {
            CloseReason::Client
        };
        inst.conns.close(&record, reason);
        inst.stats
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        return;
    }
    // Which link ended first (0: none yet, else its direction index + 1): the close reason.
    let first = std::sync::atomic::AtomicU8::new(0);
    // Both sockets close as soon as both links end (see `Link::pass_eof`).
    let ends = [AtomicBool::new(false), AtomicBool::new(false)];
    let link = |dir: Direction, src, dst| Link {
        ends: Some((&ends, dir.index())),
        ..Link::of(&inst, dir, src, dst, &cancel, seed, &record)
    };
    let up = link(Direction::Upstream, &client, &upstream);
    let down = link(Direction::Downstream, &upstream, &client);
    let (a, b) = tokio::join!(
        run_link(up, Direction::Upstream, &first),
        run_link(down, Direction::Downstream, &first)
    );
    let reset = LinkEnd::Teardown(CloseKind::Reset);
    let reason = close_reason(&inst, &record, [a, b], first.load(Relaxed));
    inst.conns.close(&record, reason);
    if a == reset || b == reset || record.reset.load(Relaxed) {
        // SO_LINGER=0: closing sends RST to both peers.
        let _ = socket2::SockRef::from(&client).set_linger(Some(std::time::Duration::ZERO));
        let _ = socket2::SockRef::from(&upstream).set_linger(Some(std::time::Duration::ZERO));
    }
    inst.stats
        .active
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(name = %inst.name, listen = %inst.listen, upstream = %inst.upstream,
        client = %peer, upstream_end = ?a, downstream_end = ?b, "Closed client");
}

/// Why a connection ended: killed through the API, its proxy stopped, or the side whose
/// link ended first (a toxic when that link tore the connection down with toxics on it).
fn close_reason(inst: &Instance, conn: &Conn, ends: [LinkEnd; 2], first: u8) -> CloseReason {
    if conn.killed.load(Relaxed) {
        return CloseReason::Api;
    }
    let Some(dir) = first.checked_sub(1).map(usize::from) else {
        return CloseReason::ProxyStopped;
    };
    match ends[dir] {
        LinkEnd::Cancelled => CloseReason::ProxyStopped,
        LinkEnd::Teardown(_) if !inst.chains[dir].borrow().is_empty() => CloseReason::Toxic,
        _ if dir == Direction::Upstream.index() => CloseReason::Client,
        _ => CloseReason::Upstream,
    }
}

/// Runs one link and notes it in `first` if it is the first of the two to end.
async fn run_link(link: Link<'_>, dir: Direction, first: &std::sync::atomic::AtomicU8) -> LinkEnd {
    let end = link.run().await;
    let _ = first.compare_exchange(0, dir.index() as u8 + 1, Relaxed, Relaxed);
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A black-holed IPv6 address first (its accept queue is full, so SYNs are dropped)
    /// does not hold up the IPv4 address behind it for longer than the attempt delay.
    #[tokio::test]
    async fn happy_eyeballs_skips_a_black_hole() {
        let hole = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None);
        let Ok(hole) = hole else { return };
        if hole
            .bind(&"[::1]:0".parse::<SocketAddr>().unwrap().into())
            .is_err()
        {
            return; // No IPv6 loopback here.
        }
        hole.listen(0).unwrap();
        let hole_addr = hole.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&hole_addr, Duration::from_millis(200)) {
                Ok(s) => fillers.push(s),
                Err(_) => break,
            }
        }
        let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good_addr = good.local_addr().unwrap();
        let start = tokio::time::Instant::now();
        let addrs = [hole_addr, good_addr];
        let dial = tokio::time::timeout(
            Duration::from_secs(10),
            connect_any(&addrs, Duration::from_millis(100)),
        );
        let stream = dial.await.expect("not stuck on the black hole").unwrap();
        assert_eq!(stream.peer_addr().unwrap(), good_addr);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    /// All addresses failing gives the first address's error.
    #[tokio::test]
    async fn all_refused_reports_the_first_error() {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addrs = [a.local_addr().unwrap(), b.local_addr().unwrap()];
        drop((a, b));
        let e = connect_any(&addrs, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    }
}
