//! The live connections of one proxy (`GET /proxies/{proxy}/connections`, beyond.md §3.1).
//!
//! Each open connection has one small shared [`Conn`] record: its id, client address,
//! opening time, the link seed its toxicity rolls derive from, two live byte counters and
//! a kill handle. The table outlives proxy restarts, so ids keep increasing per proxy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::chain::{mix, roll};
use crate::events::{Bus, Kind, Value};
use crate::model::Direction;

/// Why a connection closed (the `reason` of `connection.closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Client,
    Upstream,
    Toxic,
    Api,
    ProxyStopped,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Upstream => "upstream",
            CloseReason::Toxic => "toxic",
            CloseReason::Api => "api",
            CloseReason::ProxyStopped => "proxy_stopped",
        }
    }
}

/// One open connection.
#[derive(Debug)]
pub struct Conn {
    pub id: u64,
    pub client: SocketAddr,
    pub opened_at: SystemTime,
    /// The connection's seed; direction `d`'s link seed is `mix(seed, d + 1)`.
    pub seed: u64,
    /// Bytes written toward the destination, indexed by `Direction::index()`.
    pub bytes: [AtomicU64; 2],
    /// The connection's token: cancelling it closes both sockets.
    pub cancel: CancellationToken,
    /// Set by a kill: the sockets close with RST instead of FIN.
    pub reset: AtomicBool,
    /// Set by a kill: the close reason is `api`.
    pub killed: AtomicBool,
}

impl Conn {
    /// The link seed of one direction (as the link uses it).
    pub fn link_seed(&self, dir: Direction) -> u64 {
        link_seed(self.seed, dir)
    }

    /// Whether a toxic (`uid`, `toxicity_gen`, `toxicity`) applies to this connection's
    /// `dir` link: the same pure roll the link's stage makes.
    pub fn rolls(&self, dir: Direction, uid: u64, toxicity_gen: u64, toxicity: f32) -> bool {
        roll(self.link_seed(dir), uid, toxicity_gen, toxicity)
    }
}

/// The link seed of direction `dir` of a connection with seed `seed`.
pub fn link_seed(seed: u64, dir: Direction) -> u64 {
    mix(seed, dir.index() as u64 + 1)
}

/// The open connections of one proxy, oldest first.
#[derive(Debug)]
pub struct ConnTable {
    proxy: String,
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    events: Arc<Bus>,
}

impl ConnTable {
    pub fn new(proxy: &str, events: Arc<Bus>) -> ConnTable {
        ConnTable {
            proxy: proxy.to_owned(),
            next_id: AtomicU64::new(1),
            open: Mutex::new(BTreeMap::new()),
            events,
        }
    }

    /// Registers an opened connection and publishes `connection.opened`.
    pub fn open(&self, client: SocketAddr, seed: u64, cancel: CancellationToken) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            client,
            opened_at: SystemTime::now(),
            seed,
            bytes: Default::default(),
            cancel,
            reset: AtomicBool::new(false),
            killed: AtomicBool::new(false),
        });
        self.lock().insert(conn.id, conn.clone());
        if !self.events.has_readers() {
            return conn;
        }
        let client = client.to_string();
        self.events.publish(
            Kind::ConnectionOpened,
            Some(&self.proxy),
            &[("id", Value::U64(conn.id)), ("client", Value::Str(&client))],
        );
        conn
    }

    /// Unregisters a closed connection and publishes `connection.closed`.
    pub fn close(&self, conn: &Conn, reason: CloseReason) {
        self.lock().remove(&conn.id);
        if !self.events.has_readers() {
            return;
        }
        let client = conn.client.to_string();
        self.events.publish(
            Kind::ConnectionClosed,
            Some(&self.proxy),
            &[
                ("id", Value::U64(conn.id)),
                ("client", Value::Str(&client)),
                ("reason", Value::Str(reason.as_str())),
                (
                    "bytes",
                    Value::Raw(&format!(
                        "{{\"upstream\":{},\"downstream\":{}}}",
                        conn.bytes[0].load(Ordering::Relaxed),
                        conn.bytes[1].load(Ordering::Relaxed)
                    )),
                ),
            ],
        );
    }

    /// The open connections, oldest first.
    pub fn list(&self) -> Vec<Arc<Conn>> {
        self.lock().values().cloned().collect()
    }

    /// Closes one connection (RST when `reset`). False when no such connection is open.
    pub fn kill(&self, id: u64, reset: bool) -> bool {
        let Some(conn) = self.lock().get(&id).cloned() else {
            return false;
        };
        if reset {
            conn.reset.store(true, Ordering::Relaxed);
        }
        conn.killed.store(true, Ordering::Relaxed);
        conn.cancel.cancel();
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}
