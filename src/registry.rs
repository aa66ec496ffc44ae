//! The proxy collection and its CRUD semantics: create, update ("differs" rule), delete,
//! populate (validate first, then in order), reset, and toxic add/update/remove.
//!
//! Lock discipline: the map and each proxy's settings sit behind `std::sync::Mutex`es that
//! are never held across an `.await`. Lifecycle changes of one proxy (start, stop) are
//! serialised by that proxy's async lifecycle lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::metrics::Store;
use crate::model::{Applies, Direction, Protocol};
use crate::proxy::http::{HttpChain, HttpEntry, HttpLayer};
use crate::proxy::{addr, Chain, ChainEntry, EngineConfig, InstanceStats, Running};

// The API's view of proxies and toxics is the wire model's; re-exported for callers that
// know them from here.
pub use crate::model::{ProxyInput, ProxySnapshot, ToxicSnapshot};

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
pub struct Registry {
    config: EngineConfig,
    proxies: Mutex<BTreeMap<String, Arc<Proxy>>>,
    /// Source of toxic uids (unique for the process's life).
    next_uid: AtomicU64,
    /// Metric series (byte counters, toxic activations), kept across proxy restarts.
    metrics: Arc<Store>,
}

/// One named proxy.
struct Proxy {
    name: String,
    /// Serialises start, stop and update of this proxy.
    lifecycle: tokio::sync::Mutex<()>,
    state: Mutex<ProxyState>,
    /// The published toxic chains per direction; connections subscribe to them.
    chains: Arc<[watch::Sender<Chain>; 2]>,
    /// `http` proxies: the HTTP toxics of both directions, published to the HTTP layer.
    protocol: Protocol,
    http: Arc<HttpLayer>,
    metrics: Arc<Store>,
}

struct ProxyState {
    listen: String,
    upstream: String,
    /// Present while the proxy is enabled.
    running: Option<Running>,
    /// The counters of the current (or last) instance: its metrics series.
    stats: Arc<InstanceStats>,
    /// Per direction, in chain order.
    toxics: [Vec<ToxicRecord>; 2],
}

