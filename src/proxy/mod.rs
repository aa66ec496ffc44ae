//! The proxy engine: one listener per enabled proxy, one task per client connection, two
//! links per connection.
//!
//! ```text
//! client ──▶ accept loop ──spawn──▶ connection ──dial──▶ upstream
//!   link "upstream":   client.read   ─▶ stages… ─▶ upstream.write
//!   link "downstream": upstream.read ─▶ stages… ─▶ client.write
//! ```
//!
//! Cancellation is a token tree: proxy instance → connection. Stopping a proxy cancels
//! the instance token (every connection closes at once) and waits for the accept loop to
//! drop its listener, so the port is free when `stop` returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) mod addr;
pub(crate) mod chain;
mod connection;
pub(crate) mod conns;
pub(crate) mod http;
pub(crate) mod link;
pub(crate) mod pipeline;
mod rxstamp;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod splice;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[path = "splice_unsupported.rs"]
mod splice;
mod timer;
mod workers;

pub use crate::metrics::{DirectionCounters, InstanceStats};
pub use chain::{Chain, ChainEntry};
pub use workers::{DataPath, Workers};

/// The default of [`EngineConfig::held_limit`] (`-toxic-buffer-bytes`).
pub const TOXIC_BUFFER_BYTES: usize = 4 << 20;
/// The default `-dial-retry` window.
pub const DEFAULT_DIAL_RETRY: Duration = Duration::from_millis(100);
pub use conns::{CloseReason, Conn, ConnTable};

/// Settings shared by every proxy of a server.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The server seed: toxicity rolls, jitter and slicer cuts derive from it.
    pub seed: u64,
    /// How long a connection waits for its upstream dial.
    pub dial_timeout: Duration,
    /// The most data bytes the toxics of one link (one direction of one connection) hold;
    /// past it the link stops reading its source, so the sender feels backpressure.
    pub held_limit: usize,
    /// How long a refused upstream dial is retried (short backoff) before the client is
    /// closed; zero closes at once, as the reference does.
    pub dial_retry: Duration,
    /// The runtimes that run listeners and connections (by default the caller's).
    /// `toxi-server` runs them on thread-per-core [`Workers`], apart from the control
    /// API, so that busy connections can never delay it.
    pub data_path: DataPath,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: rand::random(),
            dial_timeout: Duration::from_secs(10),
            held_limit: TOXIC_BUFFER_BYTES,
            dial_retry: DEFAULT_DIAL_RETRY,
            data_path: DataPath::caller(),
        }
    }
}

/// Binds a TCP listener for `address` with the reference's rules (`localhost` is
/// 127.0.0.1, wildcards are dual-stack, errors read `listen tcp …` as Go's do): the proxies
/// and the API listen the same way.
pub fn listen(address: &str) -> Result<std::net::TcpListener, String> {
    addr::bind(address)
}

/// What a running proxy's connections share. Immutable for the instance's life: a
/// changed listen or upstream means a new instance.
pub(crate) struct Instance {
    pub name: String,
    /// The bound listen address (the `listener` metrics label and log field).
    pub listen: String,
    pub upstream: String,
    pub seed: u64,
    pub dial_timeout: Duration,
    pub held_limit: usize,
    pub dial_retry: Duration,
    /// The toxic chains, per direction (shared with the proxy, so edits reach connections).
    pub chains: Arc<[watch::Sender<Chain>; 2]>,
    /// `protocol: http`: the HTTP toxics (`None` for a `tcp` proxy, which parses nothing).
    pub http: Option<Arc<http::HttpLayer>>,
    pub stats: Arc<InstanceStats>,
    /// The proxy's open connections (kept across instances).
    pub conns: Arc<ConnTable>,
    next_seq: AtomicU64,
    /// The upstream's resolved addresses and when they were looked up (hostname upstreams).
    resolved: std::sync::Mutex<Option<(tokio::time::Instant, Arc<[std::net::SocketAddr]>)>>,
}

