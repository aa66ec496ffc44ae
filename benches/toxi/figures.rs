//! The figures: each runs direct and proxied measurements alternately (A B A B …) and
//! turns the medians into table rows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use toxi::model::{Direction, Protocol, ToxicKind};
use toxi::registry::{ProxyInput, Registry, ToxicSnapshot};

use crate::cpu;
use crate::http;
use crate::load::{self, median, quantile, Res};
use crate::report::{Row, Target};
use crate::upstream::Upstreams;
use crate::Params;

const MB: f64 = 1e6;
const MIB: f64 = 1024.0 * 1024.0;

pub struct Ctx {
    pub p: Params,
    pub registry: Arc<Registry>,
    pub proxy_rt: tokio::runtime::Handle,
    pub api: SocketAddr,
    pub up: Upstreams,
    /// The open-files limit of this process.
    pub nofile: u64,
    /// HAProxy as a reference proxy (`--haproxy`).
    pub haproxy: Option<crate::haproxy::Haproxy>,
}

impl Ctx {
    /// Creates an enabled proxy on 127.0.0.1:0 toward `upstream`; returns its address.
    pub async fn proxy(&self, name: &str, upstream: SocketAddr) -> Res<SocketAddr> {
        self.proxy_as(name, upstream, Protocol::Tcp).await
    }

    /// [`Ctx::proxy`] with the given protocol.
    pub async fn proxy_as(
        &self,
        name: &str,
        upstream: SocketAddr,
        protocol: Protocol,
    ) -> Res<SocketAddr> {
        let reg = self.registry.clone();
        let input = ProxyInput {
            protocol,
            name: name.into(),
            listen: "127.0.0.1:0".into(),
            upstream: upstream.to_string(),
            enabled: true,
        };
        // Proxies start their accept loop with tokio::spawn: run on the proxy runtime.
        let snap = self
            .proxy_rt
            .spawn(async move { reg.create(input).await })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("creating proxy {name}: {e}"))?;
        snap.listen
            .parse()
            .map_err(|e| format!("{}: {e}", snap.listen))
    }

    pub fn add_toxic(&self, proxy: &str, name: &str, dir: Direction, kind: ToxicKind) -> Res<()> {
        self.registry
            .add_toxic(proxy, ToxicSnapshot::new(name, dir, kind))
            .map(|_| ())
            .map_err(|e| format!("adding toxic {name}: {e}"))
    }
}

/// Runs `f` against `direct` and `proxied` alternately for `rounds` rounds.
async fn alternate<T, F, Fut>(
    rounds: usize,
    direct: SocketAddr,
    proxied: SocketAddr,
    f: F,
) -> Res<(Vec<T>, Vec<T>)>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Res<T>>,
{
    let (d, t, _) = alternate_with(rounds, direct, proxied, None, f).await?;
    Ok((d, t))
}

/// [`alternate`] with an optional reference proxy as a third column of each round
/// (direct, toxi, reference, direct, toxi, …). A failing reference is reported in its
/// row and does not fail the figure.
async fn alternate_with<T, F, Fut>(
    rounds: usize,
    direct: SocketAddr,
    proxied: SocketAddr,
    reference: Option<SocketAddr>,
    mut f: F,
) -> Res<(Vec<T>, Vec<T>, Option<Res<Vec<T>>>)>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Res<T>>,
{
    let (mut d, mut t) = (Vec::new(), Vec::new());
    let mut r = reference.map(|_| Ok(Vec::new()));
    for _ in 0..rounds {
        d.push(f(direct).await.map_err(|e| format!("direct: {e}"))?);
        t.push(f(proxied).await.map_err(|e| format!("toxi: {e}"))?);
        if let (Some(addr), Some(Ok(v))) = (reference, r.as_mut()) {
            match f(addr).await {
                Ok(x) => v.push(x),
                Err(e) => r = Some(Err(e)),
            }
        }
    }
    Ok((d, t, r))
}

/// The reference proxy's row under a toxi row: its value, its ratio to direct, and how
/// toxi compares (`toxi / reference`, > 1 means toxi is ahead for rates).
fn reference_row(
    ctx: &Ctx,
    direct: f64,
    toxi: f64,
    reference: Res<f64>,
    fmt: impl Fn(f64) -> String,
) -> Row {
    let label = ctx
        .haproxy
        .as_ref()
        .map_or("reference", |h| h.label.as_str());
    let figure = format!("  {label} (TCP mode)");
    match reference {
        Ok(h) => Row::value(
            &figure,
            fmt(direct),
            fmt(h),
            format!("{:.2}×", h / direct),
            true,
            &format!("toxi = {:.2}× {label}", toxi / h),
        )
        .without_target(),
        Err(e) => Row::error(&figure, e).without_target(),
    }
}

/// The reference proxy's samples for a figure that also reports CPU time: each sample
/// adds its value, the CPU time of the load generator and of the reference process, and
/// the units of work (bytes, connections) those are divided by. After a failed sample no
/// more are taken. A value is a number (`f64`) or a whole sample (latencies).
struct ReferenceSamples<T = f64> {
    values: Res<Vec<T>>,
    loadgen: Duration,
    proxy: Duration,
    units: f64,
}

impl<T> ReferenceSamples<T> {
    fn new() -> Self {
        ReferenceSamples {
            values: Ok(Vec::new()),
            loadgen: Duration::ZERO,
            proxy: Duration::ZERO,
            units: 0.0,
        }
    }

    /// Takes one sample if there is a reference proxy: `sample` runs against the frontend
    /// `frontend` picks and gives (value, units).
    async fn take<F, Fut>(
        &mut self,
        ctx: &Ctx,
        frontend: fn(&crate::haproxy::Haproxy) -> SocketAddr,
        sample: F,
    ) where
        F: FnOnce(SocketAddr) -> Fut,
        Fut: std::future::Future<Output = Res<(T, f64)>>,
    {
        let (Some(hp), Ok(values)) = (&ctx.haproxy, self.values.as_mut()) else {
            return;
        };
        let (proxy0, loadgen0) = (cpu::process(hp.pid()), cpu::split().loadgen);
        match sample(frontend(hp)).await {
            Ok((value, units)) => {
                values.push(value);
                self.loadgen += cpu::split().loadgen.saturating_sub(loadgen0);
                self.proxy += cpu::process(hp.pid()).saturating_sub(proxy0);
                self.units += units;
            }
            Err(e) => self.values = Err(e),
        }
    }

    /// The "    CPU {what}: load generator / HAProxy" row, each side formatted by `per`;
    /// `None` without a reference or after a failed sample.
    fn cpu_row(&self, ctx: &Ctx, what: &str, per: impl Fn(Duration, f64) -> String) -> Option<Row> {
        let hp = ctx.haproxy.as_ref()?;
        self.values.as_ref().ok()?;
        Some(Row::info(
            &format!("    CPU {what}: load generator / {}", hp.label),
            "-".into(),
            format!(
                "{} / {}",
                per(self.loadgen, self.units),
                per(self.proxy, self.units)
            ),
        ))
    }
}

