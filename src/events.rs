//! The live event stream behind `GET /events` (beyond.md §3.2).
//!
//! Every event is rendered once, when published, into one JSON object
//! (`{"time":…,"type":…,"proxy":…,…}`) and fanned out through a bounded
//! [`tokio::sync::broadcast`] channel. Publishing never waits: a reader that falls more than
//! [`CAPACITY`] events behind loses the oldest ones and is told so by a `lagged` event
//! carrying the number it missed. With no reader attached, publishing renders nothing.
//!
//! This module is a leaf: the registry, the proxies and (later) schedules and config
//! reloads call [`Bus::publish`]; it knows nothing about them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

use crate::model::json::write_str;

/// Events a reader may fall behind before it gets `lagged`.
pub const CAPACITY: usize = 4096;

/// The event types of beyond.md §3.2, plus `lagged` (sent to one reader only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ProxyCreated,
    ProxyUpdated,
    ProxyDeleted,
    ToxicAdded,
    ToxicUpdated,
    ToxicRemoved,
    ToxicExpired,
    ToxicActivated,
    ToxicDeactivated,
    ConnectionOpened,
    ConnectionClosed,
    ConfigReloaded,
    ConfigFailed,
    Lagged,
}

impl Kind {
    /// The `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ProxyCreated => "proxy.created",
            Kind::ProxyUpdated => "proxy.updated",
            Kind::ProxyDeleted => "proxy.deleted",
            Kind::ToxicAdded => "toxic.added",
            Kind::ToxicUpdated => "toxic.updated",
            Kind::ToxicRemoved => "toxic.removed",
            Kind::ToxicExpired => "toxic.expired",
            Kind::ToxicActivated => "toxic.activated",
            Kind::ToxicDeactivated => "toxic.deactivated",
            Kind::ConnectionOpened => "connection.opened",
            Kind::ConnectionClosed => "connection.closed",
            Kind::ConfigReloaded => "config.reloaded",
            Kind::ConfigFailed => "config.failed",
            Kind::Lagged => "lagged",
        }
    }
}

/// A field value beyond `time`, `type` and `proxy`.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Str(&'a str),
    U64(u64),
    Bool(bool),
    /// Already-encoded JSON (an object or array), written as is.
    Raw(&'a str),
}

/// The fan-out of one server's events.
#[derive(Debug)]
pub struct Bus {
    tx: broadcast::Sender<Arc<str>>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new(CAPACITY)
    }
}

impl Bus {
    /// A bus whose readers may fall `capacity` events behind.
    pub fn new(capacity: usize) -> Bus {
        Bus {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// Publishes one event to every attached reader. Never waits; cheap without readers.
    pub fn publish(&self, kind: Kind, proxy: Option<&str>, fields: &[(&str, Value<'_>)]) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let _ = self
            .tx
            .send(render(SystemTime::now(), kind, proxy, fields).into());
    }

    /// Whether any reader is attached (callers may skip preparing fields when not).
    pub fn has_readers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A new reader, starting with the next event published.
    pub fn subscribe(&self) -> Reader {
        Reader {
            rx: self.tx.subscribe(),
        }
    }
}

/// One attached reader.
pub struct Reader {
    rx: broadcast::Receiver<Arc<str>>,
}

impl Reader {
    /// The next event's JSON, a `lagged` event when some were missed, or `None` when the
    /// bus is gone.
    pub async fn next(&mut self) -> Option<Arc<str>> {
        match self.rx.recv().await {
            Ok(ev) => Some(ev),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(
                render(
                    SystemTime::now(),
                    Kind::Lagged,
                    None,
                    &[("missed", Value::U64(n))],
                )
                .into(),
            ),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// RFC 3339 in UTC with milliseconds: `2026-12-01T21:30:00.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let millis = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    let secs = crate::logging::rfc3339_seconds(t);
    format!("{}.{millis:03}Z", secs.trim_end_matches('Z'))
}

/// One event as a JSON object.
pub fn render(
    at: SystemTime,
    kind: Kind,
    proxy: Option<&str>,
    fields: &[(&str, Value<'_>)],
) -> String {
    let mut out = String::with_capacity(96);
    out.push_str("{\"time\":\"");
    out.push_str(&rfc3339_millis(at));
    out.push_str("\",\"type\":\"");
    out.push_str(kind.as_str());
    out.push('"');
    if let Some(p) = proxy {
        out.push_str(",\"proxy\":");
        write_str(&mut out, p);
    }
    for (name, value) in fields {
        out.push(',');
        write_str(&mut out, name);
        out.push(':');
        match value {
            Value::Str(s) => write_str(&mut out, s),
            Value::U64(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Raw(r) => out.push_str(r),
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_one_object() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_531_026_042);
        let s = render(
            at,
            Kind::ConnectionClosed,
            Some("web\"1"),
            &[("id", Value::U64(3)), ("reason", Value::Str("api"))],
        );
        assert_eq!(
            s,
            "{\"time\":\"2026-11-24T14:37:06.042Z\",\"type\":\"connection.closed\",\
             \"proxy\":\"web\\\"1\",\"id\":3,\"reason\":\"api\"}"
        );
    }

    #[tokio::test]
    async fn a_slow_reader_gets_lagged() {
        let bus = Bus::new(4);
        let mut r = bus.subscribe();
        for _ in 0..10 {
            bus.publish(Kind::ProxyCreated, Some("p"), &[]);
        }
        let first = r.next().await.unwrap();
        assert!(
            first.contains("\"type\":\"lagged\",\"missed\":6"),
            "{first}"
        );
        let next = r.next().await.unwrap();
        assert!(next.contains("proxy.created"), "{next}");
    }
}
