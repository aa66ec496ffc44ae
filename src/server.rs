//! The composition root: build the registry, apply `-config` before the API listens,
//! serve the API, and shut everything down on request.
//!
//! [`Server::start`] is what the binary, the tests and embedding applications call. One
//! call starts a whole server on `127.0.0.1` with an OS-picked port; [`Server::client`]
//! drives it over its real HTTP API:
//!
//! ```
//! use toxi::client::{NewProxy, NewToxic};
//! use toxi::server::{Config, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let toxi = Server::start(Config::for_tests()).await?;
//! let client = toxi.client();
//! let db = client
//!     .create_proxy(&NewProxy::new("postgres", "127.0.0.1:0", "127.0.0.1:5432"))
//!     .await?;
//! client
//!     .add_toxic("postgres", &NewToxic::new("latency").attribute("latency", 300))
//!     .await?;
//! // Point the code under test at `db.listen` instead of 127.0.0.1:5432.
//! assert!(db.listen.starts_with("127.0.0.1:"));
//! assert_eq!(client.toxics("postgres").await?[0].name, "latency_downstream");
//! toxi.shutdown().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::proxy::EngineConfig;
use crate::registry::Registry;

/// The default `-shutdown-grace`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Server settings (the command-line flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// API host (`-host`), default `localhost`.
    pub host: String,
    /// API port (`-port`), default `8474`; `0` picks a free port.
    pub port: String,
    /// JSON file of proxies to populate before the API listens (`-config`).
    pub config_file: Option<PathBuf>,
    /// Re-apply `config_file` when it changes and on `SIGHUP` (`-config-watch`).
    pub config_watch: bool,
    /// Seed for toxicity rolls, jitter and slicer cuts (`-seed`); random when `None`.
    pub seed: Option<i64>,
    /// Serve `toxiproxy_proxy_*` metrics on `/metrics` (`-proxy-metrics`).
    pub proxy_metrics: bool,
    /// Serve process metrics on `/metrics` (`-runtime-metrics`).
    pub runtime_metrics: bool,
    /// Upstream dial timeout per connection (`-dial-timeout`).
    pub dial_timeout: Duration,
    /// The most data bytes the toxics of one link hold before it stops reading
    /// (`-toxic-buffer-bytes`).
    pub toxic_buffer_bytes: usize,
    /// How long a refused upstream dial is retried before the client is closed
    /// (`-dial-retry`); zero closes at once, as the reference does.
    pub dial_retry: Duration,
    /// On shutdown, how long open connections may go on after the listeners closed
    /// (`-shutdown-grace`); zero closes them at once.
    pub shutdown_grace: Duration,
    /// When set, API routes other than `/version` need `Authorization: Bearer <token>`.
    pub api_token: Option<String>,
    /// Host names the dashboard may be reached by, beyond IP literals and `localhost`
    /// (`-ui-allowed-hosts`).
    pub ui_allowed_hosts: Vec<String>,
    /// Where the data path (listeners and connections) runs; by default on the runtime
    /// `Server::start` is called on. The binary runs the API on a thread of its own and
    /// passes its thread-per-core [`Workers`](crate::proxy::Workers) here.
    pub data_path: crate::proxy::DataPath,
    /// `-max-toxic-duration`: toxics added through the API without a `duration` get this
    /// one, and a longer one is refused.
    pub max_toxic_duration: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "localhost".into(),
            port: "8474".into(),
            config_file: None,
            config_watch: false,
            seed: None,
            proxy_metrics: false,
            runtime_metrics: false,
            dial_timeout: Duration::from_secs(10),
            toxic_buffer_bytes: crate::proxy::TOXIC_BUFFER_BYTES,
            dial_retry: crate::proxy::DEFAULT_DIAL_RETRY,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            api_token: None,
            ui_allowed_hosts: Vec::new(),
            data_path: crate::proxy::DataPath::caller(),
            max_toxic_duration: None,
        }
    }
}

impl Config {
    /// Defaults, but the API on `127.0.0.1` with a port the OS picks.
    pub fn for_tests() -> Config {
        Config {
            host: "127.0.0.1".into(),
            port: "0".into(),
            shutdown_grace: Duration::ZERO,
            ..Config::default()
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The API address could not be bound (text as Go reports it).
    #[error("{0}")]
    ApiBind(String),
    /// The `-config` file declares invalid toxics.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

/// A running server.
pub struct Server {
    api_addr: SocketAddr,
    registry: Arc<Registry>,
    /// Cancelled to stop the API.
    shutdown: CancellationToken,
    shutdown_grace: Duration,
    api_task: JoinHandle<()>,
}

impl Server {
    /// Builds the registry, populates it from `config.config_file` (errors are logged, not
    /// fatal, as in the reference), binds the API and starts serving it.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        let seed = config.seed.map(|s| s as u64).unwrap_or_else(rand::random);
        let registry = Arc::new(
            Registry::new(EngineConfig {
                seed,
                dial_timeout: config.dial_timeout,
                held_limit: config.toxic_buffer_bytes,
                dial_retry: config.dial_retry,
                data_path: config.data_path.clone(),
            })
            .with_max_toxic_duration(
                config
                    .max_toxic_duration
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            ),
        );
        tracing::info!(version = crate::VERSION, "Starting Toxiproxy");
        let mut seen = None;
        if let Some(path) = &config.config_file {
            seen = crate::config::load(&registry, path).await?;
        }
        let address = crate::gocompat::join_host_port(&config.host, &config.port);
        let std_listener = crate::proxy::listen(&address).map_err(StartError::ApiBind)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .map_err(|e| StartError::ApiBind(e.to_string()))?;
        let api_addr = listener
            .local_addr()
            .map_err(|e| StartError::ApiBind(e.to_string()))?;
        tracing::info!(address = %api_addr, "Starting Toxiproxy HTTP server");
        let shutdown = CancellationToken::new();
        tokio::spawn(crate::schedule::run(registry.clone(), shutdown.clone()));
        if let (Some(path), true) = (&config.config_file, config.config_watch) {
            crate::config::spawn_watch(registry.clone(), path.clone(), seen, shutdown.clone());
        }
        let metrics = crate::metrics::renderer(
            registry.metrics().clone(),
            config.proxy_metrics,
            config.runtime_metrics,
        );
        let state = crate::api::ApiState {
            registry: registry.clone(),
            metrics,
            api_token: config.api_token.clone(),
            ui_allowed_hosts: config.ui_allowed_hosts.clone(),
        };
        let api_task = tokio::spawn(crate::api::serve(listener, state, shutdown.clone()));
        Ok(Server {
            api_addr,
            registry,
            shutdown,
            shutdown_grace: config.shutdown_grace,
            api_task,
        })
    }

    /// The address the API is bound to.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The API base URL, e.g. `http://127.0.0.1:8474`.
    pub fn url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// A typed API client for this server.
    pub fn client(&self) -> crate::client::Client {
        crate::client::Client::new(&self.url())
    }

    /// The proxy registry, for in-process control without HTTP.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Stops the API and every listener, lets open connections finish for up to the
    /// configured `shutdown_grace`, then closes the rest. Returns soon after even if an
    /// API client hangs.
    pub async fn shutdown(self) {
        tracing::info!("Shutdown started");
        self.shutdown.cancel();
        self.registry.drain_all(self.shutdown_grace).await;
        let mut task = self.api_task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}
