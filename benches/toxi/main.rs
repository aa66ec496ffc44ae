//! toxi's performance suite: every figure measured side by side with a direct loopback
//! connection, alternating the two, printed as one table.
//!
//! ```text
//! cargo bench --bench toxi               # full run (about 1-2 minutes)
//! cargo bench --bench toxi -- --quick    # smoke run (under 20 s), as CI uses it
//! cargo bench --bench toxi -- --help     # options
//! ```
//!
//! The proxy runs in this process on its own multi-thread runtime (threads named
//! `toxi-proxy`), driven through the registry; the load generator (clients and the upstream
//! servers) runs on a second runtime, so the two never share a scheduler. The memory figure
//! uses a `toxi-server` subprocess for a clean RSS reading. `--haproxy` adds HAProxy in TCP
//! mode as a reference proxy (a subprocess). See the README's "Performance" section.

mod alloc;
mod cpu;
mod figures;
mod haproxy;
mod http;
mod load;
mod memory;
mod report;
mod upstream;

use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

const FIGURES: [&str; 13] = [
    "bulk",
    "bulk8",
    "rtt",
    "rr64k",
    "connrate",
    "memory",
    "alloc",
    "lat100",
    "latency",
    "bandwidth",
    "api",
    "http",
    "http1g",
];

#[derive(Debug, Clone)]
pub struct Params {
    pub quick: bool,
    /// Direct/proxied rounds per figure (medians are reported).
    pub rounds: usize,
    /// Length of one throughput or rate sample.
    pub sample: Duration,
    /// Ping-pongs per round-trip sample.
    pub rtt_iters: usize,
    /// Idle connections for the memory figures.
    pub idle_conns: usize,
    /// Streaming connections during the API figure.
    pub api_streams: usize,
    /// Toxic add+remove pairs per API measurement.
    pub api_ops: usize,
    /// Time limit of each API churn run.
    pub api_limit: Duration,
    /// Pings through the 50 ms latency toxic.
    pub lat_pings: usize,
    /// Pipelined messages in the latency burst.
    pub burst_msgs: usize,
    /// Seconds of data per bandwidth-toxic transfer.
    pub bw_secs: f64,
    pub only: Option<Vec<String>>,
    pub strict: bool,
    pub proxy_threads: usize,
    pub loadgen_threads: usize,
    /// Serve the API on a runtime of its own instead of the proxy runtime.
    pub separate_api_runtime: bool,
    /// Measure HAProxy (TCP mode) beside toxi.
    pub haproxy: bool,
}

const USAGE: &str = "\
toxi benchmark suite

usage: cargo bench --bench toxi -- [options]

  --quick            short smoke run (< 20 s): 2 rounds, 0.2 s samples, 1,000 idle
                     connections, 0.5 s bandwidth transfers, 1 s API churn
  --rounds N         direct/proxied rounds per figure (default 5)
  --secs X           seconds per throughput/rate sample (default 0.5)
  --rtt-iters N      ping-pongs per round-trip sample (default 5000)
  --idle-conns N     idle connections for the memory figures (default 5000)
  --streams N        streaming connections during the API figure (default 1000)
  --api-ops N        toxic add+remove pairs per API measurement (default 100)
  --bw-secs X        seconds of data per bandwidth transfer (default 2)
  --only a,b,...     run only these figures: bulk bulk8 rtt rr64k connrate memory alloc
                     lat100 latency bandwidth api http http1g
  --strict           exit with status 1 if any target is missed
  --haproxy          also measure HAProxy in TCP mode (as many threads as the proxy
                     runtime) on the same upstreams, alternating with direct and toxi:
                     bulk, bulk8, rtt, rr64k, connrate and memory get a reference row
  --separate-api-runtime
                     serve the API on a one-thread runtime of its own instead of sharing
                     the proxy runtime, as toxi-server does (the default)
  --shared-api-runtime
                     serve the API on the proxy runtime instead (for comparison)

