//! Prometheus metrics: the series the engine feeds, and the `/metrics` text.
//!
//! Two halves:
//!
//! * [`Store`] holds every per-proxy and per-toxic series for the life of the process. The
//!   registry asks it for a series when a proxy instance starts or a toxic is added, and
//!   hands the returned atomics to the data path. The data path only ever does relaxed
//!   atomic adds on them: no label lookups, locks or allocation per chunk. A proxy that
//!   restarts with the same labels gets the same series back, so counters stay monotonic
//!   across disable/enable, and a stopped or deleted proxy's totals never vanish.
//! * [`renderer`] builds the `/metrics` text with the `prometheus` crate (Prometheus text
//!   format 0.0.4, as Go's `promhttp` writes it). Rendering copies the list of series under
//!   the store's lock (a vector of `Arc`s), then reads the atomics without any lock. It
//!   never touches the proxy registry's locks.
//!
//! Families, with labels in exposition (alphabetical) order:
//!
//! | flag | name | type | labels |
//! |---|---|---|---|
//! | always | `promhttp_metric_handler_errors_total` | counter | `cause` (`encoding`, `gathering`) |
//! | `-proxy-metrics` | `toxiproxy_proxy_received_bytes_total` | counter | `direction`, `listener`, `proxy`, `upstream` |
//! | `-proxy-metrics` | `toxiproxy_proxy_sent_bytes_total` | counter | `direction`, `listener`, `proxy`, `upstream` |
//! | `-proxy-metrics` | `toxi_proxy_active_connections` | gauge | `listener`, `proxy`, `upstream` |
//! | `-proxy-metrics` | `toxi_toxic_activations_total` | counter | `direction`, `proxy`, `toxic`, `type` |
//! | `-proxy-metrics` with `-config-watch` | `toxi_config_reloads_total` | counter | `result` (`ok`, `error`) |
//! | `-runtime-metrics` | `process_*` | various | none |
//! | `-runtime-metrics` | `go_info`, `go_goroutines`, `go_threads` | gauge | `version` on `go_info` |
//!
//! The two `toxiproxy_*` counters have the reference's names, labels and empty HELP text,
//! but unlike the reference they count bytes as they move (DECISIONS §2.7) instead of when
//! a connection closes. A series exists from the moment its proxy instance starts.
//!
//! A **toxic activation** is the moment a toxic starts acting on one direction of one
//! connection: it is attached to the link (the connection opened while the toxic existed,
//! or the toxic was added to a live connection) and its toxicity roll says it applies; or a
//! toxicity update re-rolls an attached, inactive toxic to active. A toxic with toxicity 1
//! therefore counts one activation per connection in its direction, and one with
//! toxicity 0 counts none.
//!
//! The `go_*` lines are compatibility stand-ins for the reference's Go runtime collector
//! (scripts grep for `go_info` and `go_goroutines`): `go_goroutines` is the number of live
//! Tokio tasks, `go_threads` the number of OS threads, and `go_info{version}` names toxi.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{CounterVec, GaugeVec, IntCounterVec, Opts, TextEncoder};

use crate::model::Direction;

/// A function that renders the metrics text, or `None` when neither metrics flag is set
/// (then `/metrics` is not routed, as in the reference).
pub type Renderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Byte counters of one direction, updated live by the data path.
#[derive(Debug, Default)]
pub struct DirectionCounters {
    /// Bytes read from the source socket.
    pub received: AtomicU64,
    /// Bytes written to the destination socket.
    pub sent: AtomicU64,
}

/// Live counters of one started proxy instance (one listen/upstream pair).
#[derive(Debug, Default)]
pub struct InstanceStats {
    /// Indexed by `Direction::index()`.
    pub directions: [DirectionCounters; 2],
    /// Connections currently open (upstream dialled).
    pub active: AtomicI64,
}

/// The labels of one proxy instance's series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProxyLabels {
    /// The proxy's name.
    pub proxy: String,
    /// The bound listen address at connection start (e.g. `127.0.0.1:20000`).
    pub listener: String,
    /// The upstream address string as configured.
    pub upstream: String,
}

/// One proxy series: its labels and the live counters the data path updates.
#[derive(Debug)]
pub struct ProxySeries {
    pub labels: ProxyLabels,
    pub stats: Arc<InstanceStats>,
}

