//! Where the data path runs: the caller's runtime, one given runtime, or thread-per-core
//! workers.
//!
//! [`Workers`] starts one thread per core, each running a current-thread tokio runtime
//! with its own reactor and timer. A proxy listens with one socket per worker, an
//! `SO_REUSEPORT` group on Linux (see `addr::bind_group`), and each worker accepts on its
//! own socket: the kernel hands a new client straight to one worker, which serves it from
//! then on, unless another worker runs at least two fewer connections (the kernel's hash
//! can put seven of ten clients on one worker): then the client moves there once, before any byte
//! moves. The connection's sockets, its two links and every wake-up they cause stay on
//! that one thread: no work stealing, no cross-thread notification per message. That is
//! how HAProxy runs its threads. Elsewhere than Linux a proxy has one
//! socket, on one worker (proxies are spread over the workers in turn).
//!
//! The control API never runs on a worker, so a busy connection cannot delay it, and a
//! toxic edit reaches a link on any worker through the link's `watch` channel.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// One runtime of a [`DataPath`], with the number of connections it runs.
struct Slot {
    handle: Handle,
    open: AtomicUsize,
}

/// The runtimes a server's listeners and connections run on. Cheap to clone.
///
/// * [`DataPath::caller`] (the default): whatever runtime starts the proxy.
/// * [`DataPath::on`]: one runtime (for example a multi-thread one) for everything.
/// * [`Workers::data_path`]: thread-per-core, as `toxi-server` runs.
#[derive(Clone, Default)]
pub struct DataPath {
    slots: Arc<[Slot]>,
    /// Which worker gets the next proxy's accept loop.
    next_accept: Arc<AtomicUsize>,
}

impl fmt::Debug for DataPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataPath")
            .field("runtimes", &self.slots.len())
            .finish()
    }
}

impl DataPath {
    /// Listeners and connections run on the runtime that starts each proxy.
    pub fn caller() -> DataPath {
        DataPath::default()
    }

    /// Listeners and connections all run on `handle`'s runtime.
    pub fn on(handle: Handle) -> DataPath {
        DataPath::of(vec![handle])
    }

    fn of(handles: Vec<Handle>) -> DataPath {
        DataPath {
            slots: handles
                .into_iter()
                .map(|handle| Slot {
                    handle,
                    open: AtomicUsize::new(0),
                })
                .collect(),
            next_accept: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many runtimes connections are spread over (0: the caller's).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether this is [`DataPath::caller`].
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The worker of a new proxy's first listening socket (round robin over proxies), as
    /// a slot index; `None` for the caller's runtime.
    pub(crate) fn accept_slot(&self) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        Some(self.next_accept.fetch_add(1, Ordering::Relaxed) % self.slots.len())
    }

    pub(crate) fn handle(&self, slot: usize) -> &Handle {
        &self.slots[slot].handle
    }

    /// How many connections each runtime runs now, in runtime order.
    pub fn connections(&self) -> Vec<usize> {
        self.slots
            .iter()
            .map(|s| s.open.load(Ordering::Relaxed))
            .collect()
    }

    /// The `i`th runtime, if there is one.
    pub fn runtime(&self, i: usize) -> Option<&Handle> {
        self.slots.get(i).map(|s| &s.handle)
    }

    /// Where a client accepted on `here` is served: `here`, unless another worker runs
    /// at least two fewer connections (then the least busy one). The kernel spreads
    /// clients by a hash, which can put seven of ten on one worker; this keeps every
    /// worker within two connections of the others. Moving only at a difference of two
    /// halves the hand-overs of short connections (each costs a cross-thread wake-up):
    /// 0.98-0.99x HAProxy's new-connection rate against 0.88-0.91x when moving at one.
    pub(crate) fn pick(&self, here: usize) -> usize {
        let open = |i: usize| self.slots[i].open.load(Ordering::Relaxed);
        let least = (0..self.slots.len())
            .min_by_key(|&i| open(i))
            .unwrap_or(here);
        if open(least) + 1 < open(here) {
            least
        } else {
            here
        }
    }

    /// Counts a connection on `slot` until the returned guard drops.
    pub(crate) fn enter(&self, slot: usize) -> OpenGuard {
        self.slots[slot].open.fetch_add(1, Ordering::Relaxed);
        OpenGuard {
            path: self.clone(),
            slot,
        }
    }
}

/// Keeps one connection counted on its worker.
pub(crate) struct OpenGuard {
    path: DataPath,
    slot: usize,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.path.slots[self.slot]
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Thread-per-core workers: `n` threads, each running a current-thread runtime until
/// [`Workers::shutdown`] (or drop).
pub struct Workers {
    path: DataPath,
    stops: Vec<oneshot::Sender<Duration>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` workers (at least one) named `{name}-{i}`. `on_start` runs first on each
    /// worker thread and on each thread of their blocking pools.
    pub fn start(
        n: usize,
        name: &str,
        on_start: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<Workers> {
        let on_start = Arc::new(on_start);
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let on_start = on_start.clone();
            let on_blocking = on_start.clone();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("{name}-{i}-blocking"))
                .on_thread_start(move || on_blocking())
                .build()?;
            handles.push(rt.handle().clone());
            let (stop, stopped) = oneshot::channel::<Duration>();
            stops.push(stop);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        on_start();
                        let grace = rt.block_on(async { stopped.await.unwrap_or_default() });
                        rt.shutdown_timeout(grace);
                    })?,
            );
        }
        Ok(Workers {
            path: DataPath::of(handles),
            stops,
            threads,
        })
    }

    /// One worker per CPU the process may use.
    pub fn per_core(name: &str) -> std::io::Result<Workers> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Workers::start(n, name, || {})
    }

    /// The data path that spreads connections over these workers.
    pub fn data_path(&self) -> DataPath {
        self.path.clone()
    }

    /// Stops every worker: their tasks are dropped (sockets closed), waiting up to
    /// `timeout` for blocking work such as a DNS lookup.
    pub fn shutdown(mut self, timeout: Duration) {
        self.stop(timeout);
    }

    fn stop(&mut self, timeout: Duration) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(timeout);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.threads.len())
            .finish()
    }
}