environment: TOXI_BENCH_HAPROXY (HAProxy binary; default: haproxy on PATH or in /usr/sbin),
TOXI_BENCH_PROXY_THREADS, TOXI_BENCH_LOADGEN_THREADS (worker threads of the
proxy and load-generator runtimes; default: number of CPUs), TOXI_SERVER_BIN (server binary
for the memory figure; default: the one Cargo built), TOXI_BENCH_VERBOSE=1 (print every API
request's time).
";

fn parse_args() -> Result<Option<Params>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        // `cargo test --benches` runs bench targets without arguments: do nothing there.
        println!("toxi bench: run with `cargo bench --bench toxi` (see --help)");
        return Ok(None);
    }
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let env_threads = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(cpus)
    };
    let quick = args.iter().any(|a| a == "--quick");
    let mut p = Params {
        quick,
        rounds: if quick { 2 } else { 5 },
        sample: Duration::from_millis(if quick { 200 } else { 500 }),
        rtt_iters: if quick { 1500 } else { 5000 },
        idle_conns: if quick { 1000 } else { 5000 },
        api_streams: 1000,
        api_ops: if quick { 15 } else { 100 },
        api_limit: Duration::from_secs(if quick { 1 } else { 15 }),
        lat_pings: if quick { 6 } else { 20 },
        burst_msgs: if quick { 10 } else { 20 },
        bw_secs: if quick { 0.5 } else { 2.0 },
        only: None,
        strict: false,
        proxy_threads: env_threads("TOXI_BENCH_PROXY_THREADS"),
        loadgen_threads: env_threads("TOXI_BENCH_LOADGEN_THREADS"),
        separate_api_runtime: true,
        haproxy: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("bad value for {name}: {v}"))
        }
        match a.as_str() {
            "--quick" | "--bench" => {}
            "--strict" => p.strict = true,
            "--haproxy" => p.haproxy = true,
            "--separate-api-runtime" => p.separate_api_runtime = true,
            "--shared-api-runtime" => p.separate_api_runtime = false,
            "--rounds" => p.rounds = num::<usize>(a, value(a)?)?.max(1),
            "--secs" => {
                p.sample = Duration::from_secs_f64(num::<f64>(a, value(a)?)?.clamp(0.05, 60.0))
            }
            "--rtt-iters" => p.rtt_iters = num::<usize>(a, value(a)?)?.max(10),
            "--idle-conns" => p.idle_conns = num::<usize>(a, value(a)?)?.max(1),
            "--streams" => p.api_streams = num::<usize>(a, value(a)?)?.max(1),
            "--api-ops" => p.api_ops = num::<usize>(a, value(a)?)?.max(1),
            "--bw-secs" => p.bw_secs = num::<f64>(a, value(a)?)?.clamp(0.1, 60.0),
            "--only" => {
                let list: Vec<String> =
                    value(a)?.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = list.iter().find(|f| !FIGURES.contains(&f.as_str())) {
                    return Err(format!(
                        "unknown figure {bad}; known: {}",
                        FIGURES.join(" ")
                    ));
                }
                p.only = Some(list);
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            other if other.starts_with('-') => {
                return Err(format!("unknown option {other}\n{USAGE}"))
            }
            _ => {}
        }
    }
    Ok(Some(p))
}

/// Raises the soft open-files limit to the hard limit (5,000 idle connections need
/// 10,000 descriptors here and 10,000 in the server).
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