/// The labels of one toxic's activation counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ToxicLabels {
    pub proxy: String,
    pub toxic: String,
    /// The toxic type, e.g. `latency`.
    pub kind: String,
    /// `upstream` or `downstream`.
    pub direction: &'static str,
}

/// One toxic activation series.
#[derive(Debug)]
pub struct ToxicSeries {
    pub labels: ToxicLabels,
    pub activations: Arc<AtomicU64>,
}

/// Every metric series of a server, kept for the process's life (one per label set).
#[derive(Debug, Default)]
pub struct Store {
    proxies: Mutex<BTreeMap<ProxyLabels, Arc<ProxySeries>>>,
    toxics: Mutex<BTreeMap<ToxicLabels, Arc<ToxicSeries>>>,
    /// Config-file reloads (`-config-watch`): applied, refused; shown once watching.
    config_reloads: [AtomicU64; 2],
    config_watched: std::sync::atomic::AtomicBool,
    /// `http` proxies: responses per status, and requests each HTTP toxic answered.
    http_statuses: Mutex<BTreeMap<String, Arc<StatusCounts>>>,
    http_injected: Mutex<BTreeMap<(String, String), Arc<AtomicU64>>>,
}

/// Responses to clients of one `http` proxy, per status (100 to 599).
#[derive(Debug)]
pub struct StatusCounts([AtomicU64; 500]);