#[derive(Clone)]
struct ToxicRecord {
    snapshot: ToxicSnapshot,
    uid: u64,
    attr_gen: u64,
    toxicity_gen: u64,
    activations: Arc<AtomicU64>,
    /// HTTP toxics: requests matched so far across connections (`http_fail_first`);
    /// replaced by a fresh counter on every update.
    hits: Arc<AtomicU64>,
    /// HTTP toxics: `toxi_http_injected_total`.
    injected: Arc<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data half-written (every
    // critical section assigns whole values), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proxy {
    fn new(input: &ProxyInput, metrics: &Arc<Store>) -> Arc<Proxy> {
        Arc::new(Proxy {
            name: input.name.clone(),
            lifecycle: tokio::sync::Mutex::new(()),
            state: Mutex::new(ProxyState {
                listen: input.listen.clone(),
                upstream: input.upstream.clone(),
                running: None,
                stats: Arc::default(),
                toxics: [Vec::new(), Vec::new()],
            }),
            chains: Arc::new([
                watch::channel(Chain::default()).0,
                watch::channel(Chain::default()).0,
            ]),
            protocol: input.protocol,
            http: Arc::new(HttpLayer {
                chain: watch::channel(HttpChain::default()).0,
                statuses: metrics.http_statuses(&input.name),
            }),
            metrics: metrics.clone(),
        })
    }

    fn snapshot(&self) -> ProxySnapshot {
        let st = lock(&self.state);
        ProxySnapshot {
            name: self.name.clone(),
            listen: st.listen.clone(),
            upstream: st.upstream.clone(),
            enabled: st.running.is_some(),
            protocol: self.protocol,
            toxics: st
                .toxics
                .iter()
                .flatten()
                .map(|t| t.snapshot.clone())
                .collect(),
        }
    }

    /// Starts the proxy if it is stopped. Call with the lifecycle lock held.
    fn start(&self, config: &EngineConfig) -> Result<(), Error> {
        let mut st = lock(&self.state);
        if st.running.is_some() {
            return Ok(());
        }
        let upstream = st.upstream.clone();
        let mut stats = None;
        let (bound, running) = Running::start(
            &self.name,
            &st.listen,
            &upstream,
            self.chains.clone(),
            (self.protocol == Protocol::Http).then(|| self.http.clone()),
            |bound| {
                let s = self.metrics.instance(&self.name, bound, &upstream);
                stats = Some(s.clone());
                s
            },
            config,
        )
        .map_err(Error::Listen)?;
        st.listen = bound;
        st.running = Some(running);
        if let Some(stats) = stats {
            st.stats = stats;
        }
        Ok(())
    }

    /// Stops the proxy, closing its listener and connections. Call with the lifecycle lock.
    async fn stop(&self) {
        let (running, listen, upstream) = {
            let mut st = lock(&self.state);
            (st.running.take(), st.listen.clone(), st.upstream.clone())
        };
        if let Some(running) = running {
            running.stop().await;
            tracing::info!(name = %self.name, listen = %listen, upstream = %upstream,
                "Terminated proxy");
        }
    }

    /// Publishes the chain of one direction to live connections. Never waits.
    fn publish(&self, st: &ProxyState, dir: Direction) {
        let http_toxic = |t: &&ToxicRecord| t.snapshot.kind.def().applies == Applies::Http;
        if st.toxics.iter().flatten().any(|t| http_toxic(&t))
            || !self.http.chain.borrow().is_empty()
        {
            let entries = st.toxics.iter().flatten().filter(http_toxic);
            self.http.chain.send_replace(Arc::new(
                entries
                    .map(|t| HttpEntry {
                        uid: t.uid,
                        kind: t.snapshot.kind.clone(),
                        direction: t.snapshot.direction,
                        injected: t.injected.clone(),
                        toxicity: t.snapshot.toxicity,
                        toxicity_gen: t.toxicity_gen,
                        matcher: t.snapshot.matcher.clone(),
                        activations: t.activations.clone(),
                        hits: t.hits.clone(),
                    })
                    .collect(),
            ));
        }
        let chain: Vec<ChainEntry> = st.toxics[dir.index()]
            .iter()
            .filter(|t| !http_toxic(t))
            .map(|t| ChainEntry {
                uid: t.uid,
                kind: t.snapshot.kind.clone(),
                toxicity: t.snapshot.toxicity,
                attr_gen: t.attr_gen,
                toxicity_gen: t.toxicity_gen,
                activations: t.activations.clone(),
            })
            .collect();
        self.chains[dir.index()].send_replace(Arc::new(chain));
    }

    /// HTTP toxics need an `http` proxy, and only they take a `match`.
    fn check_http(&self, toxic: &ToxicSnapshot) -> Result<(), Error> {
        let http = toxic.kind.def().applies == Applies::Http;
        if http && self.protocol != Protocol::Http {
            return Err(Error::BadRequest(format!(
                "toxic type {} needs a proxy with \"protocol\": \"http\"",
                toxic.kind.type_name()
            )));
        }
        if !http && toxic.matcher.is_some() {
            return Err(Error::BadRequest(
                "match applies only to HTTP toxics (http_*)".to_string(),
            ));
        }
        Ok(())
    }

    fn find_toxic(st: &ProxyState, name: &str) -> Option<(usize, usize)> {
        st.toxics.iter().enumerate().find_map(|(d, list)| {
            list.iter()
                .position(|t| t.snapshot.name == name)
                .map(|i| (d, i))
        })
    }

    fn remove_all_toxics(&self) {
        let mut st = lock(&self.state);
        for dir in [Direction::Upstream, Direction::Downstream] {
            if !st.toxics[dir.index()].is_empty() {
                st.toxics[dir.index()].clear();
                self.publish(&st, dir);
            }
        }
    }
}

impl Registry {
    /// An empty registry whose proxies use `config`.
    pub fn new(config: EngineConfig) -> Registry {
        Registry {
            config,
            proxies: Mutex::new(BTreeMap::new()),
            next_uid: AtomicU64::new(1),
            metrics: Arc::default(),
        }
    }

