//! The load generator's upstream servers, all on 127.0.0.1 with OS-picked ports. Every
//! connection handler ends by itself: on EOF, on an error, or after [`MAX_LIFE`].

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// No upstream connection lives longer than this, whatever the client does.
const MAX_LIFE: Duration = Duration::from_secs(120);

/// Size of the request and of the response in the one-shot exchange.
pub const ONESHOT_LEN: usize = 16;

#[derive(Debug, Clone, Copy)]
pub struct Upstreams {
    /// Reads until EOF, then answers the byte count (8 bytes, little endian) and closes.
    pub sink: SocketAddr,
    /// Echoes every byte with a 64 KiB buffer; on EOF, shuts down its write side.
    pub echo: SocketAddr,
    /// Echo with a 256-byte buffer, for the idle-connection memory figure.
    pub echo_small: SocketAddr,
    /// Reads a 16-byte request, writes a 16-byte response and closes first.
    pub oneshot: SocketAddr,
    /// Writes 64 KiB blocks as fast as the peer reads, until the peer goes away.
    pub source: SocketAddr,
    /// HTTP/1.1 with keep-alive (and pipelining): `GET /64k` answers 64 KiB, `GET /1g`
    /// [`HUGE_LEN`] bytes, a request with a body (`Content-Length`) answers how many bytes
    /// it read, in decimal; anything else answers `hello world` (11 bytes).
    pub http: SocketAddr,
    /// HTTP/1.1 keep-alive as lean as it gets: every request head (up to its blank line)
    /// gets [`HELLO_RESPONSE`], an 11-byte `hello world`; requests carry no body.
    pub hello: SocketAddr,
}

/// The one response of the `hello` upstream.
pub const HELLO_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";

/// The `GET /1g` body of the HTTP upstream: 1 GiB.
pub const HUGE_LEN: u64 = 1 << 30;

impl Upstreams {
    pub async fn start() -> Upstreams {
        Upstreams {
            sink: serve(sink).await,
            echo: serve(echo).await,
            echo_small: serve(echo_small).await,
            oneshot: serve(oneshot).await,
            source: serve(source).await,
            http: serve(http).await,
            hello: serve(hello).await,
        }
    }
}

async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((sock, _)) => {
                    let _ = sock.set_nodelay(true);
                    let fut = handler(sock);
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(MAX_LIFE, fut).await;
                    });
                }
                // Out of descriptors or similar: back off briefly, keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    });
    addr
}

async fn sink(mut sock: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        match sock.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(_) => return,
        }
    }
    let _ = sock.write_all(&total.to_le_bytes()).await;
    let _ = sock.shutdown().await;
}

async fn echo(sock: TcpStream) {
    echo_with(sock, vec![0u8; 64 * 1024]).await
}

async fn echo_small(sock: TcpStream) {
    echo_with(sock, vec![0u8; 256]).await
}

async fn echo_with(mut sock: TcpStream, mut buf: Vec<u8>) {
    loop {
        match sock.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if sock.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = sock.shutdown().await;
}

async fn oneshot(mut sock: TcpStream) {
    let mut req = [0u8; ONESHOT_LEN];
    if sock.read_exact(&mut req).await.is_err() {
        return;
    }
    let _ = sock.write_all(&req).await;
    // Dropping closes: the server side closes first, so TIME_WAIT stays on this side and
    // the client's ephemeral ports are not used up.
}

async fn source(mut sock: TcpStream) {
    let block = vec![0x5au8; 64 * 1024];
    while sock.write_all(&block).await.is_ok() {}
}

async fn http(mut sock: TcpStream) {
    let block = vec![0x5au8; 64 * 1024];
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(256);
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return;
            }
            let mut tmp = [0u8; 8192];
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let length: u64 = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        // Read and count the request body without keeping it.
        let mut left = length;
        let take = (left as usize).min(buf.len());
        buf.drain(..take);
        left -= take as u64;
        let mut tmp = vec![0u8; if left > 0 { 64 * 1024 } else { 0 }];
        while left > 0 {
            let want = (left as usize).min(tmp.len());
            match sock.read(&mut tmp[..want]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left -= n as u64,
            }
        }
        out.clear();
        let (len, body): (u64, &[u8]) = if length > 0 {
            let text = length.to_string();
            out.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                )
                .as_bytes(),
            );
            (0, b"")
        } else if path == "/64k" {
            (64 * 1024, &block[..])
        } else if path == "/1g" {
            (HUGE_LEN, &block[..])
        } else {
            (11, b"hello world")
        };
        if len > 0 {
            out.extend_from_slice(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
            );
        }
        if len <= 64 * 1024 {
            out.extend_from_slice(&body[..len as usize]);
            if sock.write_all(&out).await.is_err() {
                return;
            }
            continue;
        }
        if sock.write_all(&out).await.is_err() {
            return;
        }
        let mut left = len;
        while left > 0 {
            let n = (left as usize).min(body.len());
            if sock.write_all(&body[..n]).await.is_err() {
                return;
            }
            left -= n as u64;
        }
    }
}

/// Answers each request head with [`HELLO_RESPONSE`], without parsing or allocating per
/// request: it only tracks the `\r\n\r\n` that ends a head, across reads, so pipelined
/// requests get one write of all their responses.
async fn hello(mut sock: TcpStream) {
    let mut buf = [0u8; 4096];
    let mut out = Vec::with_capacity(HELLO_RESPONSE.len() * 16);
    // How much of "\r\n\r\n" the bytes so far end with.
    let mut matched = 0u8;
    loop {
        let n = match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        out.clear();
        for &b in &buf[..n] {
            matched = match (matched, b) {
                (2, b'\r') => 3,
                (_, b'\r') => 1,
                (1, b'\n') => 2,
                (3, b'\n') => {
                    out.extend_from_slice(HELLO_RESPONSE);
                    0
                }
                _ => 0,
            };
        }
        if !out.is_empty() && sock.write_all(&out).await.is_err() {
            return;
        }
    }
}