impl ReferenceSamples<f64> {
    /// The median of the samples, if there are any and none failed.
    fn median(&self) -> Option<f64> {
        match &self.values {
            Ok(v) if !v.is_empty() => Some(median(v.clone())),
            _ => None,
        }
    }

    /// The reference row under the toxi figure, then its CPU row ("    CPU {what}: load
    /// generator / HAProxy", each side formatted by `per`); nothing without a reference.
    fn rows(
        self,
        ctx: &Ctx,
        direct: f64,
        toxi: f64,
        fmt: impl Fn(f64) -> String,
        what: &str,
        per: impl Fn(Duration, f64) -> String,
    ) -> Vec<Row> {
        if ctx.haproxy.is_none() {
            return Vec::new();
        }
        let cpu = self.cpu_row(ctx, what, per);
        let mut rows = vec![reference_row(
            ctx,
            direct,
            toxi,
            self.values.map(median),
            fmt,
        )];
        rows.extend(cpu);
        rows
    }
}

fn mbps(v: f64) -> String {
    format!("{:.0} MB/s", v / MB)
}

pub async fn bulk(ctx: &Ctx) -> Res<Vec<Row>> {
    let proxied = ctx.proxy("bench_sink", ctx.up.sink).await?;
    let noop = ctx.proxy("bench_sink_noop", ctx.up.sink).await?;
    ctx.add_toxic(
        "bench_sink_noop",
        "noop",
        Direction::Upstream,
        toxi::toxics::kind("noop"),
    )?;
    let dur = ctx.p.sample;
    // Three-way rotation: direct, toxi, toxi with a noop toxic (the toxic path). CPU time
    // of each side is summed over the direct and the toxi samples.
    let (mut d, mut t, mut n) = (Vec::new(), Vec::new(), Vec::new());
    let (mut d_cpu, mut t_cpu) = (cpu::Split::ZERO, cpu::Split::ZERO);
    let (mut d_bytes, mut t_bytes) = (0f64, 0f64);
    let mut h = ReferenceSamples::new();
    for _ in 0..ctx.p.rounds {
        let c0 = cpu::split();
        let (bytes, elapsed) = load::bulk_stream(ctx.up.sink, dur, None)
            .await
            .map_err(|e| format!("direct: {e}"))?;
        let c1 = cpu::split();
        d.push(bytes as f64 / elapsed.as_secs_f64());
        let (bytes2, elapsed2) = load::bulk_stream(proxied, dur, None)
            .await
            .map_err(|e| format!("toxi: {e}"))?;
        let c2 = cpu::split();
        t.push(bytes2 as f64 / elapsed2.as_secs_f64());
        n.push(
            load::bulk(noop, dur)
                .await
                .map_err(|e| format!("toxi+noop: {e}"))?,
        );
        h.take(
            ctx,
            |hp| hp.sink,
            |addr| async move {
                let (bytes, elapsed) = load::bulk_stream(addr, dur, None).await?;
                Ok((bytes as f64 / elapsed.as_secs_f64(), bytes as f64))
            },
        )
        .await;
        d_cpu = d_cpu + (c1 - c0);
        t_cpu = t_cpu + (c2 - c1);
        d_bytes += bytes as f64;
        t_bytes += bytes2 as f64;
    }
    let (d, t, n) = (median(d), median(t), median(n));
    let per_gb = |cpu: Duration, bytes: f64| cpu.as_secs_f64() / (bytes / 1e9);
    let mut rows = vec![
        Row::ratio(
            "bulk throughput, 1 stream",
            mbps(d),
            mbps(t),
            t / d,
            Target::RatioAtLeast(0.6),
        ),
        Row::info(
            "  CPU s per GB: load generator / proxy",
            format!("{:.2} / -", per_gb(d_cpu.loadgen, d_bytes)),
            format!(
                "{:.2} / {:.2}",
                per_gb(t_cpu.loadgen, t_bytes),
                per_gb(t_cpu.proxy, t_bytes)
            ),
        ),
        Row::ratio(
            "  same, noop toxic (toxic path)",
            mbps(d),
            mbps(n),
            n / d,
            Target::None,
        ),
    ];
    rows.extend(h.rows(ctx, d, t, mbps, "s per GB", |cpu, bytes| {
        format!("{:.2}", per_gb(cpu, bytes))
    }));
    Ok(rows)
}

pub async fn bulk8(ctx: &Ctx) -> Res<Vec<Row>> {
    let proxied = ctx.proxy("bench_sink8", ctx.up.sink).await?;
    let dur = ctx.p.sample;
    let reference = ctx.haproxy.as_ref().map(|h| h.sink);
    let (d, t, h) = alternate_with(ctx.p.rounds, ctx.up.sink, proxied, reference, |a| {
        load::bulk_parallel(a, 8, dur)
    })
    .await?;
    let (d, t) = (median(d), median(t));
    let mut rows = vec![Row::ratio(
        "bulk throughput, 8 streams",
        mbps(d),
        mbps(t),
        t / d,
        Target::None,
    )];
    if let Some(h) = h {
        rows.push(reference_row(ctx, d, t, h.map(median), mbps));
    }
    Ok(rows)
}

pub async fn rtt(ctx: &Ctx) -> Res<Vec<Row>> {
    let proxied = ctx.proxy("bench_echo", ctx.up.echo).await?;
    let iters = ctx.p.rtt_iters;
    // Round trips per sample, warm-up included: the CPU time covers them all.
    let per_sample = (iters + load::RTT_WARMUP) as f64;
    let (mut d, mut t) = (Vec::new(), Vec::new());
    let (mut d_cpu, mut t_cpu) = (cpu::Split::ZERO, cpu::Split::ZERO);
    let mut h = ReferenceSamples::<Vec<u64>>::new();
    for _ in 0..ctx.p.rounds {
        let c0 = cpu::split();
        d.push(
            load::rtt(ctx.up.echo, iters)
                .await
                .map_err(|e| format!("direct: {e}"))?,
        );
        let c1 = cpu::split();
        t.push(
            load::rtt(proxied, iters)
                .await
                .map_err(|e| format!("toxi: {e}"))?,
        );
        let c2 = cpu::split();
        d_cpu = d_cpu + (c1 - c0);
        t_cpu = t_cpu + (c2 - c1);
        h.take(
            ctx,
            |hp| hp.echo,
            |addr| async move { Ok((load::rtt(addr, iters).await?, per_sample)) },
        )
        .await;
    }
    let units = per_sample * ctx.p.rounds as f64;
    let us_per = |cpu: Duration, n: f64| format!("{:.1}", cpu.as_secs_f64() * 1e6 / n.max(1.0));
    // The median over rounds of each round's quantile `p`, in µs.
    let q =
        |v: &[Vec<u64>], p: f64| median(v.iter().map(|s| quantile(s, p) as f64 / 1e3).collect());
    let levels = [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)];
    let dq = levels.map(|(_, p)| q(&d, p));
    let tq = levels.map(|(_, p)| q(&t, p));
    let mut rows = Vec::new();
    for (i, (name, _)) in levels.iter().enumerate() {
        let (dv, tv) = (dq[i], tq[i]);
        let (limit, target) = if i == 0 {
            (Some(15.0), "added < 15 µs")
        } else {
            (None, "-")
        };
        rows.push(Row::added(
            &format!("round trip 1-64 B, {name}"),
            format!("{dv:.1} µs"),
            format!("{tv:.1} µs (+{:.1})", tv - dv),
            tv / dv,
            tv - dv,
            limit,
            target,
        ));
    }
    rows.push(Row::info(
        "  CPU µs per round trip: load generator / proxy",
        format!("{} / -", us_per(d_cpu.loadgen, units)),
        format!(
            "{} / {}",
            us_per(t_cpu.loadgen, units),
            us_per(t_cpu.proxy, units)
        ),
    ));
    let Some(hp) = &ctx.haproxy else {
        return Ok(rows);
    };
    let label = hp.label.as_str();
    let figure = format!("  {label} (TCP mode), p50 / p99 / p99.9");
    let cpu_row = h.cpu_row(ctx, "µs per round trip", us_per);
    match &h.values {
        Ok(hv) => {
            let hq = levels.map(|(_, p)| q(hv, p));
            let cells: Vec<String> = (0..3)
                .map(|i| format!("{:.1} (+{:.1})", hq[i], hq[i] - dq[i]))
                .collect();
            rows.push(Row::info(
                &figure,
                format!("{:.1} / {:.1} / {:.1} µs", dq[0], dq[1], dq[2]),
                format!("{} µs", cells.join(" / ")),
            ));
            // Added latency, toxi against HAProxy: toxi should add no more at p50 and p99.
            for (i, (name, _)) in levels.iter().enumerate() {
                let (ta, ha) = (tq[i] - dq[i], hq[i] - dq[i]);
                let target = if i < 2 {
                    format!("toxi ≤ {label}")
                } else {
                    "-".into()
                };
                rows.push(Row::value(
                    &format!("    added {name}: toxi / {label}"),
                    "-".into(),
                    format!("{ta:.1} / {ha:.1} µs"),
                    format!("{:+.1} µs", ta - ha),
                    ta <= ha,
                    &target,
                ));
            }
            rows.extend(cpu_row);
        }
        Err(e) => rows.push(Row::error(&figure, e.clone()).without_target()),
    }
    Ok(rows)
}

