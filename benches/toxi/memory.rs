//! Memory per idle proxied connection, measured on a `toxi-server` subprocess: its VmRSS
//! before and after `n` idle connections are opened through one proxy (created by a
//! `-config` file, so this works without the HTTP API).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::load::{open_idle, Res};

/// The server binary: `TOXI_SERVER_BIN`, else the one Cargo built with this bench.
pub fn server_bin() -> PathBuf {
    std::env::var_os("TOXI_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_toxi-server")))
}

/// Kills and reaps the child on drop, whatever happens.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn vm_rss_kib(pid: u32) -> Res<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".to_string())
}

/// A port on 127.0.0.1 that was free a moment ago (for subprocesses given a listen
/// address).
pub fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

pub struct RssResult {
    pub baseline_kib: u64,
    pub per_conn_kib: f64,
}

/// A `toxi-server` subprocess with one proxy `name` toward `upstream` on a fresh port
/// (from a `-config` file); killed, and its config file removed, on drop.
struct Subprocess {
    child: ChildGuard,
    config: PathBuf,
    listen: SocketAddr,
}

impl Drop for Subprocess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

fn spawn_server(name: &str, upstream: SocketAddr, args: &[String]) -> Res<Subprocess> {
    let bin = server_bin();
    if !bin.exists() {
        return Err(format!(
            "{} not found (build it: cargo build --release)",
            bin.display()
        ));
    }
    let port = free_port()?;
    let config =
        std::env::temp_dir().join(format!("toxi-bench-{name}-{}.json", std::process::id()));
    std::fs::write(
        &config,
        format!(
            r#"[{{"name":"{name}","listen":"127.0.0.1:{port}","upstream":"{upstream}","enabled":true}}]"#
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(&bin)
        .args(["-host", "127.0.0.1"])
        .args(args)
        .arg("-config")
        .arg(&config)
        .env("LOG_LEVEL", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(child) => Ok(Subprocess {
            child: ChildGuard(child),
            config,
            listen: ([127, 0, 0, 1], port).into(),
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&config);
            Err(format!("starting {}: {e}", bin.display()))
        }
    }
}

/// Starts the server with one proxy toward `upstream`, opens `n` idle connections through
/// it and returns the RSS growth per connection.
pub async fn rss_per_idle_connection(upstream: SocketAddr, n: usize) -> Res<RssResult> {
    let server = spawn_server("idle", upstream, &["-port".into(), "0".into()])?;
    rss_growth(server.child.0.id(), server.listen, n).await
}

/// RSS growth of process `pid` per idle connection, for `n` connections opened through
/// `listen` (a proxy in that process toward an echo server).
pub async fn rss_growth(pid: u32, listen: SocketAddr, n: usize) -> Res<RssResult> {
    // Wait until the proxy answers an echo.
    let t0 = Instant::now();
    loop {
        if open_idle(listen, 1).await.is_ok() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err("the proxy subprocess did not start proxying".to_string());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Warm up the process (worker threads, buffer pools) with some short-lived traffic.
    drop(open_idle(listen, 200).await?);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = vm_rss_kib(pid)?;
    let conns = open_idle(listen, n).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = vm_rss_kib(pid)?;
    drop(conns);
    Ok(RssResult {
        baseline_kib: before,
        per_conn_kib: after.saturating_sub(before) as f64 / n as f64,
    })
}

/// The toxic chains' byte budget the held-memory figure runs with (`-toxic-buffer-bytes`).
pub const HELD_BUDGET: usize = 256 * 1024;

pub struct HeldResult {
    pub baseline_kib: u64,
    pub growth_kib: u64,
    /// Bytes the proxy took off the clients (client writes that completed).
    pub written: u64,
}

/// RSS of a `toxi-server` subprocess while `n` streams write as fast as they can for
/// `secs` into a proxy whose upstream direction has a 60 s latency toxic, so everything
/// the proxy reads stays held. With the per-link budget the growth stays near
/// `n × HELD_BUDGET` (plus what the kernel buffers, which is not in RSS).
pub async fn rss_held_by_latency(upstream: SocketAddr, n: usize, secs: f64) -> Res<HeldResult> {
    use tokio::io::AsyncWriteExt;
    let api = free_port()?;
    let args = [
        "-port".to_string(),
        api.to_string(),
        "-toxic-buffer-bytes".to_string(),
        HELD_BUDGET.to_string(),
    ];
    let server = spawn_server("held", upstream, &args)?;
    let (pid, listen) = (server.child.0.id(), server.listen);
    {
        let t0 = Instant::now();
        while open_idle(listen, 1).await.is_err() {
            if t0.elapsed() > Duration::from_secs(10) {
                return Err("the proxy subprocess did not start proxying".to_string());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut client =
            crate::http::Client::new(([127, 0, 0, 1], api).into(), Duration::from_secs(5));
        let r = client
            .request(
                "POST",
                "/proxies/held/toxics",
                Some(r#"{"type":"latency","stream":"upstream","attributes":{"latency":60000}}"#),
            )
            .await
            .map_err(|e| format!("adding the latency toxic: {e}"))?;
        if r.status != 200 {
            return Err(format!("adding the latency toxic: status {}", r.status));
        }
        let before = vm_rss_kib(pid)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        let streams: Vec<_> = (0..n)
            .map(|_| {
                tokio::spawn(async move {
                    let mut s = crate::load::connect(listen).await?;
                    let block = vec![0x5au8; 64 * 1024];
                    let mut written = 0u64;
                    while let Ok(r) = tokio::time::timeout_at(deadline, s.write_all(&block)).await {
                        r.map_err(|e| e.to_string())?;
                        written += block.len() as u64;
                    }
                    Ok::<_, String>((s, written))
                })
            })
            .collect();
        let mut conns = Vec::with_capacity(n);
        let mut written = 0;
        for t in streams {
            let (s, w) = t.await.map_err(|e| e.to_string())??;
            conns.push(s);
            written += w;
        }
        let after = vm_rss_kib(pid)?;
        drop(conns);
        Ok(HeldResult {
            baseline_kib: before,
            growth_kib: after.saturating_sub(before),
            written,
        })
    }
}
