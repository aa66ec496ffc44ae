//! The proxy collection and its CRUD semantics: create, update ("differs" rule), delete,
//! populate (validate first, then in order), reset, and toxic add/update/remove.
//!
//! Lock discipline: the map and each proxy's settings sit behind `std::sync::Mutex`es that
//! are never held across an `.await`. Lifecycle changes of one proxy (start, stop) are
//! serialised by that proxy's async lifecycle lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::events::{Bus, Kind, Value};
use crate::metrics::Store;
use crate::model::json::{self, ToxicCreate};
use crate::model::schedule::Phase;
use crate::model::{Applies, Direction, Protocol, Schedule, ToxicKind};
use crate::proxy::http::{HttpChain, HttpEntry, HttpLayer};
use crate::proxy::{
    addr, Chain, ChainEntry, Conn, ConnTable, EngineConfig, InstanceStats, Running,
};

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
    /// Woken when a schedule is set, changed or cleared (see `crate::schedule`).
    schedule_wake: Arc<Notify>,
    /// `-max-toxic-duration` in ms: applied to toxics added through the API.
    max_toxic_duration: Option<u64>,
    /// The live event stream (`/events`).
    events: Arc<Bus>,
}

/// One open connection with its toxicity rolls, as `/proxies/{proxy}/connections` shows it.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    pub conn: Arc<Conn>,
    /// Every toxic of the proxy (upstream first, in chain order) and whether it applies.
    pub toxics: Vec<(String, bool)>,
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
    /// Open connections, across restarts.
    conns: Arc<ConnTable>,
    /// Created by the `-config` file: a reload may update or delete it.
    from_file: bool,
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
    /// When the schedule (if any) was set: its phases count from here.
    origin: Instant,
    /// Shared by every connection's stage of this toxic.
    shared: Arc<crate::toxics::SharedRate>,
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
    fn new(input: &ProxyInput, metrics: &Arc<Store>, events: &Arc<Bus>) -> Arc<Proxy> {
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
            conns: Arc::new(ConnTable::new(&input.name, events.clone())),
            from_file: false,
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

    /// Starts the proxy if it is stopped. Call with the lifecycle lock held. The listen
    /// address is resolved without blocking and without holding the state lock.
    async fn start(&self, config: &EngineConfig) -> Result<(), Error> {
        let (listen, upstream) = {
            let st = lock(&self.state);
            if st.running.is_some() {
                return Ok(());
            }
            (st.listen.clone(), st.upstream.clone())
        };
        let resolved = addr::resolve_async(&listen)
            .await
            .map_err(|e| Error::Listen(format!("listen tcp: {e}")))?;
        let mut stats = None;
        let (bound, running) = Running::start(
            &self.name,
            &listen,
            &resolved,
            &upstream,
            self.chains.clone(),
            (self.protocol == Protocol::Http).then(|| self.http.clone()),
            |bound| {
                let s = self.metrics.instance(&self.name, bound, &upstream);
                stats = Some(s.clone());
                s
            },
            self.conns.clone(),
            config,
        )
        .map_err(Error::Listen)?;
        let mut st = lock(&self.state);
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
                active: t.snapshot.schedule.map_or(true, |s| s.active),
                clients: t.snapshot.clients.clone(),
                shared: t.shared.clone(),
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

    /// Removes every toxic; returns their names.
    fn remove_all_toxics(&self) -> Vec<String> {
        let mut st = lock(&self.state);
        let mut removed = Vec::new();
        for dir in [Direction::Upstream, Direction::Downstream] {
            if !st.toxics[dir.index()].is_empty() {
                removed.extend(st.toxics[dir.index()].drain(..).map(|t| t.snapshot.name));
                self.publish(&st, dir);
            }
        }
        removed
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
            events: Arc::default(),
            schedule_wake: Arc::default(),
            max_toxic_duration: None,
        }
    }

    /// The live event stream of this registry.
    pub fn events(&self) -> &Arc<Bus> {
        &self.events
    }

    fn proxy_event(&self, kind: Kind, p: &ProxySnapshot) {
        let data = json::proxy_json(p);
        self.events
            .publish(kind, Some(&p.name), &[("data", Value::Raw(&data))]);
    }

    fn toxic_event(&self, kind: Kind, proxy: &str, toxic: &str, data: Option<&ToxicSnapshot>) {
        let data = data.map(json::toxic_json);
        let mut fields = vec![("toxic", Value::Str(toxic))];
        if let Some(d) = &data {
            fields.push(("data", Value::Raw(d)));
        }
        self.events.publish(kind, Some(proxy), &fields);
    }

    /// The open connections of a proxy, oldest first, with each toxic's roll for them.
    pub fn connections(&self, proxy: &str) -> Result<Vec<ConnectionView>, Error> {
        let proxy = self.find(proxy)?;
        // Per toxic: what the link's stage decides with (the roll and the targeting).
        type Applies = (
            Direction,
            String,
            u64,
            u64,
            f32,
            Option<crate::model::Clients>,
        );
        let toxics: Vec<Applies> = {
            let st = lock(&proxy.state);
            st.toxics
                .iter()
                .flatten()
                .map(|t| {
                    let s = &t.snapshot;
                    (
                        s.direction,
                        s.name.clone(),
                        t.uid,
                        t.toxicity_gen,
                        s.toxicity,
                        s.clients.clone(),
                    )
                })
                .collect()
        };
        Ok(proxy
            .conns
            .list()
            .into_iter()
            .map(|conn| ConnectionView {
                toxics: toxics
                    .iter()
                    .map(|(d, name, uid, gen, tox, clients)| {
                        let applies = conn.rolls(*d, *uid, *gen, *tox)
                            && crate::model::targets(clients.as_ref(), Some(conn.client.ip()));
                        (name.clone(), applies)
                    })
                    .collect(),
                conn,
            })
            .collect())
    }

    /// Closes one open connection (RST when `reset`). `Ok(false)` when no such connection.
    pub fn kill(&self, proxy: &str, id: u64, reset: bool) -> Result<bool, Error> {
        Ok(self.find(proxy)?.conns.kill(id, reset))
    }

    /// Sets `-max-toxic-duration` (ms).
    pub fn with_max_toxic_duration(mut self, max_ms: Option<u64>) -> Registry {
        self.max_toxic_duration = max_ms;
        self
    }

    /// `-max-toxic-duration` in ms, if set.
    pub fn max_toxic_duration(&self) -> Option<u64> {
        self.max_toxic_duration
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
        let proxy = Proxy::new(&input, &self.metrics, &self.events);
        if input.enabled {
            proxy.start(&self.config).await?;
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
        let snap = proxy.snapshot();
        self.proxy_event(Kind::ProxyCreated, &snap);
        Ok(snap)
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
        let resolved = addr::resolve_async(&listen).await.map_err(Error::Listen)?;
        if resolved.display != cur_listen || upstream != cur_upstream {
            proxy.stop().await;
            let mut st = lock(&proxy.state);
            st.listen = listen;
            st.upstream = upstream;
        }
        let running = lock(&proxy.state).running.is_some();
        if enabled && !running {
            proxy.start(&self.config).await?;
        } else if !enabled && running {
            proxy.stop().await;
        }
        let snap = proxy.snapshot();
        self.proxy_event(Kind::ProxyUpdated, &snap);
        Ok(snap)
    }

    /// DELETE /proxies/{proxy}: stops it (closing its connections) and removes it.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let proxy = lock(&self.proxies)
            .remove(name)
            .ok_or(Error::ProxyNotFound)?;
        let _guard = proxy.lifecycle.lock().await;
        proxy.stop().await;
        self.events.publish(Kind::ProxyDeleted, Some(name), &[]);
        Ok(())
    }

    /// POST /populate: validates every entry (`MissingFieldAt`, 1-based), then applies them
    /// in order, stopping at the first error. Returns the proxies processed (`None` when
    /// none were, which the API prints as `null`) and the error, if any.
    pub async fn populate(
        &self,
        inputs: Vec<ProxyInput>,
    ) -> (Option<Vec<ProxySnapshot>>, Option<Error>) {
        let declared = inputs.into_iter().map(Declared::from).collect();
        self.populate_declared(declared, Source::Api).await
    }

    /// [`Registry::populate`] with each proxy's declared toxics (beyond.md §1.3): every
    /// entry and toxic is checked before anything is applied; then, in order, each proxy is
    /// created, kept or replaced as `populate` does, and where `toxics` is given its toxics
    /// are reconciled to exactly that list. From [`Source::File`], proxies created through
    /// the API are left alone, and a kept proxy takes the file's `enabled`.
    pub async fn populate_declared(
        &self,
        entries: Vec<Declared>,
        source: Source,
    ) -> (Option<Vec<ProxySnapshot>>, Option<Error>) {
        for (i, entry) in entries.iter().enumerate() {
            let input = &entry.proxy;
            if input.name.is_empty() {
                return (None, Some(Error::MissingFieldAt("name", i + 1)));
            }
            if input.upstream.is_empty() {
                return (None, Some(Error::MissingFieldAt("upstream", i + 1)));
            }
            if let Err(e) = entry.check_toxics(i + 1) {
                return (None, Some(e));
            }
        }
        // Snapshots are taken after the loop, so a proxy replaced later in the same
        // request shows its final (stopped) state, as in the reference.
        let mut done: Vec<Arc<Proxy>> = Vec::with_capacity(entries.len());
        let mut error = None;
        for Declared { proxy, toxics } in entries {
            if source == Source::File {
                let existing = lock(&self.proxies).get(&proxy.name).cloned();
                if existing.is_some_and(|p| !p.from_file) {
                    tracing::warn!(name = %proxy.name,
                        "Config file skips a proxy created through the API");
                    continue;
                }
            }
            let existed = lock(&self.proxies).contains_key(&proxy.name);
            match self.populate_one(proxy, source).await {
                Ok(proxy) => {
                    let kind = if existed {
                        Kind::ProxyUpdated
                    } else {
                        Kind::ProxyCreated
                    };
                    self.proxy_event(kind, &proxy.snapshot());
                    if let Some(toxics) = toxics {
                        self.reconcile(&proxy, toxics);
                    }
                    done.push(proxy)
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let snapshots = (!done.is_empty()).then(|| done.iter().map(|p| p.snapshot()).collect());
        (snapshots, error)
    }

    async fn populate_one(&self, input: ProxyInput, source: Source) -> Result<Arc<Proxy>, Error> {
        let new_proxy = |input: &ProxyInput| {
            let mut proxy = Proxy::new(input, &self.metrics, &self.events);
            if let Some(p) = Arc::get_mut(&mut proxy) {
                p.from_file = source == Source::File;
            }
            proxy
        };
        let existing = lock(&self.proxies).get(&input.name).cloned();
        let Some(old) = existing else {
            let proxy = new_proxy(&input);
            if input.enabled {
                proxy.start(&self.config).await?;
            }
            lock(&self.proxies).insert(input.name.clone(), proxy.clone());
            return Ok(proxy);
        };
        let _guard = old.lifecycle.lock().await;
        let resolved = addr::resolve_async(&input.listen)
            .await
            .map_err(Error::Listen)?;
        let kept_running = {
            let st = lock(&old.state);
            (resolved.display == st.listen
                && input.upstream == st.upstream
                && input.protocol == old.protocol)
                .then_some(st.running.is_some())
        };
        if let Some(running) = kept_running {
            if source == Source::File && input.enabled != running {
                if input.enabled {
                    old.start(&self.config).await?;
                } else {
                    old.stop().await;
                }
            }
            drop(_guard);
            return Ok(old);
        }
        old.stop().await;
        let proxy = new_proxy(&input);
        if input.enabled {
            proxy.start(&self.config).await?;
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
            let was_enabled = lock(&proxy.state).running.is_some();
            if let Err(e) = proxy.start(&self.config).await {
                first_error.get_or_insert(e);
            }
            let removed = proxy.remove_all_toxics();
            let snap = proxy.snapshot();
            if snap.enabled != was_enabled {
                self.proxy_event(Kind::ProxyUpdated, &snap);
            }
            for toxic in removed {
                self.toxic_event(Kind::ToxicRemoved, &proxy.name, &toxic, None);
            }
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
        let record = self.record(&proxy.name, toxic)?;
        let toxic = record.snapshot.clone();
        let dir = toxic.direction;
        st.toxics[dir.index()].push(record);
        proxy.publish(&st, dir);
        tracing::info!(name = %proxy.name, toxic = %toxic.name, r#type = toxic.kind.type_name(),
            stream = %toxic.stream, "Added toxic");
        drop(st);
        self.toxic_event(Kind::ToxicAdded, &proxy.name, &toxic.name, Some(&toxic));
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
        self.update_toxic_with(proxy, toxic, None, edit)
    }

    /// [`Registry::update_toxic`], also setting (`Some(Some(_))`: its phases start over
    /// now) or clearing (`Some(None)`) the toxic's schedule.
    pub fn update_toxic_with(
        &self,
        proxy: &str,
        toxic: &str,
        schedule: Option<Option<Schedule>>,
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
        let now = Instant::now();
        if let Some(schedule) = schedule {
            edited.schedule = schedule;
            start_schedule(&mut edited, now, now)?;
            st.toxics[d][i].origin = now;
            self.schedule_wake.notify_one();
        }
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
        drop(st);
        self.toxic_event(Kind::ToxicUpdated, &proxy.name, &edited.name, Some(&edited));
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
        drop(st);
        self.toxic_event(Kind::ToxicRemoved, &proxy.name, toxic, None);
        Ok(())
    }

    /// Stops every proxy (server shutdown). Connections close at once.
    pub async fn stop_all(&self) {
        self.drain_all(Duration::ZERO).await;
    }

    /// Server shutdown with a grace period: every listener closes first (new clients are
    /// refused), open connections may finish by themselves for up to `grace`, then the
    /// rest are closed. Returns when every connection has ended.
    pub async fn drain_all(&self, grace: Duration) {
        let proxies: Vec<Arc<Proxy>> = lock(&self.proxies).values().cloned().collect();
        let mut draining = Vec::new();
        for proxy in proxies {
            let _guard = proxy.lifecycle.lock().await;
            let (running, listen, upstream) = {
                let mut st = lock(&proxy.state);
                (st.running.take(), st.listen.clone(), st.upstream.clone())
            };
            if let Some(mut running) = running {
                running.stop_accepting().await;
                draining.push((proxy.clone(), running, listen, upstream));
            }
        }
        let open: i64 = draining
            .iter()
            .map(|(p, ..)| lock(&p.state).stats.active.load(Ordering::Relaxed))
            .sum();
        if open > 0 && !grace.is_zero() {
            tracing::info!(connections = open, grace = ?grace, "Draining connections");
        }
        let deadline = tokio::time::Instant::now() + grace;
        for (proxy, running, listen, upstream) in draining {
            let cut = running.drain(deadline).await;
            if cut > 0 && !grace.is_zero() {
                tracing::warn!(name = %proxy.name, connections = cut,
                    "Closed connections still open after the shutdown grace");
            }
            tracing::info!(name = %proxy.name, listen = %listen, upstream = %upstream,
                "Terminated proxy");
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

// ------------------------------------------------------------------------------------------
// Schedules (beyond.md §1.1). `crate::schedule` drives [`Registry::tick`] on one timer.

/// A change the schedule timer made to a toxic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleEvent {
    pub proxy: String,
    pub toxic: String,
    pub change: ScheduleChange,
}

/// What happened to a scheduled toxic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleChange {
    Activated,
    Deactivated,
    /// Its `duration` ended: it was removed, as a `DELETE` removes it.
    Expired,
}

/// Validates `toxic`'s schedule, if any, and sets its state as of `now` for a schedule set
/// at `origin`.
fn start_schedule(toxic: &mut ToxicSnapshot, origin: Instant, now: Instant) -> Result<(), Error> {
    if let Some(schedule) = &mut toxic.schedule {
        schedule.validate().map_err(Error::BadRequest)?;
        schedule.active = matches!(
            schedule.phase(now.saturating_duration_since(origin)),
            Phase::Steady(true, _)
        );
    }
    Ok(())
}

impl Registry {
    /// A new record for `toxic` on proxy `proxy`: a fresh uid, its activation counter, and
    /// its schedule (if any) starting now.
    fn record(&self, proxy: &str, mut toxic: ToxicSnapshot) -> Result<ToxicRecord, Error> {
        let now = Instant::now();
        start_schedule(&mut toxic, now, now)?;
        if toxic.schedule.is_some() {
            self.schedule_wake.notify_one();
        }
        let activations = self.metrics.toxic_activations(
            proxy,
            &toxic.name,
            toxic.kind.type_name(),
            toxic.direction,
        );
        let injected = match toxic.kind.def().applies {
            Applies::Http => self.metrics.http_injected(proxy, &toxic.name),
            Applies::Any => Arc::default(),
        };
        Ok(ToxicRecord {
            snapshot: toxic,
            uid: self.next_uid.fetch_add(1, Ordering::Relaxed),
            attr_gen: 0,
            toxicity_gen: 0,
            activations,
            origin: now,
            shared: Arc::default(),
            hits: Arc::default(),
            injected,
        })
    }

    /// Woken whenever a schedule is set, changed or cleared: the timer then recomputes its
    /// next deadline.
    pub fn schedule_wake(&self) -> Arc<Notify> {
        self.schedule_wake.clone()
    }

    /// Applies every schedule transition due at `now`: flips toxics on or off (publishing
    /// their chains) and removes expired ones exactly as `DELETE` does. Returns what changed
    /// and when the next transition is due.
    pub fn tick(&self, now: Instant) -> (Vec<ScheduleEvent>, Option<Instant>) {
        let proxies: Vec<Arc<Proxy>> = lock(&self.proxies).values().cloned().collect();
        let mut events = Vec::new();
        let mut next: Option<Instant> = None;
        for proxy in proxies {
            let mut st = lock(&proxy.state);
            for dir in [Direction::Upstream, Direction::Downstream] {
                let mut changed = false;
                st.toxics[dir.index()].retain_mut(|t| {
                    let Some(schedule) = &mut t.snapshot.schedule else {
                        return true;
                    };
                    let (active, until) =
                        match schedule.phase(now.saturating_duration_since(t.origin)) {
                            Phase::Expired => {
                                changed = true;
                                tracing::info!(name = %proxy.name, toxic = %t.snapshot.name,
                                    "Toxic expired");
                                events.push(ScheduleEvent {
                                    proxy: proxy.name.clone(),
                                    toxic: t.snapshot.name.clone(),
                                    change: ScheduleChange::Expired,
                                });
                                return false;
                            }
                            Phase::Steady(active, until) => (active, until),
                        };
                    if active != schedule.active {
                        schedule.active = active;
                        changed = true;
                        events.push(ScheduleEvent {
                            proxy: proxy.name.clone(),
                            toxic: t.snapshot.name.clone(),
                            change: if active {
                                ScheduleChange::Activated
                            } else {
                                ScheduleChange::Deactivated
                            },
                        });
                    }
                    if let Some(until) = until.and_then(|u| t.origin.checked_add(u)) {
                        next = Some(next.map_or(until, |n| n.min(until)));
                    }
                    true
                });
                if changed {
                    proxy.publish(&st, dir);
                }
            }
        }
        (events, next)
    }
}

// ------------------------------------------------------------------------------------------
// Toxic requests: a `POST /proxies/{proxy}/toxics` body (also each toxic of `/populate` and
// `-config`) made into a validated toxic.

/// The parts of a toxic request that name it: checked before the proxy's own checks.
#[derive(Debug)]
pub struct ToxicDraft {
    pub name: String,
    pub stream: String,
    pub direction: Direction,
    kind: ToxicKind,
}

impl ToxicDraft {
    /// Stream (default `downstream`), then type, then the name (default `<type>_<stream>`).
    pub fn new(request: &ToxicCreate) -> Result<ToxicDraft, Error> {
        let stream = request
            .stream
            .clone()
            .unwrap_or_else(|| "downstream".to_owned());
        let Some(direction) = Direction::parse(&stream) else {
            return Err(Error::BadRequest(
                "stream was invalid, can be either upstream or downstream".to_owned(),
            ));
        };
        let type_name = request.type_name.clone().unwrap_or_default();
        let name = match &request.name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => format!("{type_name}_{stream}"),
        };
        let kind = crate::toxics::default_for(&type_name)
            .ok_or_else(|| Error::BadRequest("invalid toxic type".to_owned()))?;
        Ok(ToxicDraft {
            name,
            stream,
            direction,
            kind,
        })
    }

    /// Attributes (Go decode errors), their validation, then the schedule, capped by
    /// `max_duration` (ms) when the request came through the API with that limit.
    pub fn finish(
        mut self,
        request: &ToxicCreate,
        max_duration: Option<u64>,
    ) -> Result<ToxicSnapshot, Error> {
        request
            .decode_attributes(&mut self.kind)
            .map_err(|e| Error::BadRequest(format!("bad request body: {e}")))?;
        self.kind.validate().map_err(Error::BadRequest)?;
        let schedule = capped(request.schedule().map_err(Error::BadRequest)?, max_duration)?;
        Ok(ToxicSnapshot {
            name: self.name,
            stream: self.stream,
            direction: self.direction,
            toxicity: request.toxicity.unwrap_or(1.0),
            kind: self.kind,
            clients: request.clients.clone().flatten(),
            schedule,
            matcher: request.matcher.clone(),
        })
    }
}

/// `-max-toxic-duration` applied to a schedule set through the API (`max` in ms).
pub fn capped(schedule: Option<Schedule>, max: Option<u64>) -> Result<Option<Schedule>, Error> {
    match max {
        None => Ok(schedule),
        Some(max) => Schedule::capped(schedule, max)
            .map(Some)
            .map_err(Error::BadRequest),
    }
}

// ------------------------------------------------------------------------------------------
// Declared proxies: `/populate` and `-config` entries with their toxics (beyond.md §1.3, §1.4)

/// Where a populate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    /// The `-config` file: its proxies are marked, so a reload may delete them.
    File,
}

/// One `/populate` or `-config` entry: a proxy and, when given, exactly its toxics.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub proxy: ProxyInput,
    /// `None`: the proxy's toxics are left as they are.
    pub toxics: Option<Vec<ToxicSnapshot>>,
}

impl From<ProxyInput> for Declared {
    fn from(proxy: ProxyInput) -> Declared {
        Declared {
            proxy,
            toxics: None,
        }
    }
}

impl Declared {
    /// Each toxic valid, and no name twice (`at` is the entry's 1-based position).
    fn check_toxics(&self, at: usize) -> Result<(), Error> {
        let toxics = self.toxics.as_deref().unwrap_or_default();
        for (i, t) in toxics.iter().enumerate() {
            t.kind.validate().map_err(Error::BadRequest)?;
            if let Some(s) = &t.schedule {
                s.validate().map_err(Error::BadRequest)?;
            }
            if toxics[..i].iter().any(|o| o.name == t.name) {
                return Err(Error::BadRequest(format!(
                    "toxic {} is declared twice at proxy {at}",
                    t.name
                )));
            }
        }
        Ok(())
    }
}

/// Decodes a `/populate` body or `-config` file: the proxies (Go semantics) and each
/// entry's `toxics`, every toxic made as `POST /proxies/{proxy}/toxics` makes it (capped by
/// `max_duration` ms when given). Errors name the entry and the toxic.
pub fn decode_declared(body: &[u8], max_duration: Option<u64>) -> Result<Vec<Declared>, Error> {
    let bad_body =
        |e: crate::model::json::DecodeError| Error::BadRequest(format!("bad request body: {e}"));
    let proxies = crate::model::json::decode_populate(body).map_err(bad_body)?;
    let mut toxics = crate::model::json::decode_populate_toxics(body)
        .map_err(bad_body)?
        .into_iter();
    proxies
        .into_iter()
        .enumerate()
        .map(|(i, proxy)| {
            let toxics = match toxics.next().flatten() {
                None => None,
                Some(requests) => Some(
                    requests
                        .iter()
                        .enumerate()
                        .map(|(j, r)| {
                            ToxicDraft::new(r)
                                .and_then(|d| d.finish(r, max_duration))
                                .map_err(|e| {
                                    Error::BadRequest(format!(
                                        "{e} at proxy {} toxic {}",
                                        i + 1,
                                        j + 1
                                    ))
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            Ok(Declared { proxy, toxics })
        })
        .collect()
}

impl Registry {
    /// Makes `proxy`'s toxics exactly `toxics`, in that order per direction: an identical
    /// toxic is left alone (its state on live links and its rolls survive), a changed one
    /// is updated in place (a new type or direction makes it a new toxic), a missing one is
    /// removed, a new one added.
    fn reconcile(&self, proxy: &Proxy, toxics: Vec<ToxicSnapshot>) {
        let now = Instant::now();
        let mut st = lock(&proxy.state);
        let mut old: Vec<ToxicRecord> = st.toxics.iter_mut().flat_map(std::mem::take).collect();
        let mut lists: [Vec<ToxicRecord>; 2] = [Vec::new(), Vec::new()];
        let (mut added, mut updated) = (0usize, 0usize);
        for mut toxic in toxics {
            let same_slot = old.iter().position(|r| {
                r.snapshot.name == toxic.name
                    && r.snapshot.direction == toxic.direction
                    && r.snapshot.kind.type_name() == toxic.kind.type_name()
            });
            let dir = toxic.direction.index();
            let Some(pos) = same_slot else {
                // Validated by `Declared::check_toxics`.
                if let Ok(record) = self.record(&proxy.name, toxic) {
                    lists[dir].push(record);
                    added += 1;
                }
                continue;
            };
            let mut record = old.remove(pos);
            let cur = &record.snapshot;
            let same_schedule = match (&cur.schedule, &toxic.schedule) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same_spec(b),
                _ => false,
            };
            let identical = cur.kind == toxic.kind
                && cur.toxicity.to_bits() == toxic.toxicity.to_bits()
                && cur.stream == toxic.stream
                && same_schedule;
            if !identical {
                updated += 1;
                if cur.kind != toxic.kind {
                    record.attr_gen += 1;
                }
                if cur.toxicity.to_bits() != toxic.toxicity.to_bits() {
                    record.toxicity_gen += 1;
                }
                if same_schedule {
                    toxic.schedule = cur.schedule;
                } else {
                    record.origin = now;
                    let _ = start_schedule(&mut toxic, now, now);
                    self.schedule_wake.notify_one();
                }
                record.snapshot = toxic;
            }
            lists[dir].push(record);
        }
        let removed = old.len();
        st.toxics = lists;
        proxy.publish(&st, Direction::Upstream);
        proxy.publish(&st, Direction::Downstream);
        if added + updated + removed > 0 {
            tracing::info!(name = %proxy.name, added, updated, removed, "Reconciled toxics");
        }
    }

    /// Deletes every proxy that came from the config file and is not in `keep` (a reload:
    /// the file no longer declares them). Returns the names deleted.
    pub async fn delete_file_proxies_except(&self, keep: &[&str]) -> Vec<String> {
        let gone: Vec<String> = lock(&self.proxies)
            .values()
            .filter(|p| p.from_file && !keep.contains(&p.name.as_str()))
            .map(|p| p.name.clone())
            .collect();
        for name in &gone {
            if self.delete(name).await.is_ok() {
                tracing::info!(name = %name, "Deleted proxy gone from the config file");
            }
        }
        gone
    }
}
