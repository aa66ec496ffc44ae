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
}

impl Upstreams {
    pub async fn start() -> Upstreams {
        Upstreams {
            sink: serve(sink).await,
            echo: serve(echo).await,
            echo_small: serve(echo_small).await,
            oneshot: serve(oneshot).await,
            source: serve(source).await,
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
