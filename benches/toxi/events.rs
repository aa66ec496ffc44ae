//! The `events` figure: a reader attached to `GET /events` that never reads must not slow
//! the API or the data path (beyond.md §3.2). The toxic API churn of the `api` figure runs
//! without, then with, a stalled reader while events are published (about 20,000 a second,
//! enough to overflow its buffer within a second), and a 50 MiB transfer runs through a
//! proxy beside it.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use toxi::events::{Kind, Value};

use crate::figures::{api_available, churn, Ctx};
use crate::load::{quantile, Res};
use crate::report::Row;

const PROXY: &str = "bench_events";

/// Writes `total` bytes to `addr` and returns MB/s.
async fn transfer(addr: std::net::SocketAddr, total: usize) -> Res<f64> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let chunk = vec![0x5au8; 256 * 1024];
    let t0 = Instant::now();
    let mut sent = 0;
    while sent < total {
        s.write_all(&chunk).await.map_err(|e| e.to_string())?;
        sent += chunk.len();
    }
    s.shutdown().await.map_err(|e| e.to_string())?;
    Ok(sent as f64 / t0.elapsed().as_secs_f64() / 1e6)
}

pub async fn stalled_reader(ctx: &Ctx) -> Res<Vec<Row>> {
    if !api_available(ctx.api).await {
        return Err("needs the HTTP API".into());
    }
    let proxied = ctx.proxy(PROXY, ctx.up.sink).await?;
    let (ops, limit) = (ctx.p.api_ops, ctx.p.api_limit);
    let bulk = 50 << 20;
    let base = churn(ctx, true, PROXY, ops, limit).await?;
    let base_rate = transfer(proxied, bulk).await?;

    // The stalled reader: asks for the stream, then never reads a byte.
    let mut stalled = TcpStream::connect(ctx.api)
        .await
        .map_err(|e| e.to_string())?;
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let bus = ctx.registry.events().clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let pad = "x".repeat(200);
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                bus.publish(
                    Kind::ToxicActivated,
                    Some("flood"),
                    &[("n", Value::U64(n)), ("pad", Value::Str(&pad))],
                );
                n += 1;
                if n % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let loaded = churn(ctx, true, PROXY, ops, limit).await;
    let rate = transfer(proxied, bulk).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let published = flood.join().unwrap_or(0);
    drop(stalled);
    let _ = ctx.registry.delete(PROXY).await;
    let (loaded, rate) = (loaded?, rate?);
    let p99 = quantile(&loaded.times, 0.99);
    let ms = |v: &[f64]| format!("{:.2} ms", quantile(v, 0.99));
    Ok(vec![
        Row::value(
            "toxic API p99 (HTTP), stalled /events reader",
            format!("{} without", ms(&base.times)),
            format!(
                "{} ({} requests, {published} events published{})",
                ms(&loaded.times),
                loaded.times.len(),
                match loaded.failures {
                    0 => String::new(),
                    f => format!(", {f} failed"),
                }
            ),
            "-".into(),
            p99 < 10.0 && loaded.failures == 0,
            "p99 < 10 ms",
        ),
        Row::info(
            "  50 MiB through a proxy, stalled /events reader (MB/s)",
            format!("{base_rate:.0} without"),
            format!("{rate:.0}"),
        ),
    ])
}
