//! One client connection: dial the upstream inside the connection's own task (with a
//! timeout), then run both links in this task until both directions end.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use std::sync::atomic::Ordering::Relaxed;

use super::chain::{hash_str, mix};
use super::conns::{link_seed, CloseReason, Conn};
use super::link::{Link, LinkEnd};
use super::Instance;
use crate::model::Direction;
use crate::toxics::CloseKind;

/// How long a hostname upstream's resolution is reused. Like the reference, the name is
/// looked up again for new connections; reusing it for a second spares a blocking
/// lookup per connection without noticeably delaying a DNS change.
const RESOLVE_TTL: Duration = Duration::from_secs(1);

/// Dials the upstream: an address literal directly, a hostname through a short-lived
/// cache of its addresses, trying each address in turn as Go's dialer does.
async fn dial(inst: &Instance) -> io::Result<TcpStream> {
    if let Ok(addr) = inst.upstream.parse::<SocketAddr>() {
        return TcpStream::connect(addr).await;
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
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("lookup {}: no such host", inst.upstream),
    );
    for addr in addrs.iter() {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

pub(crate) async fn serve(
    client: TcpStream,
    peer: SocketAddr,
    inst: Arc<Instance>,
    seq: u64,
    cancel: CancellationToken,
) {
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
    let _ = upstream.set_nodelay(true);
    inst.stats
        .active
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(name = %inst.name, listen = %inst.listen, upstream = %inst.upstream,
        client = %peer, "Accepted client");

    let seed = mix(mix(inst.seed, hash_str(&inst.name)), seq);
    let record = inst.conns.open(peer, seed, cancel.clone());
    // Which link ended first (0: none yet, else its direction index + 1): the close reason.
    let first = std::sync::atomic::AtomicU8::new(0);
    let link = |dir: Direction, src, dst| Link {
        src,
        dst,
        chain: inst.chains[dir.index()].subscribe(),
        watching: true,
        cancel: &cancel,
        seed: link_seed(seed, dir),
        counters: &inst.stats.directions[dir.index()],
        conn_bytes: &record.bytes[dir.index()],
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
