//! Soak: stream through several proxies of a real `toxi-server` process while toxics churn
//! over HTTP, then check every byte (SHA-256), the server's open descriptors and its
//! memory against the baseline. Bounded: `TOXI_SOAK_SECS` (default 60) of traffic.
//!
//! ```sh
//! TOXI_SOAK_SECS=3600 cargo test --release --test soak -- --ignored --nocapture   # a long soak
//! ```

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

#[path = "it/support.rs"]
mod support;
use support::{echo_upstream, http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server() -> (Server, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_toxi-server"))
        .args(["-host=127.0.0.1", "-port=0"])
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("server starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Starting Toxiproxy HTTP server") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let _ = tx.send(
                    v["address"]
                        .as_str()
                        .unwrap()
                        .parse::<SocketAddr>()
                        .unwrap(),
                );
            }
        }
    });
    let api = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("API address logged");
    (Server(child), api)
}

fn proc_status(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// One connection's worth of traffic: stream `bytes` through and check the echo.
async fn stream_once(listen: &str, bytes: usize, seed: u64) {
    let c = TcpStream::connect(listen).await.unwrap();
    let (mut r, mut w) = c.into_split();
    let writer = tokio::spawn(async move {
        let mut hash = Sha256::new();
        let mut x = seed | 1;
        let mut block = vec![0u8; 64 * 1024];
        let mut sent = 0;
        while sent < bytes {
            for b in block.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let n = block.len().min(bytes - sent);
            hash.update(&block[..n]);
            w.write_all(&block[..n]).await.unwrap();
            sent += n;
        }
        w.shutdown().await.unwrap();
        hash.finalize()
    });
    let mut hash = Sha256::new();
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        got += n;
    }
    assert_eq!(got, bytes, "every byte came back");
    assert_eq!(hash.finalize(), writer.await.unwrap(), "SHA-256 end to end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 60 s soak; CI runs it with `cargo test --test soak -- --ignored`"]
async fn soak() {
    let secs: u64 = std::env::var("TOXI_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let (server, api) = start_server();
    let pid = server.0.id();
    let upstream = echo_upstream().await;
    let mut listens = Vec::new();
    for i in 0..3 {
        let body =
            format!(r#"{{"name":"soak{i}","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#);
        let (status, reply) = http(api, "POST", "/proxies", &body).await;
        assert_eq!(status, 201, "{reply}");
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
        listens.push(v["listen"].as_str().unwrap().to_string());
    }
    // Warm up (thread pools, buffer pools), then take the baseline.
    for l in &listens {
        stream_once(l, 4 << 20, 1).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let base_fds = open_fds(pid);
    let base_rss = proc_status(pid, "VmRSS:");

    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for (i, l) in listens.iter().enumerate() {
        for j in 0..4u64 {
            let l = l.clone();
            workers.push(tokio::spawn(async move {
                let mut rounds = 0u64;
                let mut bytes = 0usize;
                while Instant::now() < deadline {
                    let size = (1 << 20) + ((rounds as usize * 7919) % (3 << 20));
                    stream_once(&l, size, (i as u64) << 32 | j << 16 | rounds).await;
                    bytes += size;
                    rounds += 1;
                }
                (rounds, bytes)
            }));
        }
    }
    let churn_stop = stop.clone();
    let churn = tokio::spawn(async move {
        let toxics = [
            r#"{"name":"lat","type":"latency","stream":"upstream","attributes":{"latency":1,"jitter":1}}"#,
            r#"{"name":"noop","type":"noop"}"#,
            r#"{"name":"sl","type":"slicer","attributes":{"average_size":8192,"size_variation":4096,"delay":0}}"#,
            r#"{"name":"bw","type":"bandwidth","stream":"upstream","attributes":{"rate":200000}}"#,
        ];
        let (mut ops, mut worst) = (0u64, Duration::ZERO);
        let mut i = 0usize;
        while !churn_stop.load(Ordering::Relaxed) {
            let proxy = format!("soak{}", i % 3);
            let toxic = toxics[i % toxics.len()];
            let name = serde_json::from_str::<serde_json::Value>(toxic).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_string();
            let start = Instant::now();
            let (status, _) = http(api, "POST", &format!("/proxies/{proxy}/toxics"), toxic).await;
            if status == 409 {
                http(
                    api,
                    "PATCH",
                    &format!("/proxies/{proxy}/toxics/{name}"),
                    r#"{"toxicity":0.5}"#,
                )
                .await;
                http(
                    api,
                    "DELETE",
                    &format!("/proxies/{proxy}/toxics/{name}"),
                    "",
                )
                .await;
            }
            worst = worst.max(start.elapsed());
            ops += 1;
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (ops, worst)
    });
    let (mut rounds, mut bytes) = (0, 0);
    for w in workers {
        let (r, b) = w.await.unwrap();
        rounds += r;
        bytes += b;
    }
    stop.store(true, Ordering::Relaxed);
    let (ops, worst) = churn.await.unwrap();
    assert_eq!(http(api, "POST", "/reset", "").await.0, 204);

    // Descriptors return to the baseline once connections have closed; memory settles.
    let settle = Instant::now() + Duration::from_secs(20);
    let (mut fds, mut rss);
    loop {
        fds = open_fds(pid);
        rss = proc_status(pid, "VmRSS:");
        if (fds <= base_fds && rss <= base_rss + 32 * 1024) || Instant::now() > settle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "soak: {secs} s, {rounds} connections, {} MiB echoed, {ops} toxic operations, worst API {worst:?}, \
         fds {base_fds} -> {fds}, RSS {base_rss} -> {rss} KiB",
        bytes >> 20
    );
    assert!(fds <= base_fds, "descriptors leaked: {base_fds} -> {fds}");
    assert!(
        rss <= base_rss + 32 * 1024,
        "memory did not return to baseline: {base_rss} -> {rss} KiB"
    );
    assert!(
        worst < Duration::from_secs(1),
        "worst API response {worst:?}"
    );
    assert!(rounds > 12 && ops > 10);
}