/// Keep-alive connections of the 11-byte request/response figure, as `wrk -c10`.
const RR11_CONNS: usize = 10;

/// HTTP/1.1 keep-alive request/response rate with 11-byte responses (`hello world`) over
/// [`RR11_CONNS`] connections in closed loops, through a `tcp` proxy: the small-message
/// rate a web sidecar sees. Target: at least HAProxy's rate in the same run.
pub async fn rr11(ctx: &Ctx) -> Res<Vec<Row>> {
    let proxied = ctx.proxy("bench_hello", ctx.up.hello).await?;
    let dur = ctx.p.sample;
    let (mut d, mut t) = (Vec::new(), Vec::new());
    let (mut d_cpu, mut t_cpu) = (cpu::Split::ZERO, cpu::Split::ZERO);
    let (mut d_n, mut t_n) = (0u64, 0u64);
    let mut h = ReferenceSamples::new();
    for _ in 0..ctx.p.rounds {
        let c0 = cpu::split();
        let (rate, n) = load::hello_rate(ctx.up.hello, RR11_CONNS, dur)
            .await
            .map_err(|e| format!("direct: {e}"))?;
        let c1 = cpu::split();
        d.push(rate);
        d_n += n;
        let (rate, n) = load::hello_rate(proxied, RR11_CONNS, dur)
            .await
            .map_err(|e| format!("toxi: {e}"))?;
        let c2 = cpu::split();
        t.push(rate);
        t_n += n;
        d_cpu = d_cpu + (c1 - c0);
        t_cpu = t_cpu + (c2 - c1);
        h.take(
            ctx,
            |hp| hp.hello,
            |addr| async move {
                let (rate, n) = load::hello_rate(addr, RR11_CONNS, dur).await?;
                Ok((rate, n as f64))
            },
        )
        .await;
    }
    let (d, t) = (median(d), median(t));
    let us_per = |cpu: Duration, n: f64| format!("{:.1}", cpu.as_secs_f64() * 1e6 / n.max(1.0));
    let reqs = |v: f64| format!("{v:.0} req/s");
    let (ok, target) = match (&ctx.haproxy, h.median()) {
        (Some(hp), Some(hr)) => (t / hr >= 1.0, format!("≥ 1.0× {}", hp.label)),
        _ => (true, "-".to_string()),
    };
    let mut rows = vec![
        Row::value(
            &format!("HTTP keep-alive 11 B responses, {RR11_CONNS} conns"),
            reqs(d),
            reqs(t),
            format!("{:.2}×", t / d),
            ok,
            &target,
        ),
        Row::info(
            "  CPU µs per request: load generator / proxy",
            format!("{} / -", us_per(d_cpu.loadgen, d_n as f64)),
            format!(
                "{} / {}",
                us_per(t_cpu.loadgen, t_n as f64),
                us_per(t_cpu.proxy, t_n as f64)
            ),
        ),
    ];
    rows.extend(h.rows(ctx, d, t, reqs, "µs per request", us_per));
    Ok(rows)
}

pub async fn rr64k(ctx: &Ctx) -> Res<Vec<Row>> {
    let proxied = ctx.proxy("bench_echo64", ctx.up.echo).await?;
    let dur = ctx.p.sample;
    let reference = ctx.haproxy.as_ref().map(|h| h.echo);
    let (d, t, h) = alternate_with(ctx.p.rounds, ctx.up.echo, proxied, reference, |a| {
        load::rr64k(a, dur)
    })
    .await?;
    let (d, t) = (median(d), median(t));
    let mut rows = vec![Row::ratio(
        "64 KiB request/response rate",
        format!("{d:.0} /s"),
        format!("{t:.0} /s"),
        t / d,
        Target::None,
    )];
    if let Some(h) = h {
        rows.push(reference_row(ctx, d, t, h.map(median), |v| {
            format!("{v:.0} /s")
        }));
    }
    Ok(rows)
}

/// Keep-alive connections of the HTTP request-rate figure.
const HTTP_CONNS: usize = 10;

/// HTTP/1.1 request rates over keep-alive connections: direct, through a `tcp` proxy and
/// through an `http` proxy without toxics, for 11-byte and 64 KiB responses.
pub async fn http(ctx: &Ctx) -> Res<Vec<Row>> {
    let tcp = ctx
        .proxy_as("bench_http_tcp", ctx.up.http, Protocol::Tcp)
        .await?;
    let web = ctx
        .proxy_as("bench_http", ctx.up.http, Protocol::Http)
        .await?;
    let dur = ctx.p.sample;
    let mut rows = Vec::new();
    for (label, path, len) in [("11 B", "/", 11), ("64 KiB", "/64k", 64 * 1024)] {
        let (d, t, h) = alternate_with(ctx.p.rounds, ctx.up.http, tcp, Some(web), |a| {
            load::http_rate(a, path, len, HTTP_CONNS, dur)
        })
        .await?;
        let h = h
            .expect("a third column")
            .map_err(|e| format!("http proxy: {e}"))?;
        let (d, t, h) = (median(d), median(t), median(h));
        rows.push(Row::ratio(
            &format!("HTTP {label} responses, {HTTP_CONNS} keep-alive conns, tcp proxy"),
            format!("{d:.0} req/s"),
            format!("{t:.0} req/s"),
            t / d,
            Target::None,
        ));
        let small = len < 1024;
        rows.push(Row::value(
            &format!("HTTP {label} responses, {HTTP_CONNS} keep-alive conns, http proxy"),
            format!("{d:.0} req/s"),
            format!("{h:.0} req/s"),
            format!("{:.2}× ({:.2}× tcp)", h / d, h / t),
            h / t >= 0.8,
            if small { "≥ 0.8× tcp proxy" } else { "-" },
        ));
    }
    Ok(rows)
}

