//! The proxy collection and its CRUD semantics: create, update ("differs" rule), delete,
//! populate (validate first, then in order), reset, and toxic add/update/remove.
//!
//! Lock discipline: the map and each proxy's settings sit behind `std::sync::Mutex`es that
//! are never held across an `.await`. Lifecycle changes of one proxy (start, stop) are
//! serialised by that proxy's async lifecycle lock.

use crate::model::{Direction, ToxicKind};

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

/// Errors of registry operations. `status()` and `to_string()` give the API's answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("proxy not found")]
    ProxyNotFound,
    #[error("proxy already exists")]
    ProxyExists,
    #[error("toxic not found")]
    ToxicNotFound,
    #[error("toxic already exists")]
    ToxicExists,
    #[error("missing required field: {0}")]
    MissingField(&'static str),
    #[error("missing required field: {0} at proxy {1}")]
    MissingFieldAt(&'static str, usize),
    /// A 400 with this exact message (attribute range errors and the like).
    #[error("{0}")]
    BadRequest(String),
    /// A bind or address-resolution failure: 500 with the OS-style text.
    #[error("{0}")]
    Listen(String),
}

impl Error {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::ProxyNotFound | Error::ToxicNotFound => 404,
            Error::ProxyExists | Error::ToxicExists => 409,
            Error::MissingField(_) | Error::MissingFieldAt(..) | Error::BadRequest(_) => 400,
            Error::Listen(_) => 500,
        }
    }
}

/// The set of proxies, keyed by name.
pub struct Registry {}

#[allow(unused_variables)]
impl Registry {
    /// Every proxy, sorted by name (byte order).
    pub fn list(&self) -> Vec<ProxySnapshot> {
        todo!()
    }
    /// One proxy, or `ProxyNotFound`.
    pub fn get(&self, name: &str) -> Result<ProxySnapshot, Error> {
        todo!()
    }
    /// POST /proxies: checks name, then upstream (`MissingField`), then `ProxyExists`, then
    /// binds if enabled (`Listen` error, proxy not added).
    pub async fn create(&self, input: ProxyInput) -> Result<ProxySnapshot, Error> {
        todo!()
    }
    /// POST/PATCH /proxies/{proxy} with the reference's "differs" rule.
    pub async fn update(&self, name: &str, patch: ProxyPatch) -> Result<ProxySnapshot, Error> {
        todo!()
    }
    /// DELETE /proxies/{proxy}: stops it (closing its connections) and removes it.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        todo!()
    }
    /// POST /populate: validates every entry (`MissingFieldAt`, 1-based), then applies them
    /// in order, stopping at the first error. Returns the proxies processed (`None` when
    /// none were, which the API prints as `null`) and the error, if any.
    pub async fn populate(
        &self,
        inputs: Vec<ProxyInput>,
    ) -> (Option<Vec<ProxySnapshot>>, Option<Error>) {
        todo!()
    }
    /// POST /reset: in name order, enables every proxy and removes all its toxics; carries
    /// on past a failing proxy and returns the first error.
    pub async fn reset(&self) -> Result<(), Error> {
        todo!()
    }
    /// The proxy's toxics, upstream first.
    pub fn toxics(&self, proxy: &str) -> Result<Vec<ToxicSnapshot>, Error> {
        todo!()
    }
    /// One toxic: `ProxyNotFound`, then `ToxicNotFound`.
    pub fn toxic(&self, proxy: &str, toxic: &str) -> Result<ToxicSnapshot, Error> {
        todo!()
    }
    /// Appends a toxic to its direction's chain and applies it to live connections.
    /// Checks: `ProxyNotFound`, `ToxicExists` (across both streams), `kind.validate()`
    /// (`BadRequest`). The caller has filled in defaults (name, stream, toxicity).
    pub fn add_toxic(&self, proxy: &str, toxic: ToxicSnapshot) -> Result<ToxicSnapshot, Error> {
        todo!()
    }
    /// Updates a toxic in place: `ProxyNotFound`, `ToxicNotFound`, then runs `edit` on a copy
    /// (it decodes the request into it and may fail), validates, and applies the result to
    /// live connections. Name, type and stream are kept whatever `edit` does.
    pub fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        edit: impl FnOnce(&mut ToxicSnapshot) -> Result<(), Error>,
    ) -> Result<ToxicSnapshot, Error> {
        todo!()
    }
    /// Removes a toxic from its chain and from every live connection.
    pub fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), Error> {
        todo!()
    }
}
