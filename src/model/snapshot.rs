//! Proxies and toxics as the API shows them and takes them: what the server's registry
//! answers with, what the typed client decodes, and what `model::json` encodes.

use crate::model::{Clients, Direction, HttpMatch, Schedule, ToxicKind};

/// A proxy as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySnapshot {
    pub name: String,
    /// The bound address once started (port 0 resolved), else the string given.
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    /// `tcp` unless created with `"protocol": "http"`; shown only when not `tcp`.
    pub protocol: Protocol,
    /// Upstream toxics in chain order, then downstream toxics in chain order.
    pub toxics: Vec<ToxicSnapshot>,
}

/// A toxic as the API shows it.
///
/// Fields beside `attributes` that are toxi's own (not Toxiproxy's) are `Option`s shown in
/// JSON only when set: add the field here, one line in `model::json::write_toxic` (after
/// `toxicity`) and one in `model::json::toxic_object`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToxicSnapshot {
    pub name: String,
    /// The stream exactly as the client sent it (`"UpStream"` stays `"UpStream"`).
    pub stream: String,
    pub direction: Direction,
    pub toxicity: f32,
    pub kind: ToxicKind,
    /// When the toxic acts (beyond.md §1.1), with its current state; `None`: always.
    pub schedule: Option<Schedule>,
    /// Client targeting (`clients`): when set, the toxic applies only to connections from
    /// a matching client address.
    pub clients: Option<Clients>,
    // HTTP toxics: which requests the toxic applies to (`"match"`), shown when set.
    pub matcher: Option<HttpMatch>,
}

impl ToxicSnapshot {
    /// A toxic named `name` on `direction`, always on (toxicity 1, no schedule, every
    /// client, every request): what the API makes of `{"name", "type", "stream"}`.
    pub fn new(name: &str, direction: Direction, kind: ToxicKind) -> ToxicSnapshot {
        ToxicSnapshot {
            name: name.into(),
            stream: direction.as_str().into(),
            direction,
            toxicity: 1.0,
            kind,
            schedule: None,
            clients: None,
            matcher: None,
        }
    }
}

/// A proxy to create (POST /proxies, /populate, -config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProxyInput {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Protocol::is_tcp")]
    pub protocol: Protocol,
}

/// How a proxy's connections are handled: raw bytes, or parsed as HTTP/1.1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Http,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "tcp" => Some(Protocol::Tcp),
            "http" => Some(Protocol::Http),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
        }
    }

    pub fn is_tcp(&self) -> bool {
        *self == Protocol::Tcp
    }
}

impl ProxyInput {
    /// An enabled proxy.
    pub fn new(
        name: impl Into<String>,
        listen: impl Into<String>,
        upstream: impl Into<String>,
    ) -> ProxyInput {
        ProxyInput {
            name: name.into(),
            listen: listen.into(),
            upstream: upstream.into(),
            enabled: true,
            protocol: Protocol::Tcp,
        }
    }

    /// Sets whether the proxy starts enabled (listening).
    pub fn enabled(mut self, enabled: bool) -> ProxyInput {
        self.enabled = enabled;
        self
    }

    /// Sets the protocol (`http` parses requests).
    pub fn protocol(mut self, protocol: Protocol) -> ProxyInput {
        self.protocol = protocol;
        self
    }
}