/// A 1 GiB response and a 1 GiB request body through an `http` proxy: this process's
/// RSS (proxy and load generator together) must stay flat while they stream.
pub async fn http1g(ctx: &Ctx) -> Res<Vec<Row>> {
    let web = ctx
        .proxy_as("bench_http_1g", ctx.up.http, Protocol::Http)
        .await?;
    let rss = || crate::memory::vm_rss_kib(std::process::id()).unwrap_or(0);
    let len = crate::upstream::HUGE_LEN;
    let mut rows = Vec::new();
    for (what, upload) in [("download", false), ("upload", true)] {
        let before = rss();
        let (secs, peak) = if upload {
            load::http_huge_upload(web, len, rss).await?
        } else {
            load::http_huge_download(web, len, rss).await?
        };
        let growth = peak.saturating_sub(before) as f64 / 1024.0;
        rows.push(Row::value(
            &format!("1 GiB HTTP {what} through an http proxy: RSS growth"),
            "-".into(),
            format!("{growth:.1} MiB ({:.0} MiB/s)", len as f64 / MIB / secs),
            "-".into(),
            growth < 64.0,
            "< 64 MiB",
        ));
    }
    Ok(rows)
}

pub async fn connrate(ctx: &Ctx) -> Res<Vec<Row>> {
    let proxied = ctx.proxy("bench_oneshot", ctx.up.oneshot).await?;
    // The same upstream given by name: the proxy resolves it for every connection.
    let by_name = {
        let reg = ctx.registry.clone();
        let input = ProxyInput {
            protocol: Default::default(),
            name: "bench_oneshot_localhost".into(),
            listen: "127.0.0.1:0".into(),
            upstream: format!("localhost:{}", ctx.up.oneshot.port()),
            enabled: true,
        };
        let snap = ctx
            .proxy_rt
            .spawn(async move { reg.create(input).await })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        snap.listen
            .parse::<SocketAddr>()
            .map_err(|e| e.to_string())?
    };
    let dur = ctx.p.sample;
    let (mut d, mut t, mut l) = (Vec::new(), Vec::new(), Vec::new());
    let (mut d_cpu, mut t_cpu) = (cpu::Split::ZERO, cpu::Split::ZERO);
    let (mut d_n, mut t_n) = (0u64, 0u64);
    let mut h = ReferenceSamples::new();
    for _ in 0..ctx.p.rounds {
        let c0 = cpu::split();
        let (rate, n) = load::conn_rate(ctx.up.oneshot, dur, 4)
            .await
            .map_err(|e| format!("direct: {e}"))?;
        let c1 = cpu::split();
        d.push(rate);
        d_n += n;
        d_cpu = d_cpu + (c1 - c0);
        let (rate, n) = load::conn_rate(proxied, dur, 4)
            .await
            .map_err(|e| format!("toxi: {e}"))?;
        let c2 = cpu::split();
        t.push(rate);
        t_n += n;
        t_cpu = t_cpu + (c2 - c1);
        l.push(
            load::conn_rate(by_name, dur, 4)
                .await
                .map_err(|e| format!("toxi (localhost): {e}"))?
                .0,
        );
        h.take(
            ctx,
            |hp| hp.oneshot,
            |addr| async move {
                let (rate, n) = load::conn_rate(addr, dur, 4).await?;
                Ok((rate, n as f64))
            },
        )
        .await;
    }
    // One connection at a time: latency-bound rather than CPU-bound.
    let (d1, t1) = alternate(ctx.p.rounds, ctx.up.oneshot, proxied, |a| async move {
        Ok(load::conn_rate(a, dur, 1).await?.0)
    })
    .await?;
    let (d1, t1) = (median(d1), median(t1));
    let (d, t, l) = (median(d), median(t), median(l));
    let us_per = |cpu: Duration, n: u64| cpu.as_secs_f64() * 1e6 / n.max(1) as f64;
    let mut rows = vec![
        Row::ratio(
            "new connections (1 exchange each)",
            format!("{d:.0} /s"),
            format!("{t:.0} /s"),
            t / d,
            Target::RatioAtLeast(0.7),
        ),
        Row::info(
            "  CPU µs per connection: load generator / proxy",
            format!("{:.1} / -", us_per(d_cpu.loadgen, d_n)),
            format!(
                "{:.1} / {:.1}",
                us_per(t_cpu.loadgen, t_n),
                us_per(t_cpu.proxy, t_n)
            ),
        ),
        Row::ratio(
            "  same, one connection at a time",
            format!("{d1:.0} /s"),
            format!("{t1:.0} /s"),
            t1 / d1,
            Target::None,
        ),
        Row::ratio(
            "  same, upstream given as localhost:PORT",
            format!("{d:.0} /s"),
            format!("{l:.0} /s"),
            l / d,
            Target::None,
        ),
    ];
    rows.extend(h.rows(
        ctx,
        d,
        t,
        |v| format!("{v:.0} /s"),
        "µs per connection",
        |cpu, n| format!("{:.1}", us_per(cpu, n as u64)),
    ));
    Ok(rows)
}

pub async fn memory(ctx: &Ctx) -> Res<Vec<Row>> {
    let n = ctx.p.idle_conns;
    let mut rows = Vec::new();
    // Primary figure: RSS growth of a toxi-server subprocess.
    match crate::memory::rss_per_idle_connection(ctx.up.echo_small, n).await {
        Ok(r) => rows.push(Row::value(
            &format!("RSS per idle connection ({n}, subprocess)"),
            "-".into(),
            format!("{:.2} KiB", r.per_conn_kib),
            format!("(base {} MiB)", r.baseline_kib / 1024),
            r.per_conn_kib <= 16.0,
            "≤ 16 KiB",
        )),
        Err(e) => rows.push(Row::error(&format!("RSS per idle connection ({n})"), e)),
    }
    if let Some(hp) = &ctx.haproxy {
        let figure = format!("  {} (TCP mode), same measure", hp.label);
        rows.push(
            match crate::memory::rss_growth(hp.pid(), hp.echo_small, n).await {
                Ok(r) => Row::info(&figure, "-".into(), format!("{:.2} KiB", r.per_conn_kib)),
                Err(e) => Row::error(&figure, e).without_target(),
            },
        );
    }
    // Cross-check: heap bytes held in this process (counting allocator), proxied minus direct.
    // Here each proxied connection costs four descriptors in this process: stay well inside
    // the open-files limit.
    let n = n.min((ctx.nofile.saturating_sub(2000) / 4) as usize).max(1);
    let proxied = ctx.proxy("bench_idle", ctx.up.echo_small).await?;
    let per = |addr| async move {
        let before = crate::alloc::snapshot().live_bytes;
        let conns = load::open_idle(addr, n).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = crate::alloc::snapshot().live_bytes;
        drop(conns);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<f64, String>((after - before) as f64 / n as f64 / 1024.0)
    };
    let d = per(ctx.up.echo_small).await?;
    let t = per(proxied).await?;
    rows.push(Row::value(
        &format!("heap per idle connection ({n}, in-process)"),
        format!("{d:.2} KiB"),
        format!("+{:.2} KiB", t - d),
        "-".into(),
        t - d <= 16.0,
        "≤ 16 KiB",
    ));
    Ok(rows)
}