impl Default for StatusCounts {
    fn default() -> Self {
        StatusCounts(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl StatusCounts {
    pub fn count(&self, status: u16) {
        if let Some(c) = self.0.get(usize::from(status).wrapping_sub(100)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every status seen, with its count.
    pub fn seen(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.0.iter().enumerate().filter_map(|(i, c)| {
            let n = c.load(Ordering::Relaxed);
            (n > 0).then_some((i as u16 + 100, n))
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections only insert whole entries, so a poisoned map is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// The config file is watched: `toxi_config_reloads_total` is shown from now on.
    pub fn config_watched(&self) {
        self.config_watched.store(true, Ordering::Relaxed);
    }

    /// Counts one reload of the config file, applied (`ok`) or refused.
    pub fn config_reload(&self, ok: bool) {
        self.config_reloads[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    /// Reloads so far: (applied, refused).
    pub fn config_reloads(&self) -> (u64, u64) {
        let [ok, error] = &self.config_reloads;
        (ok.load(Ordering::Relaxed), error.load(Ordering::Relaxed))
    }

    /// The counters of a proxy instance with these labels, created at zero on first use.
    /// Called when an instance starts (not on the data path).
    pub fn instance(&self, proxy: &str, listener: &str, upstream: &str) -> Arc<InstanceStats> {
        let labels = ProxyLabels {
            proxy: proxy.to_string(),
            listener: listener.to_string(),
            upstream: upstream.to_string(),
        };
        let mut map = lock(&self.proxies);
        let series = map.entry(labels).or_insert_with_key(|labels| {
            Arc::new(ProxySeries {
                labels: labels.clone(),
                stats: Arc::default(),
            })
        });
        series.stats.clone()
    }

    /// The activation counter of a toxic, created at zero on first use. Called when a
    /// toxic is added (not on the data path).
    pub fn toxic_activations(
        &self,
        proxy: &str,
        toxic: &str,
        kind: &str,
        direction: Direction,
    ) -> Arc<AtomicU64> {
        let labels = ToxicLabels {
            proxy: proxy.to_string(),
            toxic: toxic.to_string(),
            kind: kind.to_string(),
            direction: direction.as_str(),
        };
        let mut map = lock(&self.toxics);
        let series = map.entry(labels).or_insert_with_key(|labels| {
            Arc::new(ToxicSeries {
                labels: labels.clone(),
                activations: Arc::default(),
            })
        });
        series.activations.clone()
    }

    /// `toxi_http_requests_total` of a proxy, created at zero on first use.
    pub fn http_statuses(&self, proxy: &str) -> Arc<StatusCounts> {
        lock(&self.http_statuses)
            .entry(proxy.to_string())
            .or_default()
            .clone()
    }

    /// `toxi_http_injected_total` of an HTTP toxic, created at zero on first use.
    pub fn http_injected(&self, proxy: &str, toxic: &str) -> Arc<AtomicU64> {
        lock(&self.http_injected)
            .entry((proxy.to_string(), toxic.to_string()))
            .or_default()
            .clone()
    }

    /// Every proxy series, in label order. Holds the lock only to copy the `Arc`s.
    pub fn proxy_series(&self) -> Vec<Arc<ProxySeries>> {
        lock(&self.proxies).values().cloned().collect()
    }

    /// Every toxic series, in label order. Holds the lock only to copy the `Arc`s.
    pub fn toxic_series(&self) -> Vec<Arc<ToxicSeries>> {
        lock(&self.toxics).values().cloned().collect()
    }
}

/// Builds the `/metrics` renderer for the flags given.
pub fn renderer(store: Arc<Store>, proxy_metrics: bool, runtime_metrics: bool) -> Option<Renderer> {
    if !proxy_metrics && !runtime_metrics {
        return None;
    }
    let exposition = Exposition::new(store, proxy_metrics, runtime_metrics);
    Some(Arc::new(move || exposition.render()))
}

/// The metric families to expose, registered in a private `prometheus::Registry`.
pub struct Exposition {
    registry: prometheus::Registry,
    handler_errors: Option<IntCounterVec>,
}

impl Exposition {
    /// Registers the handler-error counter, plus the proxy families if `proxy_metrics` and
    /// the process and runtime families if `runtime_metrics`.
    pub fn new(store: Arc<Store>, proxy_metrics: bool, runtime_metrics: bool) -> Exposition {
        let registry = prometheus::Registry::new();
        let handler_errors = IntCounterVec::new(
            Opts::new(
                "promhttp_metric_handler_errors_total",
                "Total number of internal errors encountered by the promhttp metric handler.",
            ),
            &["cause"],
        )
        .ok()
        .filter(|c| registry.register(Box::new(c.clone())).is_ok());
        if let Some(c) = &handler_errors {
            for cause in ["encoding", "gathering"] {
                c.with_label_values(&[cause]);
            }
        }
        let register = |c: Box<dyn Collector>| {
            if let Err(e) = registry.register(c) {
                tracing::error!(error = %e, "Cannot register metrics collector");
            }
        };
        if proxy_metrics {
            register(Box::new(ProxyCollector::new(store)));
        }
        if runtime_metrics {
            register(Box::new(RuntimeCollector::new()));
        }
        Exposition {
            registry,
            handler_errors,
        }
    }

    /// The exposition text. Families are sorted by name and series by label values.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let encoder = TextEncoder::new();
        let mut out = String::with_capacity(4096);
        for family in &families {
            // The reference's toxiproxy counters have an empty HELP, which Go still prints
            // as `# HELP <name> ` (trailing space); the crate's encoder leaves the line out.
            if family.help().is_empty() {
                out.push_str("# HELP ");
                out.push_str(family.name());
                out.push_str(" \n");
            }
            if let Err(e) = encoder.encode_utf8(std::slice::from_ref(family), &mut out) {
                if let Some(c) = &self.handler_errors {
                    c.with_label_values(&["encoding"]).inc();
                }
                tracing::error!(error = %e, family = family.name(), "Cannot encode metrics");
            }
        }
        out
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// A metric family's fixed description.
struct Spec {
    name: &'static str,
    /// Empty for the reference's toxiproxy counters.
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
}

/// One series of a family: label values (in `Spec::labels` order) and its value.
type Row<'a> = (Vec<&'a str>, f64);

impl Spec {
    fn opts(&self) -> Opts {
        // The crate refuses an empty HELP; it is cleared again in `family`.
        let help = if self.help.is_empty() {
            self.name
        } else {
            self.help
        };
        Opts::new(self.name, help)
    }

    fn desc(&self) -> Option<Desc> {
        let descs = match self.kind {
            Kind::Counter => CounterVec::new(self.opts(), self.labels)
                .ok()?
                .desc()
                .into_iter()
                .cloned()
                .collect::<Vec<_>>(),
            Kind::Gauge => GaugeVec::new(self.opts(), self.labels)
                .ok()?
                .desc()
                .into_iter()
                .cloned()
                .collect(),
        };
        descs.into_iter().next()
    }

    /// The family holding `rows`, or `None` when there are no rows.
    fn family(&self, rows: &[Row<'_>]) -> Option<MetricFamily> {
        if rows.is_empty() {
            return None;
        }
        let mut family = match self.kind {
            Kind::Counter => {
                let vec = CounterVec::new(self.opts(), self.labels).ok()?;
                for (labels, value) in rows {
                    vec.with_label_values(labels).inc_by(value.max(0.0));
                }
                vec.collect().pop()?
            }
            Kind::Gauge => {
                let vec = GaugeVec::new(self.opts(), self.labels).ok()?;
                for (labels, value) in rows {
                    vec.with_label_values(labels).set(*value);
                }
                vec.collect().pop()?
            }
        };
        family.set_help(self.help.to_string());
        Some(family)
    }
}

const RECEIVED: Spec = Spec {
    name: "toxiproxy_proxy_received_bytes_total",
    help: "",
    kind: Kind::Counter,
    labels: &["direction", "listener", "proxy", "upstream"],
};
const SENT: Spec = Spec {
    name: "toxiproxy_proxy_sent_bytes_total",
    help: "",
    kind: Kind::Counter,
    labels: &["direction", "listener", "proxy", "upstream"],
};
const ACTIVE: Spec = Spec {
    name: "toxi_proxy_active_connections",
    help: "Client connections currently open through the proxy (upstream dialled).",
    kind: Kind::Gauge,
    labels: &["listener", "proxy", "upstream"],
};
const ACTIVATIONS: Spec = Spec {
    name: "toxi_toxic_activations_total",
    help: "Times a toxic started acting on one direction of one connection (attached with a \
           successful toxicity roll).",
    kind: Kind::Counter,
    labels: &["direction", "proxy", "toxic", "type"],
};
const CONFIG_RELOADS: Spec = Spec {
    name: "toxi_config_reloads_total",
    help: "Reloads of the -config file: applied (ok) or refused as invalid (error).",
    kind: Kind::Counter,
    labels: &["result"],
};

const HTTP_REQUESTS: Spec = Spec {
    name: "toxi_http_requests_total",
    help: "Responses to clients of http proxies, by status (from the upstream or a toxic).",
    kind: Kind::Counter,
    labels: &["proxy", "status"],
};
const HTTP_INJECTED: Spec = Spec {
    name: "toxi_http_injected_total",
    help: "Requests an HTTP toxic acted on (aborted, delayed, failed or reset).",
    kind: Kind::Counter,
    labels: &["proxy", "toxic"],
};

/// The `-proxy-metrics` families, read from the [`Store`] at each scrape.
struct ProxyCollector {
    store: Arc<Store>,
    descs: Vec<Desc>,
}

impl ProxyCollector {
    fn new(store: Arc<Store>) -> ProxyCollector {
        let descs = [
            &RECEIVED,
            &SENT,
            &ACTIVE,
            &ACTIVATIONS,
            &CONFIG_RELOADS,
            &HTTP_REQUESTS,
            &HTTP_INJECTED,
        ]
        .iter()
        .filter_map(|s| s.desc())
        .collect();
        ProxyCollector { store, descs }
    }
}

impl Collector for ProxyCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let proxies = self.store.proxy_series();
        let mut received = Vec::with_capacity(proxies.len() * 2);
        let mut sent = Vec::with_capacity(proxies.len() * 2);
        let mut active = Vec::with_capacity(proxies.len());
        for series in &proxies {
            let l = &series.labels;
            for dir in [Direction::Upstream, Direction::Downstream] {
                let counters = &series.stats.directions[dir.index()];
                let labels = vec![dir.as_str(), &l.listener, &l.proxy, &l.upstream];
                received.push((
                    labels.clone(),
                    counters.received.load(Ordering::Relaxed) as f64,
                ));
                sent.push((labels, counters.sent.load(Ordering::Relaxed) as f64));
            }
            let open = series.stats.active.load(Ordering::Relaxed).max(0);
            active.push((vec![&l.listener[..], &l.proxy, &l.upstream], open as f64));
        }
        let toxics = self.store.toxic_series();
        let activations: Vec<Row<'_>> = toxics
            .iter()
            .map(|t| {
                let l = &t.labels;
                (
                    vec![l.direction, &l.proxy, &l.toxic, &l.kind],
                    t.activations.load(Ordering::Relaxed) as f64,
                )
            })
            .collect();
        let mut reloads: Vec<Row<'_>> = Vec::new();
        if self.store.config_watched.load(Ordering::Relaxed) {
            let (ok, error) = self.store.config_reloads();
            reloads.push((vec!["error"], error as f64));
            reloads.push((vec!["ok"], ok as f64));
        }
        let statuses: Vec<(String, Vec<(String, u64)>)> = lock(&self.store.http_statuses)
            .iter()
            .map(|(p, c)| {
                (
                    p.clone(),
                    c.seen().map(|(s, n)| (s.to_string(), n)).collect(),
                )
            })
            .collect();
        let requests: Vec<Row<'_>> = statuses
            .iter()
            .flat_map(|(p, rows)| {
                rows.iter()
                    .map(move |(s, n)| (vec![&p[..], &s[..]], *n as f64))
            })
            .collect();
        let injected_rows: Vec<((String, String), u64)> = lock(&self.store.http_injected)
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect();
        let injected: Vec<Row<'_>> = injected_rows
            .iter()
            .map(|((p, t), n)| (vec![&p[..], &t[..]], *n as f64))
            .collect();
        [
            RECEIVED.family(&received),
            SENT.family(&sent),
            ACTIVE.family(&active),
            ACTIVATIONS.family(&activations),
            CONFIG_RELOADS.family(&reloads),
            HTTP_REQUESTS.family(&requests),
            HTTP_INJECTED.family(&injected),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

const PROCESS_SPECS: [Spec; 10] = [
    Spec {
        name: "process_cpu_seconds_total",
        help: "Total user and system CPU time spent in seconds.",
        kind: Kind::Counter,
        labels: &[],
    },
    Spec {
        name: "process_open_fds",
        help: "Number of open file descriptors.",
        kind: Kind::Gauge,
        labels: &[],
    },
    Spec {
        name: "process_max_fds",
        help: "Maximum number of open file descriptors.",
        kind: Kind::Gauge,
        labels: &[],
    },
    Spec {
        name: "process_virtual_memory_bytes",
        help: "Virtual memory size in bytes.",
        kind: Kind::Gauge,
        labels: &[],
    },
    Spec {
        name: "process_virtual_memory_max_bytes",
        help: "Maximum amount of virtual memory available in bytes.",
        kind: Kind::Gauge,
        labels: &[],
    },
    Spec {
        name: "process_resident_memory_bytes",
        help: "Resident memory size in bytes.",
        kind: Kind::Gauge,
        labels: &[],
    },
    Spec {
        name: "process_start_time_seconds",
        help: "Start time of the process since unix epoch in seconds.",
        kind: Kind::Gauge,
        labels: &[],
    },
    Spec {
        name: "go_goroutines",
        help: "Compatibility stand-in: number of live Tokio tasks.",
        kind: Kind::Gauge,
        labels: &[],
    },
    Spec {
        name: "go_threads",
        help: "Compatibility stand-in: number of OS threads of the process.",
        kind: Kind::Gauge,
        labels: &[],
    },
    Spec {
        name: "go_info",
        help: "Compatibility stand-in: the server's build (toxi is not a Go program).",
        kind: Kind::Gauge,
        labels: &["version"],
    },
];

/// The `-runtime-metrics` families: the process collector's names, read from `/proc/self`,
/// and the `go_*` stand-ins.
struct RuntimeCollector {
    /// The runtime whose tasks `go_goroutines` counts (the one the server started in).
    handle: Option<tokio::runtime::Handle>,
    descs: Vec<Desc>,
}

impl RuntimeCollector {
    fn new() -> RuntimeCollector {
        RuntimeCollector {
            handle: tokio::runtime::Handle::try_current().ok(),
            descs: PROCESS_SPECS.iter().filter_map(Spec::desc).collect(),
        }
    }
}

impl Collector for RuntimeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let p = procfs::read();
        let tasks = self
            .handle
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
            .map(|h| h.metrics().num_alive_tasks() as f64);
        let version = format!("toxi-{}", crate::VERSION);
        let values: [Option<f64>; 10] = [
            p.cpu_seconds,
            p.open_fds,
            p.max_fds,
            p.virtual_memory,
            p.virtual_memory_max,
            p.resident_memory,
            p.start_time,
            tasks.or(p.threads),
            p.threads,
            Some(1.0),
        ];
        PROCESS_SPECS
            .iter()
            .zip(values)
            .filter_map(|(spec, value)| {
                let labels = if spec.labels.is_empty() {
                    vec![]
                } else {
                    vec![version.as_str()]
                };
                spec.family(&[(labels, value?)])
            })
            .collect()
    }
}

/// Reading `/proc/self` without extra dependencies. Values that cannot be read are `None`
/// and their lines are left out.
mod procfs {
    use std::fs;

    /// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, fixed at 100 by the Linux
    /// ABI; Go's procfs assumes the same).
    const USER_HZ: f64 = 100.0;

    #[derive(Debug, Default, Clone, PartialEq)]
    pub(super) struct Process {
        pub cpu_seconds: Option<f64>,
        pub open_fds: Option<f64>,
        pub max_fds: Option<f64>,
        pub virtual_memory: Option<f64>,
        pub virtual_memory_max: Option<f64>,
        pub resident_memory: Option<f64>,
        pub start_time: Option<f64>,
        pub threads: Option<f64>,
    }

    pub(super) fn read() -> Process {
        let mut p = Process::default();
        if let Ok(stat) = fs::read_to_string("/proc/self/stat") {
            if let Some(s) = parse_stat(&stat) {
                p.cpu_seconds = Some((s.utime + s.stime) as f64 / USER_HZ);
                p.threads = Some(s.num_threads as f64);
                p.virtual_memory = Some(s.vsize as f64);
                if let Some(boot) = fs::read_to_string("/proc/stat")
                    .ok()
                    .and_then(|t| parse_btime(&t))
                {
                    p.start_time = Some(boot as f64 + s.starttime as f64 / USER_HZ);
                }
            }
        }
        if let Ok(status) = fs::read_to_string("/proc/self/status") {
            p.resident_memory = status_kib(&status, "VmRSS:").map(|k| k as f64 * 1024.0);
        }
        if let Ok(limits) = fs::read_to_string("/proc/self/limits") {
            p.max_fds = soft_limit(&limits, "Max open files");
            p.virtual_memory_max = soft_limit(&limits, "Max address space");
        }
        p.open_fds = fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64);
        p
    }

    #[derive(Debug, PartialEq)]
    pub(super) struct Stat {
        pub utime: u64,
        pub stime: u64,
        pub num_threads: u64,
        pub starttime: u64,
        pub vsize: u64,
    }

    /// Parses `/proc/self/stat`. The command name (field 2) may hold spaces and
    /// parentheses, so fields are counted from its closing parenthesis.
    pub(super) fn parse_stat(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        // `rest` starts at field 3 (state): field N is at index N - 3.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            num_threads: field(20)?,
            starttime: field(22)?,
            vsize: field(23)?,
        })
    }

    /// The boot time (`btime`) from `/proc/stat`, in seconds since the epoch.
    pub(super) fn parse_btime(text: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// A `kB` value from `/proc/self/status`.
    pub(super) fn status_kib(text: &str, key: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// A soft limit from `/proc/self/limits`; `unlimited` is reported as 2^64 - 1, as Go's
    /// procfs does.
    pub(super) fn soft_limit(text: &str, name: &str) -> Option<f64> {
        let rest = text.lines().find_map(|l| l.strip_prefix(name))?;
        match rest.split_whitespace().next()? {
            "unlimited" => Some(u64::MAX as f64),
            v => v.parse::<u64>().ok().map(|v| v as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keeps_one_series_per_label_set() {
        let store = Store::default();
        let a = store.instance("p", "127.0.0.1:1", "u:2");
        a.directions[0].received.fetch_add(5, Ordering::Relaxed);
        let again = store.instance("p", "127.0.0.1:1", "u:2");
        assert!(Arc::ptr_eq(&a, &again));
        let other = store.instance("p", "127.0.0.1:3", "u:2");
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(store.proxy_series().len(), 2);
        let t1 = store.toxic_activations("p", "lat", "latency", Direction::Downstream);
        let t2 = store.toxic_activations("p", "lat", "latency", Direction::Downstream);
        assert!(Arc::ptr_eq(&t1, &t2));
        assert_eq!(store.toxic_series().len(), 1);
    }

    #[test]
    fn exposition_matches_the_reference_shape() {
        let store = Arc::new(Store::default());
        let s = store.instance("echo", "127.0.0.1:26501", "127.0.0.1:26500");
        for d in &s.directions {
            d.received.fetch_add(12, Ordering::Relaxed);
            d.sent.fetch_add(12, Ordering::Relaxed);
        }
        let text = Exposition::new(store, true, false).render();
        let expected = "\
# HELP promhttp_metric_handler_errors_total Total number of internal errors encountered by the promhttp metric handler.
# TYPE promhttp_metric_handler_errors_total counter
promhttp_metric_handler_errors_total{cause=\"encoding\"} 0
promhttp_metric_handler_errors_total{cause=\"gathering\"} 0
# HELP toxi_proxy_active_connections Client connections currently open through the proxy (upstream dialled).
# TYPE toxi_proxy_active_connections gauge
toxi_proxy_active_connections{listener=\"127.0.0.1:26501\",proxy=\"echo\",upstream=\"127.0.0.1:26500\"} 0
# HELP toxiproxy_proxy_received_bytes_total 
# TYPE toxiproxy_proxy_received_bytes_total counter
toxiproxy_proxy_received_bytes_total{direction=\"downstream\",listener=\"127.0.0.1:26501\",proxy=\"echo\",upstream=\"127.0.0.1:26500\"} 12
toxiproxy_proxy_received_bytes_total{direction=\"upstream\",listener=\"127.0.0.1:26501\",proxy=\"echo\",upstream=\"127.0.0.1:26500\"} 12
# HELP toxiproxy_proxy_sent_bytes_total 
# TYPE toxiproxy_proxy_sent_bytes_total counter
toxiproxy_proxy_sent_bytes_total{direction=\"downstream\",listener=\"127.0.0.1:26501\",proxy=\"echo\",upstream=\"127.0.0.1:26500\"} 12
toxiproxy_proxy_sent_bytes_total{direction=\"upstream\",listener=\"127.0.0.1:26501\",proxy=\"echo\",upstream=\"127.0.0.1:26500\"} 12
";
        assert_eq!(text, expected);
    }

    #[test]
    fn no_proxies_means_no_toxiproxy_lines() {
        let text = Exposition::new(Arc::default(), true, false).render();
        assert!(!text.contains("toxiproxy_"), "{text}");
        assert!(text.contains("promhttp_metric_handler_errors_total{cause=\"gathering\"} 0"));
    }

    #[test]
    fn runtime_families_are_present() {
        let text = Exposition::new(Arc::default(), false, true).render();
        for name in [
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_max_fds ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_virtual_memory_max_bytes ",
            "process_start_time_seconds ",
            "go_threads ",
            "go_goroutines ",
            "go_info{version=\"toxi-",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} missing:\n{text}"
            );
        }
        assert!(!text.contains("toxiproxy_"));
    }

    #[test]
    fn parses_proc_files() {
        let stat = "1234 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 7 0 4200 \
                    123456789 300 18446744073709551615";
        assert_eq!(
            procfs::parse_stat(stat),
            Some(procfs::Stat {
                utime: 250,
                stime: 50,
                num_threads: 7,
                starttime: 4200,
                vsize: 123456789,
            })
        );
        assert_eq!(procfs::parse_stat("garbage"), None);
        assert_eq!(
            procfs::parse_btime("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(
            procfs::status_kib("Name:\tx\nVmRSS:\t   2048 kB\n", "VmRSS:"),
            Some(2048)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max address space         unlimited            unlimited            bytes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(procfs::soft_limit(limits, "Max open files"), Some(1024.0));
        assert_eq!(
            procfs::soft_limit(limits, "Max address space"),
            Some(u64::MAX as f64)
        );
        let live = procfs::read();
        assert!(live.cpu_seconds.is_some() && live.open_fds.unwrap() > 0.0);
        assert!(live.start_time.unwrap() > 1.0e9);
    }
}
