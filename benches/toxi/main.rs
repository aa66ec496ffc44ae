//! toxi's performance suite: every figure measured side by side with a direct loopback
//! connection, alternating the two, printed as one table.
//!
//! ```text
//! cargo bench --bench toxi               # full run (about 1-2 minutes)
//! cargo bench --bench toxi -- --quick    # smoke run (under 20 s), as CI uses it
//! cargo bench --bench toxi -- --help     # options
//! ```
//!
//! The proxy runs in this process on thread-per-core workers as in `toxi-server` (threads
//! named `toxi-proxy-N`), driven through the registry; the load generator (clients and the
//! upstream servers) runs on a runtime of its own, so the two never share a scheduler. The memory figure
//! uses a `toxi-server` subprocess for a clean RSS reading. `--haproxy` adds HAProxy in TCP
//! mode as a reference proxy (a subprocess). See the README's "Performance" section.

mod alloc;
mod cpu;
mod events;
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

const FIGURES: [&str; 16] = [
    "bulk",
    "bulk8",
    "rtt",
    "rr64k",
    "rr11",
    "connrate",
    "memory",
    "held",
    "alloc",
    "lat100",
    "latency",
    "bandwidth",
    "api",
    "events",
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
    /// Print the final table as README-ready Markdown.
    pub markdown: bool,
}

const ENVIRONMENT: &str = "\
Environment:
  TOXI_BENCH_HAPROXY          HAProxy binary (default: haproxy on PATH or in /usr/sbin)
  TOXI_BENCH_PROXY_THREADS    proxy worker threads (default: one per CPU)
  TOXI_BENCH_LOADGEN_THREADS  worker threads of the load-generator runtime (default: one
                              per CPU)
  TOXI_SERVER_BIN             server binary for the memory figure (default: the one
                              Cargo built)
  TOXI_BENCH_VERBOSE=1        print every API request's time";

/// The command line. Options left unset take their default for the mode (full or
/// `--quick`), filled in by `parse_args`. Help lines are wrapped by hand (clap's
/// `wrap_help` would pull in a terminal-size crate).
#[derive(Debug, clap::Parser)]
#[command(
    name = "toxi-bench",
    about = "toxi benchmark suite",
    override_usage = "cargo bench --bench toxi -- [OPTIONS]",
    after_help = ENVIRONMENT,
    disable_version_flag = true,
    // A repeated option is no error; its last value wins.
    args_override_self = true
)]
struct Args {
    /// Short smoke run (< 20 s): 2 rounds, 0.2 s samples, 1,000 idle
    /// connections, 0.5 s bandwidth transfers, 1 s API churn
    #[arg(long, verbatim_doc_comment)]
    quick: bool,
    /// Direct/proxied rounds per figure (default 5; 2 with --quick)
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Seconds per throughput/rate sample (default 0.5; 0.2 with --quick)
    #[arg(long, value_name = "X", value_parser = finite_f64)]
    secs: Option<f64>,
    /// Ping-pongs per round-trip sample (default 5000; 1500 with --quick)
    #[arg(long, value_name = "N")]
    rtt_iters: Option<usize>,
    /// Idle connections for the memory figures (default 5000; 1000 with
    /// --quick)
    #[arg(long, value_name = "N", verbatim_doc_comment)]
    idle_conns: Option<usize>,
    /// Streaming connections during the API figure (default 1000)
    #[arg(long, value_name = "N")]
    streams: Option<usize>,
    /// Toxic add+remove pairs per API measurement (default 100; 15 with
    /// --quick)
    #[arg(long, value_name = "N", verbatim_doc_comment)]
    api_ops: Option<usize>,
    /// Seconds of data per bandwidth transfer (default 2; 0.5 with --quick)
    #[arg(long, value_name = "X", value_parser = finite_f64)]
    bw_secs: Option<f64>,
    /// Run only these figures (see the help's list)
    #[arg(
        long,
        value_name = "a,b,...",
        value_delimiter = ',',
        value_parser = figure,
        help = only_help()
    )]
    only: Option<Vec<String>>,
    /// Exit with status 1 if any target is missed
    #[arg(long)]
    strict: bool,
    /// Also measure HAProxy in TCP mode (as many threads as the proxy
    /// runtime) on the same upstreams, alternating with direct and toxi:
    /// bulk, bulk8, rtt, rr64k, rr11, connrate and memory get a reference
    /// row
    #[arg(long, verbatim_doc_comment)]
    haproxy: bool,
    /// Print the final table as compact Markdown, ready to paste into the
    /// README (indents as &nbsp;)
    #[arg(long, verbatim_doc_comment)]
    markdown: bool,
    /// Serve the API on a one-thread runtime of its own instead of sharing
    /// the first proxy worker, as toxi-server does (the default)
    #[arg(long, verbatim_doc_comment, overrides_with = "shared_api_runtime")]
    separate_api_runtime: bool,
    /// Serve the API on the first proxy worker instead (for comparison)
    #[arg(long, overrides_with = "separate_api_runtime")]
    shared_api_runtime: bool,
    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    bench: bool,
    /// Benchmark name filters passed by `cargo bench NAME`; ignored
    #[arg(hide = true)]
    filters: Vec<String>,
}

/// The help of `--only`: the figure names, a few to a line.
fn only_help() -> String {
    let names: Vec<String> = FIGURES.chunks(7).map(|c| c.join(" ")).collect();
    format!("Run only these figures:\n{}", names.join("\n"))
}

