//! Proxies and toxics as the API shows and takes them (the registry's data, without its
//! machinery).

use super::{Direction, ToxicKind};

/// A proxy as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySnapshot {
    pub name: String,
    /// The bound address once started (port 0 resolved), else the string given.
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    /// Upstream toxics in chain order, then downstream toxics in chain order.
    pub toxics: Vec<ToxicSnapshot>,
}

/// A toxic as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToxicSnapshot {
    pub name: String,
    /// The stream exactly as the client sent it (`"UpStream"` stays `"UpStream"`).
    pub stream: String,
    pub direction: Direction,
    pub toxicity: f32,
    pub kind: ToxicKind,
}

/// A proxy to create (POST /proxies, /populate, -config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyInput {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
}

/// A proxy update (POST or PATCH /proxies/{proxy}). `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyPatch {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub enabled: Option<bool>,
}
