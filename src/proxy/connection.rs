//! One client connection: dial the upstream inside the connection's own task (with a
//! timeout), then run both links in this task until both directions end.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::chain::{hash_str, mix};
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
    if let Some(http) = inst.http.clone() {
        // `protocol: http`: the HTTP layer runs between the two TCP links (proxy/http.rs).
        super::http::serve(client, upstream, &inst, http, seed, &cancel).await;
        inst.stats
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        return;
    }
    let link = |dir: Direction, src, dst| Link::of(&inst, dir, src, dst, &cancel, seed);
    let up = link(Direction::Upstream, &client, &upstream);
    let down = link(Direction::Downstream, &upstream, &client);
    let (a, b) = tokio::join!(up.run(), down.run());
    let reset = LinkEnd::Teardown(CloseKind::Reset);
    if a == reset || b == reset {
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