/// `e` without clap's tip to pass an unknown option after `--` (as a value of the hidden,
/// ignored filters), which would only mislead here.
fn without_dash_dash_tip(e: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return e;
    }
    let mut clean = clap::Error::new(e.kind()).with_cmd(&<Args as clap::CommandFactory>::command());
    for (kind, value) in e.context().filter(|(k, _)| *k != ContextKind::Suggested) {
        clean.insert(kind, value.clone());
    }
    clean
}

/// A figure name of `--only` (surrounding blanks ignored).
fn figure(s: &str) -> Result<String, String> {
    let name = s.trim();
    if FIGURES.contains(&name) {
        Ok(name.to_string())
    } else {
        Err(format!("unknown figure; known: {}", FIGURES.join(" ")))
    }
}

/// A finite number of seconds (`nan` or `inf` would panic in `Duration`).
fn finite_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err("not a finite number".to_string()),
    }
}

/// The run's parameters, or `None` when there is nothing to run (no arguments, as from
/// `cargo test --benches`). `--help` and bad options exit here, as clap does.
fn parse_args() -> Option<Params> {
    if std::env::args_os().len() <= 1 {
        // `cargo test --benches` runs bench targets without arguments: do nothing there.
        println!("toxi bench: run with `cargo bench --bench toxi` (see --help)");
        return None;
    }
    let args = match <Args as clap::Parser>::try_parse() {
        Ok(args) => args,
        Err(e) => without_dash_dash_tip(e).exit(),
    };
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let env_threads = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(cpus)
    };
    let quick = args.quick;
    let secs = args
        .secs
        .map_or(if quick { 0.2 } else { 0.5 }, |x| x.clamp(0.05, 60.0));
    Some(Params {
        quick,
        rounds: args.rounds.map_or(if quick { 2 } else { 5 }, |n| n.max(1)),
        sample: Duration::from_secs_f64(secs),
        rtt_iters: args
            .rtt_iters
            .map_or(if quick { 1500 } else { 5000 }, |n| n.max(10)),
        idle_conns: args
            .idle_conns
            .map_or(if quick { 1000 } else { 5000 }, |n| n.max(1)),
        api_streams: args.streams.map_or(1000, |n| n.max(1)),
        api_ops: args
            .api_ops
            .map_or(if quick { 15 } else { 100 }, |n| n.max(1)),
        api_limit: Duration::from_secs(if quick { 1 } else { 15 }),
        lat_pings: if quick { 6 } else { 20 },
        burst_msgs: if quick { 10 } else { 20 },
        bw_secs: args
            .bw_secs
            .map_or(if quick { 0.5 } else { 2.0 }, |x| x.clamp(0.1, 60.0)),
        only: args.only,
        strict: args.strict,
        proxy_threads: env_threads("TOXI_BENCH_PROXY_THREADS"),
        loadgen_threads: env_threads("TOXI_BENCH_LOADGEN_THREADS"),
        separate_api_runtime: !args.shared_api_runtime,
        haproxy: args.haproxy,
        markdown: args.markdown,
    })
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
    let Some(params) = parse_args() else {
        return;
    };
    let nofile = raise_nofile();
    let started = Instant::now();

    // The data path as toxi-server runs it: one current-thread worker per proxy thread.
    let workers =
        toxi::proxy::Workers::start(params.proxy_threads, "toxi-proxy", alloc::mark_proxy_thread)
            .expect("proxy workers");
    let data_path = workers.data_path();
    let proxy_rt = data_path.runtime(0).expect("a worker").clone();
    let loadgen_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(params.loadgen_threads)
        .thread_name("loadgen")
        .enable_all()
        .build()
        .expect("load-generator runtime");

    // The API serves on the runtime `Server::start` runs on. By default that is a one-thread
    // runtime of its own, as in `toxi-server`; `--shared-api-runtime` puts it on the first
    // worker instead.
    let api_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("toxi-api")
        .on_thread_start(alloc::mark_proxy_thread)
        .enable_all()
        .build()
        .expect("API runtime");
    let server_rt = if params.separate_api_runtime {
        api_rt.handle().clone()
    } else {
        proxy_rt.clone()
    };
    let config = toxi::server::Config {
        // As in toxi-server: the data path on the workers, the API apart.
        data_path,
        ..toxi::server::Config::for_tests()
    };
    let server = api_rt
        .block_on(server_rt.spawn(toxi::server::Server::start(config)))
        .expect("server task")
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
        proxy_rt: proxy_rt.clone(),
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
                "rr11" => figures::rr11(&ctx).await,
                "connrate" => figures::connrate(&ctx).await,
                "memory" => figures::memory(&ctx).await,
                "held" => figures::held(&ctx).await,
                "alloc" => figures::allocs(&ctx).await,
                "lat100" => figures::lat100(&ctx).await,
                "latency" => figures::latency(&ctx).await,
                "bandwidth" => figures::bandwidth(&ctx).await,
                "api" => figures::api(&ctx).await,
                "events" => events::stalled_reader(&ctx).await,
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
    let _ = api_rt.block_on(server_rt.spawn(server.shutdown()));
    api_rt.shutdown_timeout(Duration::from_secs(1));
    loadgen_rt.shutdown_timeout(Duration::from_secs(1));
    workers.shutdown(Duration::from_secs(1));

    println!();
    if params.markdown {
        print!("{}", report::markdown(&rows));
    } else {
        print!("{}", report::table(&rows));
    }
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
