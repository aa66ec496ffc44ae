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

/// Starts the server with one proxy toward `upstream`, opens `n` idle connections through
/// it and returns the RSS growth per connection.
pub async fn rss_per_idle_connection(upstream: SocketAddr, n: usize) -> Res<RssResult> {
    let bin = server_bin();
    if !bin.exists() {
        return Err(format!(
            "{} not found (build it: cargo build --release)",
            bin.display()
        ));
    }
    let port = free_port()?;
    let config = std::env::temp_dir().join(format!("toxi-bench-{}.json", std::process::id()));
    std::fs::write(
        &config,
        format!(
            r#"[{{"name":"idle","listen":"127.0.0.1:{port}","upstream":"{upstream}","enabled":true}}]"#
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(&bin)
        .args(["-host", "127.0.0.1", "-port", "0", "-config"])
        .arg(&config)
        .env("LOG_LEVEL", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()));
    let result = async {
        let child = ChildGuard(child?);
        rss_growth(child.0.id(), ([127, 0, 0, 1], port).into(), n).await
    }
    .await;
    let _ = std::fs::remove_file(&config);
    result
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