/// RSS with many streams into a 60 s latency toxic, bounded in time: the per-link byte
/// budget keeps held data near `streams × budget` however long the senders push.
pub async fn held(ctx: &Ctx) -> Res<Vec<Row>> {
    let (n, secs) = if ctx.p.quick { (100, 1.0) } else { (1000, 3.0) };
    let budget = crate::memory::HELD_BUDGET;
    let r = crate::memory::rss_held_by_latency(ctx.up.echo_small, n, secs).await?;
    let bound_kib = (n * budget / 1024) as u64 + 64 * 1024;
    Ok(vec![Row::value(
        &format!(
            "RSS, {n} streams into 60 s latency for {secs} s (budget {} KiB)",
            budget / 1024
        ),
        "-".into(),
        format!("+{} MiB", r.growth_kib / 1024),
        format!(
            "(base {} MiB; clients wrote {} MiB)",
            r.baseline_kib / 1024,
            r.written >> 20
        ),
        r.growth_kib <= bound_kib,
        &format!("≤ {} MiB", bound_kib / 1024),
    )])
}

pub async fn allocs(ctx: &Ctx) -> Res<Vec<Row>> {
    let proxied = ctx.proxy("bench_alloc", ctx.up.sink).await?;
    let noop = ctx.proxy("bench_alloc_noop", ctx.up.sink).await?;
    ctx.add_toxic(
        "bench_alloc_noop",
        "noop",
        Direction::Upstream,
        toxi::toxics::kind("noop"),
    )?;
    let dur = ctx.p.sample * 2;
    let per_mib = |(bytes, allocs): (u64, u64)| allocs as f64 / (bytes as f64 / MIB);
    let (d_bytes, _, d_other) = load::bulk_allocs(ctx.up.sink, dur).await?;
    let (t_bytes, t_proxy, _) = load::bulk_allocs(proxied, dur).await?;
    let (n_bytes, n_proxy, _) = load::bulk_allocs(noop, dur).await?;
    let d = per_mib((d_bytes, d_other));
    let t = per_mib((t_bytes, t_proxy));
    let n = per_mib((n_bytes, n_proxy));
    Ok(vec![
        Row::value(
            "allocations per MiB streamed (no toxic)",
            format!("{d:.3}"),
            format!("{t:.3}"),
            "-".into(),
            t < 0.1,
            "≈ 0 (< 0.1)",
        ),
        Row::info(
            "allocations per MiB, noop toxic (toxic path)",
            "-".into(),
            format!("{n:.1}"),
        ),
    ])
}

pub async fn lat100(ctx: &Ctx) -> Res<Vec<Row>> {
    let proxied = ctx.proxy("bench_lat100", ctx.up.source).await?;
    ctx.add_toxic(
        "bench_lat100",
        "latency_downstream",
        Direction::Downstream,
        toxi::toxics::kind("latency")
            .with("latency", 100)
            .with("jitter", 0),
    )?;
    let warm = Duration::from_millis(if ctx.p.quick { 250 } else { 400 });
    let window = ctx.p.sample;
    let rounds = ctx.p.rounds.min(3);
    let (d, t) = alternate(rounds, ctx.up.source, proxied, |a| {
        load::drain_rate(a, warm, window)
    })
    .await?;
    let (d, t) = (median(d), median(t));
    // A link holds at most its byte budget (`-toxic-buffer-bytes`), so a stream through a
    // 100 ms latency moves at most budget / 100 ms, as a TCP window caps a long path.
    let cap = toxi::proxy::TOXIC_BUFFER_BYTES as f64 / 0.1;
    Ok(vec![Row::value(
        "throughput, 100 ms latency toxic",
        format!("{} (none)", mbps(d)),
        mbps(t),
        format!("{:.2}×", t / d),
        t >= 0.8 * cap,
        &format!("≥ 0.8 × budget / latency ({})", mbps(cap)),
    )])
}

