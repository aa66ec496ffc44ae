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

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) mod addr;
pub(crate) mod chain;
mod connection;
pub(crate) mod http;
pub(crate) mod link;
pub(crate) mod pipeline;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod splice;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[path = "splice_unsupported.rs"]
mod splice;

pub use chain::{Chain, ChainEntry};
pub use link::DirectionCounters;

/// The default of [`EngineConfig::held_limit`] (`-toxic-buffer-bytes`).
pub const TOXIC_BUFFER_BYTES: usize = 4 << 20;

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
    /// The runtime that runs listeners and connections. `None` means the runtime of the
    /// caller. `toxi-server` keeps the data path on its own runtime so that busy
    /// connections can never delay the control API.
    pub runtime: Option<tokio::runtime::Handle>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: rand::random(),
            dial_timeout: Duration::from_secs(10),
            held_limit: TOXIC_BUFFER_BYTES,
            runtime: None,
        }
    }
}

/// Live counters of one started proxy instance (one listen/upstream pair).
#[derive(Debug, Default)]
pub struct InstanceStats {
    /// Indexed by `Direction::index()`.
    pub directions: [DirectionCounters; 2],
    /// Connections currently open (upstream dialled).
    pub active: AtomicI64,
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
    /// The toxic chains, per direction (shared with the proxy, so edits reach connections).
    pub chains: Arc<[watch::Sender<Chain>; 2]>,
    /// `protocol: http`: the HTTP toxics (`None` for a `tcp` proxy, which parses nothing).
    pub http: Option<Arc<http::HttpLayer>>,
    pub stats: Arc<InstanceStats>,
    next_seq: AtomicU64,
    /// The upstream's resolved addresses and when they were looked up (hostname upstreams).
    resolved: std::sync::Mutex<Option<(tokio::time::Instant, Arc<[std::net::SocketAddr]>)>>,
}

/// A started proxy: its cancellation token and its accept loop.
pub(crate) struct Running {
    cancel: CancellationToken,
    accept: JoinHandle<()>,
}

impl Running {
    /// Binds `listen` and starts accepting. Returns the bound address as the reference
    /// reports it, and the handle. Errors are the reference's `listen tcp …` texts.
    /// `stats_for` gives the counters for the bound address (the metrics series).
    pub(crate) fn start(
        name: &str,
        listen: &str,
        upstream: &str,
        chains: Arc<[watch::Sender<Chain>; 2]>,
        http: Option<Arc<http::HttpLayer>>,
        stats_for: impl FnOnce(&str) -> Arc<InstanceStats>,
        config: &EngineConfig,
    ) -> Result<(String, Running), String> {
        let std_listener = addr::bind(listen)?;
        let bound = std_listener
            .local_addr()
            .map_err(|e| format!("listen tcp {listen}: {}", addr::os_error_text(&e)))?
            .to_string();
        // Register the listener with the data-path runtime's reactor, and run its accept
        // loop (and so every connection it spawns) there.
        let _entered = config.runtime.as_ref().map(|h| h.enter());
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .map_err(|e| format!("listen tcp {listen}: {}", addr::os_error_text(&e)))?;
        let inst = Arc::new(Instance {
            name: name.to_string(),
            listen: bound.clone(),
            upstream: upstream.to_string(),
            seed: config.seed,
            dial_timeout: config.dial_timeout,
            held_limit: config.held_limit,
            chains,
            http,
            stats: stats_for(&bound),
            next_seq: AtomicU64::new(0),
            resolved: std::sync::Mutex::new(None),
        });
        let cancel = CancellationToken::new();
        let accept = tokio::spawn(accept_loop(listener, inst, cancel.clone()));
        drop(_entered);
        tracing::info!(name, listen = %bound, upstream, "Started proxy");
        Ok((bound, Running { cancel, accept }))
    }

    /// Closes the listener and every connection. The port is released when this returns.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        let _ = self.accept.await;
    }
}

/// Accepts clients until cancelled. Accept errors (such as too many open files) back off
/// and retry; the loop never dies while the proxy reports itself enabled.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    inst: Arc<Instance>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((sock, peer)) => {
                backoff = Duration::from_millis(5);
                let seq = inst.next_seq.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(connection::serve(
                    sock,
                    peer,
                    inst.clone(),
                    seq,
                    cancel.child_token(),
                ));
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
