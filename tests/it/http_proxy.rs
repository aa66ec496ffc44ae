//! `protocol: http` proxies: requests parsed and forwarded in order over each client's own
//! upstream connection, HTTP toxics rolled per request, TCP toxics underneath.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;
use toxi::model::Protocol;
use toxi::registry::ProxyInput;
use toxi::server::Server;

type Body = BoxBody<Bytes, hyper::Error>;

fn text(s: String) -> Body {
    Full::new(Bytes::from(s)).map_err(|e| match e {}).boxed()
}

/// An HTTP/1.1 upstream: `/echo` streams the request body back, an `Upgrade` request gets
/// 101 and then echoes raw bytes, anything else answers `METHOD PATH #n` (n counts
/// requests across connections) with the request's `x-seen` header count.
async fn http_upstream() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    async move {
                        if req.headers().contains_key(hyper::header::UPGRADE) {
                            let on = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                let Ok(up) = on.await else { return };
                                let mut io = TokioIo::new(up);
                                let mut buf = [0u8; 4096];
                                while let Ok(n) = io.read(&mut buf).await {
                                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            });
                            let res = Response::builder()
                                .status(101)
                                .header("upgrade", "websocket")
                                .header("connection", "Upgrade")
                                .body(text(String::new()))
                                .unwrap();
                            return Ok::<_, Infallible>(res);
                        }
                        if req.uri().path() == "/echo" {
                            return Ok(Response::new(req.into_body().boxed()));
                        }
                        let body = format!("{} {} #{n}", req.method(), req.uri().path());
                        Ok(Response::new(text(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, count)
}

async fn http_proxy(server: &Server, name: &str, upstream: SocketAddr) -> String {
    let p = server
        .registry()
        .create(ProxyInput::new(name, "127.0.0.1:0", upstream.to_string()).protocol(Protocol::Http))
        .await
        .expect("proxy created");
    assert_eq!(p.protocol, Protocol::Http);
    p.listen
}

/// A raw HTTP/1.1 client connection that reads responses one by one.
struct Client {
    sock: TcpStream,
    buf: Vec<u8>,
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Client {
    async fn connect(addr: &str) -> Client {
        Client {
            sock: within("connect", TcpStream::connect(addr)).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, raw: &str) {
        self.sock.write_all(raw.as_bytes()).await.unwrap();
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"))
            .await;
        self.reply().await
    }

    /// Reads more bytes; false at EOF or on an error.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match within("response bytes", self.sock.read(&mut chunk)).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads one response head (`None` if the connection ends first).
    async fn head(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                self.buf.drain(..end + 4);
                return Some(head);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn try_reply(&mut self) -> Option<Reply> {
        let head = self.head().await?;
        let status = head[9..12].parse().unwrap();
        let lower = head.to_ascii_lowercase();
        let len = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse::<usize>().unwrap());
        let body = if let Some(len) = len {
            while self.buf.len() < len {
                assert!(self.fill().await, "body cut short");
            }
            self.buf.drain(..len).collect()
        } else if lower.contains("transfer-encoding: chunked") {
            let mut body = Vec::new();
            loop {
                while !self.buf.windows(2).any(|w| w == b"\r\n") {
                    assert!(self.fill().await, "chunk cut short");
                }
                let eol = self.buf.windows(2).position(|w| w == b"\r\n").unwrap();
                let size = usize::from_str_radix(
                    std::str::from_utf8(&self.buf[..eol]).unwrap().trim(),
                    16,
                )
                .unwrap();
                while self.buf.len() < eol + 2 + size + 2 {
                    assert!(self.fill().await, "chunk cut short");
                }
                body.extend_from_slice(&self.buf[eol + 2..eol + 2 + size]);
                self.buf.drain(..eol + 2 + size + 2);
                if size == 0 {
                    break body;
                }
            }
        } else {
            Vec::new()
        };
        Some(Reply { status, head, body })
    }

    async fn reply(&mut self) -> Reply {
        self.try_reply().await.expect("a response")
    }
}

fn body(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

async fn add_toxic(server: &Server, proxy: &str, json: &str) -> (u16, String) {
    http(
        server.api_addr(),
        "POST",
        &format!("/proxies/{proxy}/toxics"),
        json,
    )
    .await
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_stay_in_order() {
    let server = server().await;
    let (up, count) = http_upstream().await;
    let listen = http_proxy(&server, "ka", up).await;
    let (status, reply) = http(server.api_addr(), "GET", "/proxies/ka", "").await;
    assert_eq!(status, 200);
    assert!(
        reply.contains(r#""enabled":true,"protocol":"http","Logger""#),
        "{reply}"
    );

    let mut c = Client::connect(&listen).await;
    let r = c.get("/first").await;
    assert_eq!((r.status, body(&r)), (200, "GET /first #0".to_string()));
    // Ten pipelined requests in one write: answered in order on the same connection.
    let mut burst = String::new();
    for i in 0..10 {
        burst.push_str(&format!("GET /p{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
    }
    c.send(&burst).await;
    for i in 0..10 {
        let r = c.reply().await;
        assert_eq!(body(&r), format!("GET /p{i} #{}", i + 1));
    }
    let r = c.get("/last").await;
    assert_eq!(body(&r), "GET /last #11");
    assert_eq!(count.load(Ordering::Relaxed), 12);
}

#[tokio::test]
async fn tcp_proxies_parse_nothing_and_http_toxics_are_refused() {
    let server = server().await;
    let (up, _) = http_upstream().await;
    let p = proxy(&server, "raw", up).await;
    let (status, reply) = http(server.api_addr(), "GET", "/proxies/raw", "").await;
    assert_eq!(status, 200);
    assert!(!reply.contains("protocol"), "{reply}");
    // Garbage goes through a tcp proxy untouched (the upstream answers it, not toxi).
    let (s, r) = add_toxic(&server, "raw", r#"{"type":"http_abort"}"#).await;
    assert_eq!(s, 400, "{r}");
    assert!(r.contains("http_abort needs a proxy with"), "{r}");
    let (s, r) = add_toxic(
        &server,
        "raw",
        r#"{"type":"latency","match":{"path":"/x"}}"#,
    )
    .await;
    assert_eq!(s, 400, "{r}");
    assert!(r.contains("match applies only to HTTP toxics"), "{r}");
    drop(p);

    let _ = http_proxy(&server, "h", up).await;
    let (s, r) = add_toxic(
        &server,
        "h",
        r#"{"type":"http_abort","attributes":{"status":600}}"#,
    )
    .await;
    assert_eq!(s, 400, "{r}");
    assert!(r.contains("status"), "{r}");
    let (s, r) = add_toxic(
        &server,
        "h",
        r#"{"type":"http_fail_first","attributes":{"status":99}}"#,
    )
    .await;
    assert_eq!(s, 400, "{r}");
    let (s, r) = add_toxic(
        &server,
        "h",
        r#"{"type":"http_abort","match":{"path":"/a["}}"#,
    )
    .await;
    assert_eq!(s, 400, "{r}");
    assert!(r.contains("match.path"), "{r}");
    let body = r#"{"name":"x","listen":"127.0.0.1:0","upstream":"127.0.0.1:1","protocol":"udp"}"#;
    let (s, r) = http(server.api_addr(), "POST", "/proxies", body).await;
    assert_eq!(s, 400, "{r}");
    assert!(r.contains("protocol"), "{r}");
    // A match is shown as given.
    let (s, r) = add_toxic(
        &server,
        "h",
        r#"{"type":"http_abort","match":{"method":"POST","path":"/api/*","headers":{"x-test":"1"}}}"#,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert!(
        r.ends_with(
            r#""toxicity":1,"match":{"method":"POST","path":"/api/*","headers":{"x-test":"1"}}}"#
        ),
        "{r}"
    );
}

#[tokio::test]
async fn malformed_requests_get_400_and_a_close() {
    let server = server().await;
    let (up, count) = http_upstream().await;
    let listen = http_proxy(&server, "bad", up).await;
    let mut c = Client::connect(&listen).await;
    c.send("THIS IS NOT HTTP\r\n\r\n").await;
    let r = c.reply().await;
    assert_eq!(r.status, 400, "{}", r.head);
    assert!(c.try_reply().await.is_none(), "connection closed");
    assert_eq!(count.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn abort_toxicity_is_rolled_per_request() {
    let server = server().await;
    let (up, _) = http_upstream().await;
    let listen = http_proxy(&server, "rate", up).await;
    let (s, r) = add_toxic(
        &server,
        "rate",
        r#"{"type":"http_abort","toxicity":0.3,"attributes":{"status":503,"body":"chaos","headers":{"X-Toxi":"yes"}}}"#,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let listen = listen.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&listen).await;
            let mut aborted = 0;
            for i in 0..200 {
                let r = c.get(&format!("/r{i}")).await;
                match r.status {
                    503 => {
                        assert_eq!(body(&r), "chaos");
                        assert!(
                            r.head.to_ascii_lowercase().contains("x-toxi: yes"),
                            "{}",
                            r.head
                        );
                        aborted += 1;
                    }
                    200 => assert!(body(&r).starts_with(&format!("GET /r{i} #"))),
                    s => panic!("status {s}"),
                }
            }
            aborted
        }));
    }
    let mut aborted = 0;
    for t in tasks {
        aborted += t.await.unwrap();
    }
    assert!((260..=340).contains(&aborted), "{aborted} of 1000 aborted");
    let metrics = server.registry().metrics();
    let injected = metrics.http_injected("rate", "http_abort_downstream");
    assert_eq!(injected.load(Ordering::Relaxed), aborted);
    let seen: Vec<(u16, u64)> = metrics.http_statuses("rate").seen().collect();
    assert_eq!(seen, [(200, 1000 - aborted), (503, aborted)]);
}

#[tokio::test]
async fn match_fail_first_and_reset() {
    let server = server().await;
    let (up, _) = http_upstream().await;
    let listen = http_proxy(&server, "m", up).await;
    let (s, r) = add_toxic(
        &server,
        "m",
        r#"{"name":"slow_api","type":"http_abort","attributes":{"status":418},"match":{"method":"POST","path":"/api/*","headers":{"X-Test":"1"}}}"#,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let mut c = Client::connect(&listen).await;
    let post = |path: &str, header: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: t\r\n{header}Content-Length: 2\r\n\r\nhi")
    };
    c.send(&post("/api/users", "x-test: 1\r\n")).await;
    assert_eq!(c.reply().await.status, 418);
    c.send(&post("/api/users", "")).await;
    assert_eq!(c.reply().await.status, 200);
    c.send(&post("/other", "x-test: 1\r\n")).await;
    assert_eq!(c.reply().await.status, 200);
    assert_eq!(c.get("/api/users").await.status, 200);
    http(
        server.api_addr(),
        "DELETE",
        "/proxies/m/toxics/slow_api",
        "",
    )
    .await;

    let (s, r) = add_toxic(
        &server,
        "m",
        r#"{"name":"ff","type":"http_fail_first","attributes":{"count":3,"status":502}}"#,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let mut other = Client::connect(&listen).await;
    let statuses: Vec<u16> = [
        c.get("/a").await.status,
        other.get("/b").await.status,
        c.get("/c").await.status,
        other.get("/d").await.status,
        c.get("/e").await.status,
    ]
    .to_vec();
    assert_eq!(statuses, [502, 502, 502, 200, 200]);
    let (s, _) = http(
        server.api_addr(),
        "POST",
        "/proxies/m/toxics/ff",
        r#"{"attributes":{"count":1}}"#,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        c.get("/f").await.status,
        502,
        "an update restarts the count"
    );
    assert_eq!(c.get("/g").await.status, 200);
    http(server.api_addr(), "DELETE", "/proxies/m/toxics/ff", "").await;

    let (s, r) = add_toxic(
        &server,
        "m",
        r#"{"type":"http_reset","match":{"path":"/boom"}}"#,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(c.get("/fine").await.status, 200);
    c.send("GET /boom HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let mut rest = Vec::new();
    let end = within("reset", c.sock.read_to_end(&mut rest)).await;
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "got {rest:?}"
    );
}

#[tokio::test]
async fn http_latency_and_tcp_toxics_underneath() {
    let server = server().await;
    let (up, _) = http_upstream().await;
    let listen = http_proxy(&server, "lat", up).await;
    let (s, r) = add_toxic(
        &server,
        "lat",
        r#"{"type":"http_latency","stream":"upstream","attributes":{"latency":300},"match":{"path":"/slow"}}"#,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let mut c = Client::connect(&listen).await;
    let t = Instant::now();
    assert_eq!(c.get("/fast").await.status, 200);
    let fast = t.elapsed();
    let t = Instant::now();
    assert_eq!(c.get("/slow").await.status, 200);
    let slow = t.elapsed();
    assert!(slow >= Duration::from_millis(300), "{slow:?}");
    assert!(fast < Duration::from_millis(300), "{fast:?}");

    // A TCP latency toxic delays the bytes under the HTTP layer too.
    let (s, r) = add_toxic(
        &server,
        "lat",
        r#"{"type":"latency","stream":"downstream","attributes":{"latency":250}}"#,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let t = Instant::now();
    assert_eq!(c.get("/fast").await.status, 200);
    // Slack: long toxic waits wake up to TIMER_SLACK (1 ms) early by design; without the
    // toxic the reply takes a millisecond or two.
    assert!(
        t.elapsed() >= Duration::from_millis(240),
        "{:?}",
        t.elapsed()
    );
    // limit_data cuts the connection after that many bytes from the client.
    let (s, r) = add_toxic(
        &server,
        "lat",
        r#"{"type":"limit_data","stream":"upstream","attributes":{"bytes":10}}"#,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let mut c = Client::connect(&listen).await;
    c.send("GET /cut HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(c.try_reply().await.is_none(), "limit_data closed it");
}

#[tokio::test]
async fn expect_100_continue_and_websocket_passthrough() {
    let server = server().await;
    let (up, _) = http_upstream().await;
    let listen = http_proxy(&server, "ws", up).await;
    let mut c = Client::connect(&listen).await;
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let interim = c.head().await.expect("100 Continue");
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    c.send("hello").await;
    let r = c.reply().await;
    assert_eq!((r.status, body(&r)), (200, "hello".to_string()));

    c.send("GET /chat HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await;
    let head = c.head().await.expect("101");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for msg in ["raw bytes \r\n\r\n", "GET / HTTP/1.1 is not parsed now"] {
        c.send(msg).await;
        while c.buf.len() < msg.len() {
            assert!(c.fill().await);
        }
        assert_eq!(c.buf.drain(..).collect::<Vec<u8>>(), msg.as_bytes());
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    use sha2::{Digest, Sha256};
    const LEN: usize = 256 << 20;
    let server = server().await;
    let (up, _) = http_upstream().await;
    let listen = http_proxy(&server, "big", up).await;
    let sock = within("connect", TcpStream::connect(&listen))
        .await
        .unwrap();
    let (mut rd, mut wr) = sock.into_split();
    let before = rss_bytes();
    let writer = tokio::spawn(async move {
        let head = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {LEN}\r\n\r\n");
        wr.write_all(head.as_bytes()).await.unwrap();
        let block = pattern(1 << 20, 7);
        let mut hash = Sha256::new();
        for _ in 0..LEN >> 20 {
            hash.update(&block);
            wr.write_all(&block).await.unwrap();
        }
        (hash.finalize().to_vec(), wr)
    });
    // Skip the response head, then hash exactly LEN body bytes.
    let mut buf = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    let mut hash = Sha256::new();
    let mut got = 0usize;
    let mut peak = before;
    let read = async {
        loop {
            let n = rd.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream ended after {got} body bytes");
            let mut data = &buf[..n];
            if head.windows(4).all(|w| w != b"\r\n\r\n") {
                head.extend_from_slice(data);
                let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let extra = head.split_off(end + 4);
                hash.update(&extra);
                got += extra.len();
                data = &[];
            }
            hash.update(data);
            got += data.len();
            if got % (16 << 20) < n {
                peak = peak.max(rss_bytes());
            }
            if got >= LEN {
                break;
            }
        }
    };
    tokio::time::timeout(patience() * 4, read)
        .await
        .expect("echo finished in time");
    let (sent, _wr) = writer.await.unwrap();
    assert_eq!(got, LEN);
    assert_eq!(hash.finalize().to_vec(), sent);
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Nothing holds a whole body: the growth stays far below the 256 MiB streamed (the
    // bound is loose because other tests share this process).
    let growth = peak.saturating_sub(before);
    assert!(growth < 96 << 20, "RSS grew by {} MiB", growth >> 20);
}

#[tokio::test]
async fn a_tcp_toxic_mid_connection_keeps_pipelined_order() {
    let server = server().await;
    let (up, _) = http_upstream().await;
    let listen = http_proxy(&server, "sw", up).await;
    let mut c = Client::connect(&listen).await;
    // Served on the client's socket itself (no TCP toxics yet).
    assert_eq!(body(&c.get("/a").await), "GET /a #0");
    // Pipelined requests in flight while a slicer (downstream) and a noop (upstream)
    // arrive: the connection moves onto its links without losing or reordering a byte.
    let mut burst = String::new();
    for i in 0..20 {
        burst.push_str(&format!("GET /p{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
    }
    let (half, rest) = burst.split_at(burst.len() / 2);
    c.send(half).await;
    let (s, r) = add_toxic(
        &server,
        "sw",
        r#"{"type":"slicer","stream":"downstream","attributes":{"average_size":3,"size_variation":1,"delay":0}}"#,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = add_toxic(&server, "sw", r#"{"type":"noop","stream":"upstream"}"#).await;
    assert_eq!(s, 200, "{r}");
    c.send(rest).await;
    for i in 0..20 {
        assert_eq!(body(&c.reply().await), format!("GET /p{i} #{}", i + 1));
    }
    assert_eq!(body(&c.get("/z").await), "GET /z #21");
}