pub async fn latency(ctx: &Ctx) -> Res<Vec<Row>> {
    const SET_MS: f64 = 50.0;
    const TARGET_MS: f64 = 1.0;
    let proxied = ctx.proxy("bench_latency", ctx.up.echo).await?;
    ctx.add_toxic(
        "bench_latency",
        "latency_upstream",
        Direction::Upstream,
        toxi::toxics::kind("latency")
            .with("latency", 50)
            .with("jitter", 0),
    )?;
    // Sequential pings over one connection each, direct and proxied alternately.
    let pings = ctx.p.lat_pings;
    let mut dc = load::connect(ctx.up.echo).await?;
    let mut tc = load::connect(proxied).await?;
    load::ping(&mut dc).await?;
    load::ping(&mut tc).await?;
    let mut d = Vec::new();
    let mut t = Vec::new();
    for _ in 0..pings {
        d.push(load::ping(&mut dc).await?.as_secs_f64() * 1e3);
        t.push(load::ping(&mut tc).await?.as_secs_f64() * 1e3);
    }
    let d_med = median(d.clone());
    let added: Vec<f64> = t.iter().map(|x| x - d_med).collect();
    let added_med = median(added.clone());
    let mut rows = vec![Row::value(
        "latency toxic 50 ms: added RTT p50",
        format!("{:.3} ms RTT", d_med),
        format!("{added_med:.2} ms"),
        format!("{:.3}×", added_med / SET_MS),
        (added_med - SET_MS).abs() <= 2.0,
        "50 ± 2 ms",
    )];

    // The error of each message, as a harness with kernel receive timestamps sees it:
    // arrival (SO_TIMESTAMPNS) - send - configured latency. Each case has a proxy of its
    // own; "sink" cases arrive at a listener of this bench, "echo" cases come back through
    // toxi's downstream to the client.
    let spaced = if ctx.p.quick { 50 } else { 200 };
    let burst = ctx.p.burst_msgs * 5;
    let gap = Duration::from_millis(20);
    let up = |ms: i64| (Direction::Upstream, ms);
    let down = |ms: i64| (Direction::Downstream, ms);
    let cases = [
        (
            "bench_latency_spaced",
            "50 ms",
            vec![up(50)],
            false,
            spaced,
            gap,
        ),
        (
            "bench_latency_burst",
            "50 ms",
            vec![up(50)],
            false,
            burst,
            Duration::ZERO,
        ),
        (
            "bench_latency_stacked",
            "20 + 30 ms, one direction",
            vec![up(20), up(30)],
            false,
            spaced,
            gap,
        ),
        (
            "bench_latency_both",
            "25 ms up + 25 ms down (echo)",
            vec![up(25), down(25)],
            true,
            spaced,
            gap,
        ),
    ];
    let mut worst_all = 0.0f64;
    for (name, what, toxics, echo, n, gap) in cases {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let upstream = if echo {
            ctx.up.echo
        } else {
            listener.local_addr().map_err(|e| e.to_string())?
        };
        let addr = ctx.proxy(name, upstream).await?;
        let mut total = 0.0;
        for (i, (dir, ms)) in toxics.iter().enumerate() {
            total += *ms as f64;
            ctx.add_toxic(
                name,
                &format!("latency_{i}"),
                *dir,
                toxi::toxics::kind("latency")
                    .with("latency", *ms)
                    .with("jitter", 0),
            )?;
        }
        let sink = (!echo).then_some(listener);
        let delays = tokio::task::spawn_blocking(move || kernel_timed(addr, sink, n, gap))
            .await
            .map_err(|e| e.to_string())??;
        let errors: Vec<f64> = delays.iter().map(|d| d - total).collect();
        let worst = errors.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        let min = errors.iter().copied().fold(f64::MAX, f64::min);
        let p50 = median(errors.clone());
        worst_all = worst_all.max(worst);
        let how = if gap.is_zero() {
            format!("{n} pipelined writes")
        } else {
            format!("{n} msgs {} ms apart", gap.as_millis())
        };
        rows.push(Row::value(
            &format!("latency toxic {what}: {how}, error"),
            "kernel rx timestamps".into(),
            format!("p50 {p50:.3}, max {worst:.3} ms"),
            format!("min {min:+.3} ms"),
            // Never early (within the realtime clock's reading noise), never 1 ms late.
            worst <= TARGET_MS && min >= -0.05,
            "max error ≤ 1 ms",
        ));
    }
    // Pipelined writes 2 ms apart, timed by this process: no accumulation means every
    // message is delayed by ~50 ms.
    let n = ctx.p.burst_msgs;
    let bd = load::burst(ctx.up.echo, n, Duration::from_millis(2)).await?;
    let bt = load::burst(proxied, n, Duration::from_millis(2)).await?;
    let ms = |v: &[Duration]| v.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>();
    let (bd, bt) = (ms(&bd), ms(&bt));
    let bd_max = bd.iter().copied().fold(0.0f64, f64::max);
    let bt_min = bt.iter().copied().fold(f64::MAX, f64::min);
    let bt_max = bt.iter().copied().fold(0.0f64, f64::max);
    rows.push(Row::value(
        &format!("latency toxic 50 ms: {n} pipelined writes 2 ms apart (echo)"),
        format!("max {bd_max:.2} ms"),
        format!("{bt_min:.2}..{bt_max:.2} ms"),
        "-".into(),
        bt_min >= SET_MS && bt_max <= SET_MS + 10.0,
        "all in 50..60 ms",
    ));
    // The machine's own floor: how late a plain thread sleep wakes on this machine, with
    // no proxy at all. A VM that now and then runs a vCPU late makes every timed wait
    // late by as much, toxi's included. Two threads sleep to the same deadlines: the
    // earlier of the two is what a timer armed redundantly on both CPUs would get.
    let sleeps = if ctx.p.quick { 200 } else { 1000 };
    let (one, earlier) =
        tokio::task::spawn_blocking(move || sleep_lateness(sleeps, Duration::from_millis(5)))
            .await
            .map_err(|e| e.to_string())?;
    for (what, floor) in [
        (
            format!("machine floor: {sleeps} thread sleeps to deadlines 5 ms apart, lateness"),
            one,
        ),
        (
            "  same deadlines, the earlier of two threads".to_string(),
            earlier,
        ),
    ] {
        let over = floor.iter().filter(|l| **l > TARGET_MS).count();
        rows.push(Row::value(
            &what,
            "no proxy".into(),
            format!(
                "p50 {:.3}, p99.9 {:.3}, max {:.3} ms",
                floor[floor.len() / 2],
                floor[floor.len() * 999 / 1000],
                floor[floor.len() - 1]
            ),
            format!("{over} over 1 ms"),
            true,
            "-",
        ));
    }
    rows.insert(
        1,
        Row::value(
            "latency toxic 50 ms: worst error",
            "-".into(),
            format!("{worst_all:.3} ms"),
            "-".into(),
            worst_all <= TARGET_MS,
            "≤ 1 ms",
        ),
    );
    Ok(rows)
}

/// Two threads each sleep until the same `n` deadlines, `each` apart. Returns, in ms and
/// sorted, how late the first thread woke for each deadline, and how late the earlier of
/// the two woke.
fn sleep_lateness(n: usize, each: Duration) -> (Vec<f64>, Vec<f64>) {
    let start = Instant::now();
    let run = move || -> Vec<f64> {
        (1..=n as u32)
            .map(|i| {
                let deadline = start + each * i;
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                Instant::now()
                    .saturating_duration_since(deadline)
                    .as_secs_f64()
                    * 1e3
            })
            .collect()
    };
    let other = std::thread::spawn(run);
    let mut one = run();
    let two = other.join().unwrap_or_else(|_| one.clone());
    let mut earlier: Vec<f64> = one.iter().zip(&two).map(|(a, b)| a.min(*b)).collect();
    one.sort_by(f64::total_cmp);
    earlier.sort_by(f64::total_cmp);
    (one, earlier)
}