fn main() {
    let params = match parse_args() {
        Ok(Some(p)) => p,
        Ok(None) => return,
        Err(e) => {
            eprintln!("toxi bench: {e}");
            std::process::exit(2);
        }
    };
    let nofile = raise_nofile();
    let started = Instant::now();

    let proxy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(params.proxy_threads)
        .thread_name("toxi-proxy")
        .on_thread_start(alloc::mark_proxy_thread)
        .enable_all()
        .build()
        .expect("proxy runtime");
    let loadgen_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(params.loadgen_threads)
        .thread_name("loadgen")
        .enable_all()
        .build()
        .expect("load-generator runtime");

    // The API serves on the runtime `Server::start` runs on. By default that is the proxy
    // runtime, as in `toxi-server`; `--separate-api-runtime` gives it a one-thread runtime
    // of its own (proxies are still created on the proxy runtime, see `Ctx::proxy`).
    let api_rt = params.separate_api_runtime.then(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("toxi-api")
            .on_thread_start(alloc::mark_proxy_thread)
            .enable_all()
            .build()
            .expect("API runtime")
    });
    let server_rt = api_rt.as_ref().unwrap_or(&proxy_rt);
    let server = server_rt
        .block_on(toxi::server::Server::start(toxi::server::Config {
            // As in toxi-server: the data path on the proxy runtime, the API on its own.
            proxy_runtime: Some(proxy_rt.handle().clone()),
            ..toxi::server::Config::for_tests()
        }))
        .expect("server starts");

    println!(
        "toxi benchmark — {} mode",
        if params.quick { "quick" } else { "full" }
    );
    println!("machine: {}", report::machine());
    println!(
        "setup: proxy in-process on {} worker thread(s){}, load generator on {}; \
         {} rounds of {:.1} s samples, medians; open-files limit {nofile}{}",
        params.proxy_threads,
        if params.separate_api_runtime {
            " (API on its own thread)"
        } else {
            ""
        },
        params.loadgen_threads,
        params.rounds,
        params.sample.as_secs_f64(),
        if cfg!(debug_assertions) {
            "; WARNING: debug build, numbers are meaningless"
        } else {
            ""
        },
    );
    println!();

    let up = loadgen_rt.block_on(upstream::Upstreams::start());
    let haproxy = if params.haproxy {
        let started = match haproxy::binary() {
            Some(bin) => {
                loadgen_rt.block_on(haproxy::start(bin, params.proxy_threads, nofile, &up))
            }
            None => Err("no haproxy binary (install it, or set TOXI_BENCH_HAPROXY)".into()),
        };
        match started {
            Ok(h) => {
                println!(
                    "reference: {} in TCP mode, {} thread(s), subprocess",
                    h.label, params.proxy_threads
                );
                Some(h)
            }
            Err(e) => {
                eprintln!("toxi bench: --haproxy: {e}");
                std::process::exit(2);
            }
        }
    } else {
        None
    };
    let ctx = figures::Ctx {
        p: params.clone(),
        registry: server.registry().clone(),
        proxy_rt: proxy_rt.handle().clone(),
        api: server.api_addr(),
        up,
        nofile,
        haproxy,
    };
    let rows = loadgen_rt.block_on(async {
        let mut rows = Vec::new();
        for name in FIGURES {
            if let Some(only) = &ctx.p.only {
                if !only.iter().any(|o| o == name) {
                    continue;
                }
            }
            let t0 = Instant::now();
            eprint!("running {name:<10} ");
            let result = match name {
                "bulk" => figures::bulk(&ctx).await,
                "bulk8" => figures::bulk8(&ctx).await,
                "rtt" => figures::rtt(&ctx).await,
                "rr64k" => figures::rr64k(&ctx).await,
                "connrate" => figures::connrate(&ctx).await,
                "memory" => figures::memory(&ctx).await,
                "alloc" => figures::allocs(&ctx).await,
                "lat100" => figures::lat100(&ctx).await,
                "latency" => figures::latency(&ctx).await,
                "bandwidth" => figures::bandwidth(&ctx).await,
                "api" => figures::api(&ctx).await,
                "http" => figures::http(&ctx).await,
                "http1g" => figures::http1g(&ctx).await,
                _ => unreachable!(),
            };
            eprintln!("{:.1} s", t0.elapsed().as_secs_f64());
            match result {
                Ok(r) => rows.extend(r),
                Err(e) => rows.push(report::Row::error(name, e)),
            }
        }
        rows
    });

    // Stops HAProxy (its Drop), before any `exit` below could skip that.
    drop(ctx);
    server_rt.block_on(server.shutdown());
    if let Some(rt) = api_rt {
        rt.shutdown_timeout(Duration::from_secs(1));
    }
    loadgen_rt.shutdown_timeout(Duration::from_secs(1));
    proxy_rt.shutdown_timeout(Duration::from_secs(1));

    println!();
    print!("{}", report::table(&rows));
    let missed = rows.iter().filter(|r| r.ok == Some(false)).count();
    println!();
    println!(
        "{} targets met, {missed} missed; total {:.1} s",
        rows.iter().filter(|r| r.ok == Some(true)).count(),
        started.elapsed().as_secs_f64()
    );
    if params.strict && missed > 0 {
        std::process::exit(1);
    }
}
