//! One client connection: dial the upstream inside the connection's own task (with a
//! timeout), then run both links in this task until both directions end.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::chain::{hash_str, mix};
use super::link::{Link, LinkEnd};
use super::Instance;
use crate::model::Direction;
use crate::toxics::CloseKind;

pub(crate) async fn serve(
    client: TcpStream,
    inst: Arc<Instance>,
    seq: u64,
    cancel: CancellationToken,
) {
    let peer = client
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = client.set_nodelay(true);
    let dial = tokio::time::timeout(
        inst.dial_timeout,
        TcpStream::connect(inst.upstream.as_str()),
    );
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
    let link = |dir: Direction, src, dst| Link {
        src,
        dst,
        chain: inst.chains[dir.index()].subscribe(),
        watching: true,
        cancel: &cancel,
        seed: mix(seed, dir.index() as u64 + 1),
        counters: &inst.stats.directions[dir.index()],
    };
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