    /// The metric series of this registry's proxies and toxics (read by `/metrics`).
    pub fn metrics(&self) -> &Arc<Store> {
        &self.metrics
    }

    /// The engine settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    fn find(&self, name: &str) -> Result<Arc<Proxy>, Error> {
        lock(&self.proxies)
            .get(name)
            .cloned()
            .ok_or(Error::ProxyNotFound)
    }

    /// Every proxy, sorted by name (byte order).
    pub fn list(&self) -> Vec<ProxySnapshot> {
        let proxies: Vec<Arc<Proxy>> = lock(&self.proxies).values().cloned().collect();
        proxies.iter().map(|p| p.snapshot()).collect()
    }

    /// One proxy, or `ProxyNotFound`.
    pub fn get(&self, name: &str) -> Result<ProxySnapshot, Error> {
        Ok(self.find(name)?.snapshot())
    }

    /// POST /proxies: checks name, then upstream (`MissingField`), then `ProxyExists`, then
    /// binds if enabled (`Listen` error, proxy not added).
    pub async fn create(&self, input: ProxyInput) -> Result<ProxySnapshot, Error> {
        if input.name.is_empty() {
            return Err(Error::MissingField("name"));
        }
        if input.upstream.is_empty() {
            return Err(Error::MissingField("upstream"));
        }
        if lock(&self.proxies).contains_key(&input.name) {
            return Err(Error::ProxyExists);
        }
        let proxy = Proxy::new(&input, &self.metrics);
        if input.enabled {
            proxy.start(&self.config)?;
        }
        let raced = {
            let mut map = lock(&self.proxies);
            if map.contains_key(&input.name) {
                true
            } else {
                map.insert(input.name.clone(), proxy.clone());
                false
            }
        };
        if raced {
            proxy.stop().await;
            return Err(Error::ProxyExists);
        }
        Ok(proxy.snapshot())
    }

    /// POST/PATCH /proxies/{proxy} with the reference's "differs" rule.
    pub async fn update(&self, name: &str, patch: ProxyPatch) -> Result<ProxySnapshot, Error> {
        let proxy = self.find(name)?;
        let _guard = proxy.lifecycle.lock().await;
        let (cur_listen, cur_upstream, cur_enabled) = {
            let st = lock(&proxy.state);
            (st.listen.clone(), st.upstream.clone(), st.running.is_some())
        };
        let listen = patch.listen.unwrap_or_else(|| cur_listen.clone());
        let upstream = patch.upstream.unwrap_or_else(|| cur_upstream.clone());
        let enabled = patch.enabled.unwrap_or(cur_enabled);
        let resolved = addr::resolve(&listen).map_err(Error::Listen)?;
        if resolved.display != cur_listen || upstream != cur_upstream {
            proxy.stop().await;
            let mut st = lock(&proxy.state);
            st.listen = listen;
            st.upstream = upstream;
        }
        let running = lock(&proxy.state).running.is_some();
        if enabled && !running {
            proxy.start(&self.config)?;
        } else if !enabled && running {
            proxy.stop().await;
        }
        Ok(proxy.snapshot())
    }