/// A started proxy: its accept loop and its connection tasks. Dropping it stops it (the
/// listener closes soon after, on the data-path runtime); [`Running::stop`] also waits
/// until the port is free and every connection task has finished.
pub(crate) struct Running {
    /// Cancels everything: the accept loop and every connection.
    cancel: CancellationToken,
    /// A child of `cancel`: stops the accept loop only (draining).
    stop_accepting: CancellationToken,
    /// The accept loops, one per listening socket (empty once waited for).
    accept: Vec<JoinHandle<()>>,
    connections: TaskTracker,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Running {
    /// Binds `resolved` (the resolution of `listen`) and starts accepting. Returns the
    /// bound address as the reference reports it, and the handle. Errors are the
    /// reference's `listen tcp …` texts. `stats_for` gives the counters for the bound
    /// address (the metrics series).
    // One call site (the registry's proxy start); the arguments are that proxy's parts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        name: &str,
        listen: &str,
        resolved: &addr::Resolved,
        upstream: &str,
        chains: Arc<[watch::Sender<Chain>; 2]>,
        http: Option<Arc<http::HttpLayer>>,
        stats_for: impl FnOnce(&str) -> Arc<InstanceStats>,
        conns: Arc<ConnTable>,
        config: &EngineConfig,
    ) -> Result<(String, Running), String> {
        // One listening socket per worker (an `SO_REUSEPORT` group on Linux), so the
        // kernel hands each client straight to the worker that serves it.
        let group = if addr::SHARES_PORTS {
            config.data_path.len().max(1)
        } else {
            1
        };
        let std_listeners = addr::bind_group(resolved, group)?;
        let bound = std_listeners[0]
            .local_addr()
            .map_err(|e| format!("listen tcp {listen}: {}", crate::gocompat::errno_text(&e)))?
            .to_string();
        // Each listener is registered with its worker's reactor and accepted on there.
        let first = config.data_path.accept_slot();
        let mut listeners = Vec::with_capacity(std_listeners.len());
        for (i, l) in std_listeners.into_iter().enumerate() {
            let slot = first.map(|f| (f + i) % config.data_path.len());
            let _entered = slot.map(|slot| config.data_path.handle(slot).enter());
            let l = register(l)
                .map_err(|e| format!("listen tcp {listen}: {}", crate::gocompat::errno_text(&e)))?;
            listeners.push((slot, l));
        }
        let inst = Arc::new(Instance {
            name: name.to_string(),
            listen: bound.clone(),
            upstream: upstream.to_string(),
            seed: config.seed,
            dial_timeout: config.dial_timeout,
            held_limit: config.held_limit,
            dial_retry: config.dial_retry,
            chains,
            http,
            stats: stats_for(&bound),
            conns,
            next_seq: AtomicU64::new(0),
            resolved: std::sync::Mutex::new(None),
        });
        let cancel = CancellationToken::new();
        let stop_accepting = cancel.child_token();
        let connections = TaskTracker::new();
        let accept = listeners
            .into_iter()
            .map(|(slot, listener)| {
                let _entered = slot.map(|slot| config.data_path.handle(slot).enter());
                let counted = slot.map(|slot| (config.data_path.clone(), slot));
                // Each listener's connections hang off a token of their own, so two
                // workers never take one lock to open or close a connection's token.
                tokio::spawn(accept_loop(
                    listener,
                    inst.clone(),
                    stop_accepting.clone(),
                    cancel.child_token(),
                    connections.clone(),
                    counted,
                ))
            })
            .collect();
        tracing::info!(name, listen = %bound, upstream, "Started proxy");
        let running = Running {
            cancel,
            stop_accepting,
            accept,
            connections,
        };
        Ok((bound, running))
    }

    /// Closes the listener and every connection. When this returns the port is released
    /// and every connection task has finished (both sockets closed).
    pub(crate) async fn stop(mut self) {
        self.cancel.cancel();
        self.finish_accepting().await;
        self.connections.wait().await;
    }

