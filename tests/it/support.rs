//! Shared test helpers: an in-process server, upstream fakes, and bounded waits.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use toxi::registry::{ProxyInput, ProxySnapshot};
use toxi::server::{Config, Server};

/// The default of [`patience`] (generous, for a loaded 2-core machine).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How long any single wait in a test may take before the test fails: [`PATIENCE`], or
/// `TOXI_TEST_PATIENCE_SECS` seconds.
pub fn patience() -> Duration {
    static CHOSEN: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        std::env::var("TOXI_TEST_PATIENCE_SECS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(PATIENCE)
    })
}

/// Awaits `f`, failing the test if it takes longer than [`patience`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(patience(), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Checks `check` every few milliseconds until it holds, failing the test (with the last
/// value `check` saw) if it does not within [`patience`].
pub async fn eventually<T: std::fmt::Debug, F: Future<Output = Result<(), T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        match check().await {
            Ok(()) => return,
            Err(last) if tokio::time::Instant::now() > deadline => {
                panic!("timed out waiting for {what}; last seen: {last:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, once per process: tests open many
/// sockets in parallel.
pub fn raise_nofile() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid rlimit for both calls.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    });
}

/// Starts a server on 127.0.0.1 with an OS-picked API port.
pub async fn server() -> Server {
    server_with(Config::for_tests()).await
}

/// Starts a server with `config`. Unless the config says otherwise, its data path runs on
/// the suite's thread-per-core workers (two, shared by every test), as `toxi-server` runs.
pub async fn server_with(mut config: Config) -> Server {
    raise_nofile();
    if config.data_path.is_empty() {
        config.data_path = workers().data_path();
    }
    Server::start(config).await.expect("server starts")
}

/// The suite's proxy workers.
pub fn workers() -> &'static toxi::proxy::Workers {
    static WORKERS: std::sync::OnceLock<toxi::proxy::Workers> = std::sync::OnceLock::new();
    WORKERS.get_or_init(|| toxi::proxy::Workers::start(2, "toxi-proxy", || {}).expect("workers"))
}

/// The activation counter of a toxic (`toxi_toxic_activations_total`): how many links it
/// started acting on.
pub fn activations(
    server: &Server,
    proxy: &str,
    toxic: &str,
    kind: &str,
    dir: toxi::model::Direction,
) -> u64 {
    server
        .registry()
        .metrics()
        .toxic_activations(proxy, toxic, kind, dir)
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// An upstream that echoes every byte back, and propagates half-close (after the client's
/// FIN it finishes echoing and closes its write side).
pub async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A port on which nothing listens (bound, then released).
pub async fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Creates an enabled proxy listening on 127.0.0.1:0 toward `upstream`.
pub async fn proxy(server: &Server, name: &str, upstream: SocketAddr) -> ProxySnapshot {
    server
        .registry()
        .create(ProxyInput {
            protocol: Default::default(),
            name: name.into(),
            listen: "127.0.0.1:0".into(),
            upstream: upstream.to_string(),
            enabled: true,
        })
        .await
        .expect("proxy created")
}

/// Connects to a proxy's listen address.
pub async fn connect(p: &ProxySnapshot) -> TcpStream {
    within("connect", TcpStream::connect(p.listen.as_str()))
        .await
        .expect("connects")
}

/// Reads exactly `n` bytes.
pub async fn read_n(sock: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    within("read", sock.read_exact(&mut buf))
        .await
        .expect("read_exact");
    buf
}

/// Reads until EOF or error; returns the bytes and whether it ended with a clean EOF.
pub async fn read_to_end(sock: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let r = within("read to end", sock.read_to_end(&mut buf)).await;
    (buf, r.is_ok())
}

/// Waits until the peer closes (EOF or reset), discarding data.
pub async fn expect_closed(sock: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    within("close", async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A raw HTTP/1.1 request with `Connection: close`; returns status, headers and body.
/// Bytes are sent exactly as given, so malformed bodies can be tested.
pub async fn http_raw(
    api: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = within("API connect", TcpStream::connect(api))
        .await
        .unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: toxi\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // The server may answer (e.g. 413) before reading the whole body.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = within("API response", s.read_to_end(&mut raw)).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head[9..12].parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

/// A request with a text body; returns status and body text.
pub async fn http(api: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = http_raw(api, method, path, &[], body.as_bytes()).await;
    (status, String::from_utf8_lossy(&body).to_string())
}

/// Creates an enabled proxy on 127.0.0.1:0 through the HTTP API; returns its listen address.
pub async fn create_proxy_http(api: SocketAddr, name: &str, upstream: SocketAddr) -> String {
    let body = format!(r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#);
    let (status, reply) = http(api, "POST", "/proxies", &body).await;
    assert_eq!(status, 201, "{reply}");
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    v["listen"].as_str().unwrap().to_string()
}

/// Reads until EOF, hashing with SHA-256; returns the byte count and the digest. Fails the
/// test if the stream does not end within `limit`.
pub async fn sha256_to_eof(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> (usize, Vec<u8>) {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let mut received = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let read = async {
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            received += n;
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("stream finished in time");
    (received, hash.finalize().to_vec())
}

/// Writes `mib` MiB of [`pattern`] blocks (seeds 1, 2, …) to `w`, then shuts it down;
/// resolves to the SHA-256 of everything written.
pub fn spawn_pattern_writer(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mib: usize,
) -> tokio::task::JoinHandle<Vec<u8>> {
    use sha2::{Digest, Sha256};
    tokio::spawn(async move {
        let mut hash = Sha256::new();
        for seed in 1..=mib as u64 {
            let block = pattern(1 << 20, seed);
            hash.update(&block);
            w.write_all(&block).await.unwrap();
        }
        w.shutdown().await.unwrap();
        hash.finalize().to_vec()
    })
}

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Writes `msg` and reads the same bytes back (an echo upstream); returns the time taken.
pub async fn round_trip(c: &mut TcpStream, msg: &[u8]) -> Duration {
    let start = tokio::time::Instant::now();
    c.write_all(msg).await.unwrap();
    assert_eq!(read_n(c, msg.len()).await, msg);
    start.elapsed()
}

/// Parses a JSON reply, naming the text when it is not JSON.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}