    /// DELETE /proxies/{proxy}: stops it (closing its connections) and removes it.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let proxy = lock(&self.proxies)
            .remove(name)
            .ok_or(Error::ProxyNotFound)?;
        let _guard = proxy.lifecycle.lock().await;
        proxy.stop().await;
        Ok(())
    }

    /// POST /populate: validates every entry (`MissingFieldAt`, 1-based), then applies them
    /// in order, stopping at the first error. Returns the proxies processed (`None` when
    /// none were, which the API prints as `null`) and the error, if any.
    pub async fn populate(
        &self,
        inputs: Vec<ProxyInput>,
    ) -> (Option<Vec<ProxySnapshot>>, Option<Error>) {
        for (i, input) in inputs.iter().enumerate() {
            if input.name.is_empty() {
                return (None, Some(Error::MissingFieldAt("name", i + 1)));
            }
            if input.upstream.is_empty() {
                return (None, Some(Error::MissingFieldAt("upstream", i + 1)));
            }
        }
        // Snapshots are taken after the loop, so a proxy replaced later in the same
        // request shows its final (stopped) state, as in the reference.
        let mut done: Vec<Arc<Proxy>> = Vec::with_capacity(inputs.len());
        let mut error = None;
        for input in inputs {
            match self.populate_one(input).await {
                Ok(proxy) => done.push(proxy),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let snapshots = (!done.is_empty()).then(|| done.iter().map(|p| p.snapshot()).collect());
        (snapshots, error)
    }

    async fn populate_one(&self, input: ProxyInput) -> Result<Arc<Proxy>, Error> {
        let existing = lock(&self.proxies).get(&input.name).cloned();
        let Some(old) = existing else {
            let proxy = Proxy::new(&input, &self.metrics);
            if input.enabled {
                proxy.start(&self.config)?;
            }
            lock(&self.proxies).insert(input.name.clone(), proxy.clone());
            return Ok(proxy);
        };
        let _guard = old.lifecycle.lock().await;
        let resolved = addr::resolve(&input.listen).map_err(Error::Listen)?;
        {
            let st = lock(&old.state);
            if resolved.display == st.listen
                && input.upstream == st.upstream
                && input.protocol == old.protocol
            {
                drop(st);
                drop(_guard);
                return Ok(old);
            }
        }
        old.stop().await;
        let proxy = Proxy::new(&input, &self.metrics);
        if input.enabled {
            proxy.start(&self.config)?;
        }
        let mut map = lock(&self.proxies);
        if map.get(&input.name).is_some_and(|p| Arc::ptr_eq(p, &old)) {
            map.insert(input.name.clone(), proxy.clone());
        } else {
            map.entry(input.name.clone())
                .or_insert_with(|| proxy.clone());
        }
        drop(map);
        Ok(proxy)
    }

    /// POST /reset: in name order, enables every proxy and removes all its toxics; carries
    /// on past a failing proxy and returns the first error.
    pub async fn reset(&self) -> Result<(), Error> {
        let proxies: Vec<Arc<Proxy>> = lock(&self.proxies).values().cloned().collect();
        let mut first_error = None;
        for proxy in proxies {
            let _guard = proxy.lifecycle.lock().await;
            if let Err(e) = proxy.start(&self.config) {
                first_error.get_or_insert(e);
            }
            proxy.remove_all_toxics();
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The proxy's toxics, upstream first.
    pub fn toxics(&self, proxy: &str) -> Result<Vec<ToxicSnapshot>, Error> {
        Ok(self.find(proxy)?.snapshot().toxics)
    }

    /// One toxic: `ProxyNotFound`, then `ToxicNotFound`.
    pub fn toxic(&self, proxy: &str, toxic: &str) -> Result<ToxicSnapshot, Error> {
        let proxy = self.find(proxy)?;
        let st = lock(&proxy.state);
        let (d, i) = Proxy::find_toxic(&st, toxic).ok_or(Error::ToxicNotFound)?;
        Ok(st.toxics[d][i].snapshot.clone())
    }

    /// Appends a toxic to its direction's chain and applies it to live connections.
    /// Checks: `ProxyNotFound`, `ToxicExists` (across both streams), `kind.validate()`
    /// (`BadRequest`). The caller has filled in defaults (name, stream, toxicity).
    pub fn add_toxic(&self, proxy: &str, toxic: ToxicSnapshot) -> Result<ToxicSnapshot, Error> {
        let proxy = self.find(proxy)?;
        let mut st = lock(&proxy.state);
        if Proxy::find_toxic(&st, &toxic.name).is_some() {
            return Err(Error::ToxicExists);
        }
        toxic.kind.validate().map_err(Error::BadRequest)?;
        proxy.check_http(&toxic)?;
        let dir = toxic.direction;
        let activations =
            self.metrics
                .toxic_activations(&proxy.name, &toxic.name, toxic.kind.type_name(), dir);
        st.toxics[dir.index()].push(ToxicRecord {
            snapshot: toxic.clone(),
            uid: self.next_uid.fetch_add(1, Ordering::Relaxed),
            attr_gen: 0,
            toxicity_gen: 0,
            activations,
            hits: Arc::default(),
            injected: match toxic.kind.def().applies {
                Applies::Http => self.metrics.http_injected(&proxy.name, &toxic.name),
                Applies::Any => Arc::default(),
            },
        });
        proxy.publish(&st, dir);
        tracing::info!(name = %proxy.name, toxic = %toxic.name, r#type = toxic.kind.type_name(),
            stream = %toxic.stream, "Added toxic");
        Ok(toxic)
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
        let proxy = self.find(proxy)?;
        let mut st = lock(&proxy.state);
        let (d, i) = Proxy::find_toxic(&st, toxic).ok_or(Error::ToxicNotFound)?;
        let record = &st.toxics[d][i];
        let mut edited = record.snapshot.clone();
        edit(&mut edited)?;
        edited.name = record.snapshot.name.clone();
        edited.stream = record.snapshot.stream.clone();
        edited.direction = record.snapshot.direction;
        if edited.kind.type_name() != record.snapshot.kind.type_name() {
            edited.kind = record.snapshot.kind.clone();
        }
        edited.kind.validate().map_err(Error::BadRequest)?;
        proxy.check_http(&edited)?;
        let record = &mut st.toxics[d][i];
        // An update restarts `http_fail_first`'s count.
        record.hits = Arc::default();
        if edited.kind != record.snapshot.kind {
            record.attr_gen += 1;
        }
        // Any toxicity in the request re-rolls, as the reference does on update; the API
        // calls this only when the request carried a toxicity or attributes.
        if edited.toxicity.to_bits() != record.snapshot.toxicity.to_bits() {
            record.toxicity_gen += 1;
        }
        record.snapshot = edited.clone();
        let dir = record.snapshot.direction;
        proxy.publish(&st, dir);
        tracing::info!(name = %proxy.name, toxic = %edited.name, "Updated toxic");
        Ok(edited)
    }

    /// Removes a toxic from its chain and from every live connection.
    pub fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), Error> {
        let proxy = self.find(proxy)?;
        let mut st = lock(&proxy.state);
        let (d, i) = Proxy::find_toxic(&st, toxic).ok_or(Error::ToxicNotFound)?;
        let record = st.toxics[d].remove(i);
        proxy.publish(&st, record.snapshot.direction);
        tracing::info!(name = %proxy.name, toxic = %toxic, "Removed toxic");
        Ok(())
    }

    /// Stops every proxy (server shutdown). Connections close at once.
    pub async fn stop_all(&self) {
        let proxies: Vec<Arc<Proxy>> = lock(&self.proxies).values().cloned().collect();
        for proxy in proxies {
            proxy.stop().await;
        }
    }

    /// Live counters of every enabled proxy instance: (name, listen, upstream, stats).
    pub fn instance_stats(&self) -> Vec<(String, String, String, Arc<InstanceStats>)> {
        let proxies: Vec<Arc<Proxy>> = lock(&self.proxies).values().cloned().collect();
        proxies
            .iter()
            .map(|p| {
                let st = lock(&p.state);
                (
                    p.name.clone(),
                    st.listen.clone(),
                    st.upstream.clone(),
                    st.stats.clone(),
                )
            })
            .collect()
    }
}
