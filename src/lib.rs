//! toxi: a TCP fault-injection proxy, a drop-in replacement for Toxiproxy.
//!
//! Module map (imports point this way: `model` ◀ `toxics` ◀ `proxy` ◀ `registry` ◀ `api`
//! ◀ `server`):
//!
//! * [`model`]: wire types spelled as Toxiproxy spells them, lenient JSON decoding;
//! * [`toxics`]: the toxic catalog: each type's declaration and its behaviour as a
//!   clock-driven state machine;
//! * [`proxy`]: listeners, connections and links (the data path);
//! * [`registry`]: the proxy collection and its API semantics;
//! * [`schedule`]: the timer that flips scheduled toxics and removes expired ones;
//! * [`api`]: the Toxiproxy HTTP API on hyper;
//! * [`metrics`]: Prometheus `/metrics` and the series the engine feeds (the registry
//!   takes its counters from [`metrics::Store`]);
//! * [`logging`]: zerolog-style JSON (or text) logs on stdout, `LOG_LEVEL`;
//! * [`config`]: the `-config` file, its toxics, and `-config-watch` reloads;
//! * [`server`]: start a whole server in-process ([`server::Server::start`]);
//! * [`client`]: a typed async client for every API route (the `toxi` CLI uses it).
//! * [`gocompat`]: Go-compatible helpers shared by both sides (flags, quoting, errno texts,
//!   `host:port`).
//!
//! Everything from `proxy` to `server` (and `metrics`, `logging`) is the default feature
//! `server`; `model`, `toxics`, `client` and `gocompat` are always there.
#![deny(unsafe_code)]

#[cfg(feature = "server")]
pub mod api;
pub mod client;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod events;
pub mod gocompat;
#[cfg(feature = "server")]
pub mod logging;
#[cfg(feature = "server")]
pub mod metrics;
pub mod model;
#[cfg(feature = "server")]
pub mod proxy;
#[cfg(feature = "server")]
pub mod registry;
#[cfg(feature = "server")]
pub mod schedule;
#[cfg(feature = "server")]
pub mod server;
pub mod toxics;

/// toxi's version, reported by `/version` and `-version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