    /// Closes the listener (new clients are refused) and lets open connections go on.
    pub(crate) async fn stop_accepting(&mut self) {
        self.stop_accepting.cancel();
        self.finish_accepting().await;
    }

    /// After [`Running::stop_accepting`]: waits until every connection has ended by
    /// itself or `deadline` passes, then closes what is left and waits for it. Returns how
    /// many connections were still open at the deadline.
    pub(crate) async fn drain(self, deadline: tokio::time::Instant) -> usize {
        let waited = tokio::time::timeout_at(deadline, self.connections.wait()).await;
        let cut = if waited.is_ok() {
            0
        } else {
            self.connections.len()
        };
        self.stop().await;
        cut
    }

    async fn finish_accepting(&mut self) {
        for accept in std::mem::take(&mut self.accept) {
            let _ = accept.await;
        }
        self.connections.close();
    }
}

/// Accepts clients until cancelled and serves each on this worker, or on a less busy one
/// (see `DataPath::pick`). Accept errors (such as too many open files) back off and retry;
/// the loop never dies while the proxy reports itself enabled. `counted`: the data path
/// and this worker (`None` on the caller's runtime).
async fn accept_loop(
    listener: AsyncFd<std::net::TcpListener>,
    inst: Arc<Instance>,
    cancel: CancellationToken,
    connections_cancel: CancellationToken,
    connections: TaskTracker,
    counted: Option<(DataPath, usize)>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            r = accept(&listener) => r,
        };
        match accepted {
            Ok((sock, peer)) => {
                backoff = Duration::from_millis(5);
                let seq = inst.next_seq.fetch_add(1, Ordering::Relaxed);
                let token = connections_cancel.child_token();
                let inst = inst.clone();
                let (open, handle) = match &counted {
                    Some((path, here)) => {
                        let to = path.pick(*here);
                        let handle = (to != *here).then(|| path.handle(to).clone());
                        (Some(path.enter(to)), handle)
                    }
                    None => (None, None),
                };
                // Registered with the reactor of the worker that serves it, once.
                let serve = async move {
                    if let Ok(sock) = tokio::net::TcpStream::from_std(sock) {
                        connection::serve(sock, peer, inst, seq, token).await;
                    }
                    drop(open);
                };
                match handle {
                    None => connections.spawn(serve),
                    Some(there) => connections.spawn_on(serve, &there),
                };
            }
            Err(e) => {
                tracing::warn!(name = %inst.name, error = %e, "Error while accepting client");
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Registers a listening socket with the current runtime's reactor. Its clients are
/// accepted past tokio's `TcpListener`, which would register each one here at once: a
/// client handed to another worker would be deregistered and registered again.
#[allow(unsafe_code)]
fn register(listener: std::net::TcpListener) -> std::io::Result<AsyncFd<std::net::TcpListener>> {
    // SAFETY: the `AsyncFd` owns the listener, so its descriptor stays open and refers to
    // the same socket until the `AsyncFd` drops.
    Ok(unsafe { AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE) }?)
}

/// Waits for and accepts one client, not yet registered with any reactor.
async fn accept(
    listener: &AsyncFd<std::net::TcpListener>,
) -> std::io::Result<(std::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        // `WouldBlock` clears the readiness, and the loop waits for the next client.
        if let Ok(accepted) = ready.try_io(|l| accept_now(l.get_ref())) {
            return accepted;
        }
    }
}

/// One `accept(2)`, giving a non-blocking, close-on-exec socket.
fn accept_now(
    listener: &std::net::TcpListener,
) -> std::io::Result<(std::net::TcpStream, std::net::SocketAddr)> {
    let listener = socket2::SockRef::from(listener);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let (sock, peer) = listener.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let (sock, peer) = {
        let (sock, peer) = listener.accept()?;
        sock.set_nonblocking(true)?;
        (sock, peer)
    };
    let peer = peer
        .as_socket()
        .ok_or_else(|| std::io::Error::other("accepted a client that is not TCP/IP"))?;
    Ok((sock.into(), peer))
}