/// Sends `n` 16-byte messages (numbered) to `proxy`, one every `gap` (back to back when
/// zero), and returns each one's delay in ms from just before its `write` to its arrival
/// as the kernel stamped it (`SO_TIMESTAMPNS`, realtime clock): at the first connection
/// accepted on `sink`, or back on the client socket when `sink` is `None` (an echo
/// upstream). Blocking; run it off the runtime.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn kernel_timed(
    proxy: SocketAddr,
    sink: Option<std::net::TcpListener>,
    n: usize,
    gap: Duration,
) -> Res<Vec<f64>> {
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;
    use std::time::SystemTime;
    let err = |e: std::io::Error| e.to_string();
    let client = std::net::TcpStream::connect(proxy).map_err(err)?;
    client.set_nodelay(true).map_err(err)?;
    let rx = match sink {
        Some(l) => {
            l.set_nonblocking(true).map_err(err)?;
            let t0 = Instant::now();
            loop {
                match l.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if t0.elapsed() > Duration::from_secs(10) {
                            return Err("the proxy never connected upstream".into());
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        None => client.try_clone().map_err(err)?,
    };
    rx.set_nonblocking(false).map_err(err)?;
    rx.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and option value.
    let rc = unsafe {
        libc::setsockopt(
            rx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!(
            "SO_TIMESTAMPNS: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut w = client.try_clone().map_err(err)?;
    let sender = std::thread::spawn(move || {
        let base = Instant::now();
        let mut sent = Vec::with_capacity(n);
        for i in 0..n {
            let mut msg = [0u8; 16];
            msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
            sent.push(SystemTime::now());
            w.write_all(&msg)?;
            let next = base + gap * (i as u32 + 1);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        Ok::<_, std::io::Error>(sent)
    });
    let mut arrived = Vec::with_capacity(n);
    for i in 0..n {
        let mut msg = [0u8; 16];
        let mut got = 0;
        let mut at = None;
        while got < msg.len() {
            let (k, ts) = recv_stamped(rx.as_raw_fd(), &mut msg[got..]).map_err(err)?;
            if k == 0 {
                return Err(format!("closed after {i} of {n} messages"));
            }
            got += k;
            at = ts.or(at);
        }
        if u64::from_le_bytes(msg[..8].try_into().expect("8 bytes")) != i as u64 {
            return Err(format!("message {i} out of order"));
        }
        arrived.push(at.ok_or("no kernel timestamp")?);
    }
    let sent = sender
        .join()
        .map_err(|_| "sender panicked".to_string())?
        .map_err(err)?;
    drop(client);
    Ok(sent
        .iter()
        .zip(&arrived)
        .map(|(s, a)| match a.duration_since(*s) {
            Ok(d) => d.as_secs_f64() * 1e3,
            Err(e) => -e.duration().as_secs_f64() * 1e3,
        })
        .collect())
}

/// Elsewhere than Linux the figure reports that it cannot run.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn kernel_timed(
    _proxy: SocketAddr,
    _sink: Option<std::net::TcpListener>,
    _n: usize,
    _gap: Duration,
) -> Res<Vec<f64>> {
    Err("kernel receive timestamps (SO_TIMESTAMPNS) need Linux".into())
}

/// One `recvmsg` into `buf`; returns the bytes read and the kernel's receive timestamp.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn recv_stamped(
    fd: i32,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<std::time::SystemTime>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` describes valid buffers.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut ts = None;
    // SAFETY: walks the control messages the kernel wrote into `control`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                ts = Some(std::time::UNIX_EPOCH + Duration::new(t.tv_sec as u64, t.tv_nsec as u32));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, ts))
}

pub async fn bandwidth(ctx: &Ctx) -> Res<Vec<Row>> {
    let proxied = ctx.proxy("bench_bandwidth", ctx.up.sink).await?;
    let mut rows = Vec::new();
    for (i, rate) in [1000i64, 10_000, 100_000, 500_000].into_iter().enumerate() {
        if i == 0 {
            ctx.add_toxic(
                "bench_bandwidth",
                "bandwidth_upstream",
                Direction::Upstream,
                toxi::toxics::kind("bandwidth").with("rate", rate),
            )?;
        } else {
            ctx.registry
                .update_toxic("bench_bandwidth", "bandwidth_upstream", |t| {
                    t.kind = toxi::toxics::kind("bandwidth").with("rate", rate);
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
        }
        let target = rate as f64 * 1000.0; // bytes/s (1 KB = 1000 bytes)
        let bytes = (target * ctx.p.bw_secs) as u64;
        let limit = Duration::from_secs_f64(ctx.p.bw_secs * 3.0 + 10.0);
        let got = load::paced_transfer(proxied, bytes, limit).await?;
        let ratio = got / target;
        rows.push(Row::value(
            &format!("bandwidth toxic {rate} KB/s ({} s)", ctx.p.bw_secs),
            format!("{rate} KB/s set"),
            format!("{:.0} KB/s", got / 1000.0),
            format!("{:.3}×", ratio),
            (0.98..=1.02).contains(&ratio),
            "± 2%",
        ));
    }
    Ok(rows)
}

/// Times one API request in ms; `ok` when it answered with one of `expect`.
async fn timed(
    client: &mut http::Client,
    method: &str,
    path: &str,
    body: Option<&str>,
    expect: &[u16],
) -> (f64, bool) {
    let t0 = Instant::now();
    let r = client.request(method, path, body).await;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    (ms, matches!(r, Ok(r) if expect.contains(&r.status)))
}

/// One churn operation over HTTP: POST a toxic, then DELETE it. A timed-out or failed
/// request still counts, with the time it took.
async fn churn_http(client: &mut http::Client, proxy: &str, i: usize) -> [(f64, bool); 2] {
    let attributes = match i % 3 {
        0 => r#""type":"latency","attributes":{"latency":1,"jitter":0}"#,
        1 => r#""type":"bandwidth","attributes":{"rate":100000}"#,
        _ => r#""type":"noop","attributes":{}"#,
    };
    let body = format!(r#"{{"name":"churn","stream":"upstream","toxicity":1.0,{attributes}}}"#);
    let post = timed(
        client,
        "POST",
        &format!("/proxies/{proxy}/toxics"),
        Some(&body),
        &[200],
    )
    .await;
    // 404 is fine when the POST failed.
    let delete = timed(
        client,
        "DELETE",
        &format!("/proxies/{proxy}/toxics/churn"),
        None,
        &[204, 200, 404],
    )
    .await;
    [post, delete]
}

/// The same churn through the registry directly (when the HTTP API is not available).
fn churn_registry(registry: &Registry, proxy: &str, i: usize) -> [(f64, bool); 2] {
    let kind = match i % 3 {
        0 => toxi::toxics::kind("latency")
            .with("latency", 1)
            .with("jitter", 0),
        1 => toxi::toxics::kind("bandwidth").with("rate", 100000),
        _ => toxi::toxics::kind("noop"),
    };
    let toxic = ToxicSnapshot {
        matcher: None,
        name: "churn".into(),
        stream: "upstream".into(),
        direction: Direction::Upstream,
        toxicity: 1.0,
        kind,
        schedule: None,
        clients: None,
    };
    let t0 = Instant::now();
    let added = registry.add_toxic(proxy, toxic).is_ok();
    let add = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let removed = registry.remove_toxic(proxy, "churn").is_ok();
    [(add, added), (t1.elapsed().as_secs_f64() * 1e3, removed)]
}

/// Request times of a churn run.
pub(crate) struct Churn {
    /// Every request's time in ms, sorted.
    pub times: Vec<f64>,
    pub failures: usize,
}

/// Adds and removes a toxic `ops` times (or until `limit`), 5 ms apart. Runs on a thread of its own (a current-thread runtime), so the load generator's
/// busy workers do not delay the API client and inflate its figures.
pub(crate) async fn churn(
    ctx: &Ctx,
    use_http: bool,
    proxy: &str,
    ops: usize,
    limit: Duration,
) -> Res<Churn> {
    let (api, registry, proxy) = (ctx.api, ctx.registry.clone(), proxy.to_string());
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("api-client".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("API client runtime");
            let result = rt.block_on(async {
                let mut client = http::Client::new(api, limit.min(Duration::from_secs(5)));
                let mut times = Vec::with_capacity(ops * 2);
                let mut failures = 0;
                let t0 = Instant::now();
                for i in 0..ops {
                    if t0.elapsed() > limit {
                        break;
                    }
                    let pair = if use_http {
                        churn_http(&mut client, &proxy, i).await
                    } else {
                        churn_registry(&registry, &proxy, i)
                    };
                    if verbose() {
                        eprintln!(
                            "churn op {i}: add {:.2} ms, remove {:.2} ms",
                            pair[0].0, pair[1].0
                        );
                    }
                    for (ms, ok) in pair {
                        times.push(ms);
                        failures += usize::from(!ok);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                times.sort_by(|a, b| a.total_cmp(b));
                Ok(Churn { times, failures })
            });
            let _ = tx.send(result);
        })
        .map_err(|e| e.to_string())?;
    rx.await
        .map_err(|_| "API client thread failed".to_string())?
}

/// Whether the HTTP API answers (`GET /version`).
pub async fn api_available(api: SocketAddr) -> bool {
    let mut c = http::Client::new(api, Duration::from_secs(1));
    matches!(c.request("GET", "/version", None).await, Ok(r) if r.status == 200)
}

/// How long a task spawned onto the proxy runtime waits before it runs: one probe every
/// 5 ms, `count` probes or until `limit`, from a thread of its own. Returns sorted delays in
/// ms (a probe still waiting after `limit` counts as `limit` and ends the run). The API's tasks
/// live on that runtime, so they queue the same way.
async fn spawn_delays(
    handle: &tokio::runtime::Handle,
    count: usize,
    limit: Duration,
) -> Res<Vec<f64>> {
    let handle = handle.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || {
            let mut v = Vec::with_capacity(count);
            let start = Instant::now();
            for _ in 0..count {
                if start.elapsed() > limit {
                    break;
                }
                let (ran_tx, ran_rx) = std::sync::mpsc::channel();
                let t0 = Instant::now();
                handle.spawn(async move {
                    let _ = ran_tx.send(Instant::now());
                });
                match ran_rx.recv_timeout(limit) {
                    Ok(at) => v.push((at - t0).as_secs_f64() * 1e3),
                    Err(_) => {
                        v.push(limit.as_secs_f64() * 1e3);
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            v.sort_by(|a, b| a.total_cmp(b));
            let _ = tx.send(v);
        })
        .map_err(|e| e.to_string())?;
    let v = rx.await.map_err(|_| "probe thread failed".to_string())?;
    if v.is_empty() {
        return Err("no probe ran".into());
    }
    Ok(v)
}

pub async fn api(ctx: &Ctx) -> Res<Vec<Row>> {
    const PROXY: &str = "bench_api";
    let started = Instant::now();
    let phase = |what: &str| {
        if verbose() {
            eprintln!(
                "api figure: {what} at {:.2} s",
                started.elapsed().as_secs_f64()
            );
        }
    };
    let proxied = ctx.proxy(PROXY, ctx.up.sink).await?;
    let use_http = api_available(ctx.api).await;
    let how = if use_http {
        "HTTP"
    } else {
        "registry, no HTTP API"
    };
    let ops = ctx.p.api_ops;
    let limit = ctx.p.api_limit;
    let idle = churn(ctx, use_http, PROXY, ops, limit).await?;
    let idle_probe = spawn_delays(&ctx.proxy_rt, ops, limit).await?;
    phase("idle churn and probe done");
    let n = ctx.p.api_streams;
    let life = Duration::from_secs(60);
    // The same streams straight to the sink, for the fairness comparison.
    let direct_rates = {
        let streams = load::Streams::start(ctx.up.sink, n, life).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let c0 = streams.per_stream();
        let t0 = Instant::now();
        tokio::time::sleep(ctx.p.sample * 2).await;
        let c1 = streams.per_stream();
        phase("direct streams measured");
        let secs = t0.elapsed().as_secs_f64();
        streams.stop().await;
        rates(&c0, &c1, secs)
    };
    let streams = load::Streams::start(proxied, n, life).await?;
    phase("proxied streams started");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No toxic attached yet: every link is on the fast path.
    let probe = spawn_delays(&ctx.proxy_rt, ops, limit).await;
    let c0 = streams.per_stream();
    let t0 = Instant::now();
    let loaded = churn(ctx, use_http, PROXY, ops, limit).await;
    let secs = t0.elapsed().as_secs_f64();
    let c1 = streams.per_stream();
    phase("loaded churn done");
    // The same probe with a noop toxic on every stream: every link on the toxic path.
    let _ = ctx.registry.remove_toxic(PROXY, "churn");
    let noop_probe = match ctx.add_toxic(
        PROXY,
        "churn",
        Direction::Upstream,
        toxi::toxics::kind("noop"),
    ) {
        Ok(()) => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            spawn_delays(&ctx.proxy_rt, ops, limit).await
        }
        Err(e) => Err(e),
    };
    streams.stop().await;
    let _ = ctx.registry.remove_toxic(PROXY, "churn");
    phase("streams stopped");
    let (loaded, probe, noop_probe) = (loaded?, probe?, noop_probe?);
    let proxied_rates = rates(&c0, &c1, secs);
    let spread = |r: &[f64]| {
        format!(
            "{}; {:.2}/{:.2}/{:.2}",
            mbps(r.iter().sum()),
            quantile(r, 0.0) / MB,
            quantile(r, 0.5) / MB,
            quantile(r, 1.0) / MB
        )
    };
    let ms = |v: &[f64], q| format!("{:.2} ms", quantile(v, q));
    let failed = |c: &Churn| match c.failures {
        0 => String::new(),
        f => format!(", {f} failed"),
    };
    let p99 = quantile(&loaded.times, 0.99);
    Ok(vec![
        Row::value(
            &format!("toxic API p50 ({how}), {n} streams"),
            format!("{} idle", ms(&idle.times, 0.5)),
            ms(&loaded.times, 0.5),
            "-".into(),
            true,
            "-",
        ),
        Row::value(
            &format!("toxic API p99 ({how}), {n} streams"),
            format!("{} idle{}", ms(&idle.times, 0.99), failed(&idle)),
            format!(
                "{} (max {:.1}, {} requests{})",
                ms(&loaded.times, 0.99),
                quantile(&loaded.times, 1.0),
                loaded.times.len(),
                failed(&loaded)
            ),
            "-".into(),
            p99 < 10.0 && loaded.failures == 0,
            "p99 < 10 ms",
        ),
        Row::info(
            &format!("  {n} streams: total; per-stream min/p50/max MB/s"),
            spread(&direct_rates),
            spread(&proxied_rates),
        ),
        Row::info(
            &format!("  proxy runtime: spawned task start delay p50/p99, {n} streams, no toxic"),
            format!("{}/{} idle", ms(&idle_probe, 0.5), ms(&idle_probe, 0.99)),
            format!("{}/{}", ms(&probe, 0.5), ms(&probe, 0.99)),
        ),
        Row::info(
            &format!("  proxy runtime: spawned task start delay p50/p99, {n} streams, noop toxic"),
            "-".into(),
            format!("{}/{}", ms(&noop_probe, 0.5), ms(&noop_probe, 0.99)),
        ),
    ])
}

/// Per-stream rates (bytes/s) between two readings, sorted.
fn rates(c0: &[u64], c1: &[u64], secs: f64) -> Vec<f64> {
    let mut r: Vec<f64> = c0
        .iter()
        .zip(c1)
        .map(|(a, b)| (b - a) as f64 / secs)
        .collect();
    r.sort_by(|a, b| a.total_cmp(b));
    r
}

/// `TOXI_BENCH_VERBOSE=1` prints every API request's time.
fn verbose() -> bool {
    std::env::var_os("TOXI_BENCH_VERBOSE").is_some_and(|v| v != "0")
}
