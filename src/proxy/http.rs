//! The connection driver of a `protocol: http` proxy.
//!
//! ```text
//! client ─▶ link "upstream"   (TCP toxics) ─▶ ┐ socket  ┌ hyper server ─▶ toxics ─▶ hyper client ─▶ upstream
//! client ◀─ link "downstream" (TCP toxics) ◀─ ┘  pair   └ hyper server ◀───────────── hyper client ◀─ upstream
//! ```
//!
//! The client's socket keeps its two [`Link`]s, unchanged, so every TCP toxic works on the
//! bytes underneath; their far end is one side of a local stream socket pair instead of
//! the upstream socket. While the proxy has no TCP toxics there are no links: hyper reads
//! and writes the client's socket itself ([`ClientIo`]), and the first TCP toxic (at
//! accept or later) moves the connection onto the pair for good. On the other side, hyper parses the client's HTTP/1.1 requests
//! and forwards them, one at a time in arrival order, over this client's own upstream
//! connection (keep-alive and pipelining are kept; hyper's server answers pipelined
//! requests in order). Bodies are streamed frame by frame in both directions, never
//! buffered whole. An `Upgrade` (WebSocket) or `CONNECT` that the upstream accepts turns
//! the connection into raw bytes both ways. Malformed HTTP gets hyper's 400 and a close.
//!
//! HTTP toxics come from the registry's HTTP chain ([`HttpChain`]): for each request, in
//! chain order (upstream toxics first), a toxic applies when its `match` holds and its
//! toxicity roll (derived from the server seed, proxy, connection, request index and
//! toxic uid) passes; see [`crate::toxics::http::effect`].

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::chain::{mix, roll};
use super::link::{read_clearing, Link, LinkEnd, Read};
use super::Instance;
use crate::model::{Direction, HttpMatch, ToxicKind};
use crate::toxics::http::{effect, Effect};
use crate::toxics::{CloseKind, ToxicRng};

/// One HTTP toxic as the HTTP layer sees it.
#[derive(Debug, Clone)]
pub struct HttpEntry {
    pub uid: u64,
    /// `toxi_http_injected_total{proxy, toxic}`.
    pub injected: Arc<AtomicU64>,
    pub kind: ToxicKind,
    pub direction: Direction,
    pub toxicity: f32,
    pub toxicity_gen: u64,
    pub matcher: Option<HttpMatch>,
    /// `toxi_toxic_activations_total`: one per request the toxic acted on.
    pub activations: Arc<AtomicU64>,
    /// Requests this toxic matched so far, across connections (`http_fail_first`).
    pub hits: Arc<AtomicU64>,
}

/// The HTTP toxics of a proxy, upstream ones first, each direction in chain order.
pub type HttpChain = Arc<Vec<HttpEntry>>;

/// What the connections of an `http` proxy share with the registry.
pub struct HttpLayer {
    pub chain: watch::Sender<HttpChain>,
    /// `toxi_http_requests_total{proxy, status}`.
    pub statuses: Arc<crate::metrics::StatusCounts>,
}

type ResBody = Either<Incoming, Full<Bytes>>;

/// What the request handler shares with the connection.
struct Conn {
    inst: Arc<Instance>,
    chain: watch::Receiver<HttpChain>,
    statuses: Arc<crate::metrics::StatusCounts>,
    /// Per-request rolls derive from this and the request index.
    seed: u64,
    requests: AtomicU64,
    upstream: tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Incoming>>,
    cancel: CancellationToken,
    /// Set by `http_reset`: the client socket closes with RST.
    reset: AtomicBool,
    /// The raw-bytes relay after an upgrade, awaited before the connection ends.
    tunnel: Mutex<Option<JoinHandle<()>>>,
}

/// Serves one client of an `http` proxy over its dialled upstream until both are done.
pub(crate) async fn serve(
    client: TcpStream,
    upstream: TcpStream,
    inst: &Arc<Instance>,
    http: Arc<HttpLayer>,
    seed: u64,
    cancel: &CancellationToken,
    conn: &super::Conn,
) {
    let (near, far, keep) = match socket_pair() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(name = %inst.name, error = %e, "Unable to set up the HTTP layer");
            return;
        }
    };
    let client = Arc::new(client);
    let switch = Arc::new(Switch::default());
    if !no_tcp_toxics(inst) {
        switch.piped.store(true, Ordering::Release);
    }
    let io = ClientIo {
        client: client.clone(),
        far,
        switch: switch.clone(),
        inst: inst.clone(),
    };
    let link = |dir: Direction, src, dst| Link::of(inst, dir, src, dst, cancel, seed, conn);
    // While the proxy has no TCP toxics hyper works on the client's socket itself; once it
    // has (now or later), the two links run between that socket and the pair.
    let links = async {
        let mut chains = [inst.chains[0].subscribe(), inst.chains[1].subscribe()];
        while !switch.piped.load(Ordering::Acquire) {
            let [c0, c1] = &mut chains;
            tokio::select! {
                _ = cancel.cancelled() => return (LinkEnd::Cancelled, LinkEnd::Cancelled),
                _ = switch.notify.notified() => {}
                _ = c0.changed() => {}
                _ = c1.changed() => {}
            }
            if !no_tcp_toxics(inst) {
                switch.to_pipe();
            }
        }
        let up = link(Direction::Upstream, &client, &near);
        let down = link(Direction::Downstream, &near, &client);
        let down = async {
            let end = down.run().await;
            // The HTTP layer is done and its last byte is out: the connection ends.
            cancel.cancel();
            end
        };
        tokio::join!(up.run(), down)
    };
    // The handshake only wraps the socket; nothing is sent until the first request.
    let handshake = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .handshake::<_, Incoming>(TokioIo::new(upstream))
        .await;
    let Ok((sender, up_conn)) = handshake else {
        return;
    };
    let conn = Arc::new(Conn {
        inst: inst.clone(),
        chain: http.chain.subscribe(),
        statuses: http.statuses.clone(),
        seed: mix(seed, 0x4854_5450),
        requests: AtomicU64::new(0),
        upstream: tokio::sync::Mutex::new(sender),
        cancel: cancel.clone(),
        reset: AtomicBool::new(false),
        tunnel: Mutex::new(None),
    });
    let layer = async {
        run_layer(io, up_conn, conn.clone()).await;
        if !switch.piped.load(Ordering::Acquire) {
            // No links: hyper has written its last byte to the client itself.
            cancel.cancel();
            return;
        }
        // hyper has closed its side; `keep` holds the socket open (closing a socket with
        // unread bytes would reset its peer and lose the last response) while the
        // downstream link delivers what is left, then sees end of stream.
        let _ = keep.shutdown(std::net::Shutdown::Write);
        cancel.cancelled().await;
        drop(keep);
    };
    let ((a, b), ()) = tokio::join!(links, layer);
    if conn.reset.load(Ordering::Relaxed) || [a, b].contains(&LinkEnd::Teardown(CloseKind::Reset)) {
        let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
    }
    tracing::debug!(name = %inst.name, listen = %inst.listen, upstream = %inst.upstream,
        upstream_end = ?a, downstream_end = ?b, "Closed client");
}

fn no_tcp_toxics(inst: &Instance) -> bool {
    inst.chains.iter().all(|c| c.borrow().is_empty())
}

/// Whether an `http` connection has left the client's socket for the socket pair.
#[derive(Default)]
struct Switch {
    piped: AtomicBool,
    /// A direct read and a direct write waiting on the client socket.
    wakers: Mutex<[Option<Waker>; 2]>,
    /// Tells the connection to start its links.
    notify: tokio::sync::Notify,
}

impl Switch {
    fn to_pipe(&self) {
        self.piped.store(true, Ordering::Release);
        self.notify.notify_one();
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        wakers.into_iter().flatten().for_each(Waker::wake);
    }

    fn park(&self, i: usize, cx: &Context<'_>) {
        self.wakers.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(cx.waker().clone());
    }
}

/// The client side hyper serves: the client's socket itself while the proxy has no TCP
/// toxics (one hop less per request), the far end of the socket pair from the first TCP
/// toxic on (for good: bytes hyper already read or wrote directly are simply not seen by
/// toxics that came later, as with a link that picks up a new chain).
struct ClientIo {
    client: Arc<TcpStream>,
    far: tokio::net::UnixStream,
    switch: Arc<Switch>,
    inst: Arc<Instance>,
}

impl ClientIo {
    /// Whether to use the client socket now; switches to the pair when a TCP toxic appeared.
    fn direct(&self) -> bool {
        if self.switch.piped.load(Ordering::Acquire) {
            return false;
        }
        if no_tcp_toxics(&self.inst) {
            return true;
        }
        self.switch.to_pipe();
        false
    }

    fn count(&self, dir: Direction, n: usize) {
        let c = &self.inst.stats.directions[dir.index()];
        c.received.fetch_add(n as u64, Ordering::Relaxed);
        c.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.direct() {
                return Pin::new(&mut this.far).poll_read(cx, buf);
            }
            match this.client.poll_read_ready(cx) {
                Poll::Pending => {
                    this.switch.park(0, cx);
                    if this.switch.piped.load(Ordering::Acquire) {
                        continue;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // A short read drains the socket and clears its readiness, so hyper's
                // next read (for the next request) waits for the reactor instead of
                // spending a `recv` that returns `EAGAIN`.
                Poll::Ready(Ok(())) => match read_clearing(&this.client, buf.initialize_unfilled())
                {
                    Ok(Read::Eof) => return Poll::Ready(Ok(())),
                    Ok(Read::Data { n, .. }) => {
                        buf.advance(n);
                        this.count(Direction::Upstream, n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                },
            }
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if !this.direct() {
                return Pin::new(&mut this.far).poll_write(cx, data);
            }
            match this.client.poll_write_ready(cx) {
                Poll::Pending => {
                    this.switch.park(1, cx);
                    if this.switch.piped.load(Ordering::Acquire) {
                        continue;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => match this.client.try_write(data) {
                    Ok(n) => {
                        this.count(Direction::Downstream, n);
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                },
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.switch.piped.load(Ordering::Acquire) {
            return Pin::new(&mut this.far).poll_flush(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.switch.piped.load(Ordering::Acquire) {
            return Pin::new(&mut this.far).poll_shutdown(cx);
        }
        let _ = socket2::SockRef::from(&*this.client).shutdown(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}

/// A connected pair of local stream sockets: the link side (driven by [`Link`], which
/// works on a `TcpStream`'s non-blocking read, write and shutdown, which a Unix stream
/// socket has too) and the side hyper reads and writes.
type Pair = (
    TcpStream,
    tokio::net::UnixStream,
    std::os::unix::net::UnixStream,
);

fn socket_pair() -> std::io::Result<Pair> {
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    let keep = b.try_clone()?;
    let a = std::net::TcpStream::from(std::os::fd::OwnedFd::from(a));
    Ok((
        TcpStream::from_std(a)?,
        tokio::net::UnixStream::from_std(b)?,
        keep,
    ))
}

/// Runs hyper on the far side of the socket pair and on the upstream socket until the
/// client side is done (or the connection is cancelled), then any upgraded tunnel.
async fn run_layer(
    far: ClientIo,
    up_conn: hyper::client::conn::http1::Connection<TokioIo<TcpStream>, Incoming>,
    conn: Arc<Conn>,
) {
    let cancel = conn.cancel.clone();
    let work = async {
        let svc_conn = conn.clone();
        let service = hyper::service::service_fn(move |req| {
            let conn = svc_conn.clone();
            async move { conn.handle(req).await }
        });
        let server = hyper::server::conn::http1::Builder::new()
            .preserve_header_case(true)
            .half_close(true)
            .auto_date_header(false)
            .serve_connection(TokioIo::new(far), service)
            .with_upgrades();
        let up_conn = up_conn.with_upgrades();
        tokio::pin!(server, up_conn);
        let mut upstream_done = false;
        loop {
            tokio::select! {
                r = &mut server => {
                    if let Err(e) = r {
                        tracing::debug!(name = %conn.inst.name, error = %e, "HTTP client connection ended");
                    }
                    break;
                }
                _ = &mut up_conn, if !upstream_done => upstream_done = true,
            }
        }
        // After an upgrade the tunnel carries the connection; the upstream connection
        // must still run until it has handed its socket over.
        let tunnel = conn.tunnel.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tunnel) = tunnel {
            let up_conn = async {
                if !upstream_done {
                    let _ = up_conn.await;
                }
            };
            let _ = tokio::join!(up_conn, tunnel);
        }
    };
    tokio::select! {
        biased;
        _ = cancel.cancelled() => {}
        _ = work => {}
    }
    let tunnel = conn.tunnel.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(t) = tunnel {
        t.abort();
    }
}

/// A response from toxi itself.
fn own_response(status: u16, headers: &[(String, String)], body: Bytes) -> Response<ResBody> {
    let mut res = Response::new(Either::Right(Full::new(body)));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            res.headers_mut().append(n, v);
        }
    }
    res
}

/// Why a request ends the client connection without an answer.
#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by http_reset")
    }
}

impl std::error::Error for Reset {}

impl Conn {
    async fn handle(&self, mut req: Request<Incoming>) -> Result<Response<ResBody>, Reset> {
        let index = self.requests.fetch_add(1, Ordering::Relaxed);
        let chain = self.chain.borrow().clone();
        let req_seed = mix(self.seed, index);
        let (mut before, mut after) = (Duration::ZERO, Duration::ZERO);
        let mut answer = None;
        for entry in chain.iter() {
            if !roll(req_seed, entry.uid, entry.toxicity_gen, entry.toxicity) {
                continue;
            }
            if let Some(m) = &entry.matcher {
                let headers = req.headers();
                let lookup = |name: &str| headers.get_all(name).iter().map(|v| v.as_bytes());
                if !m.matches(req.method().as_str(), req.uri().path(), lookup) {
                    continue;
                }
            }
            let mut rng = ToxicRng::new(mix(req_seed, entry.uid));
            let Some(effect) = effect(&entry.kind, &mut rng, &entry.hits) else {
                continue;
            };
            entry.activations.fetch_add(1, Ordering::Relaxed);
            entry.injected.fetch_add(1, Ordering::Relaxed);
            match effect {
                Effect::Delay(d) if entry.direction == Direction::Upstream => before += d,
                Effect::Delay(d) => after += d,
                terminal => {
                    answer = Some(terminal);
                    break;
                }
            }
        }
        if !before.is_zero() {
            tokio::time::sleep(before).await;
        }
        match answer {
            Some(Effect::Reset) => {
                self.reset.store(true, Ordering::Relaxed);
                self.cancel.cancel();
                return Err(Reset);
            }
            Some(Effect::Respond {
                status,
                headers,
                body,
            }) => {
                // Read the request body away so the connection stays usable for the next
                // request; frames are dropped as they come.
                let mut incoming = req.into_body();
                while let Some(Ok(_)) = incoming.frame().await {}
                if !after.is_zero() {
                    tokio::time::sleep(after).await;
                }
                self.statuses.count(status);
                return Ok(own_response(status, &headers, body));
            }
            _ => {}
        }
        let upgrade = is_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
        let connect = req.method() == hyper::Method::CONNECT;
        let sent = {
            let mut sender = self.upstream.lock().await;
            match sender.ready().await {
                Ok(()) => Ok(sender.send_request(req)),
                Err(e) => Err(e),
            }
        };
        let res = match sent {
            Ok(fut) => fut.await,
            Err(e) => Err(e),
        };
        let mut res = match res {
            Ok(res) => res,
            Err(e) => {
                tracing::debug!(name = %self.inst.name, error = %e, "Upstream request failed");
                self.statuses.count(502);
                let mut res = own_response(502, &[], Bytes::new());
                res.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
                return Ok(res);
            }
        };
        if !after.is_zero() {
            tokio::time::sleep(after).await;
        }
        self.statuses.count(res.status().as_u16());
        let switched = res.status() == StatusCode::SWITCHING_PROTOCOLS
            || (connect && res.status().is_success());
        if let (true, Some(client_side)) = (switched, upgrade) {
            let upstream_side = hyper::upgrade::on(&mut res);
            let cancel = self.cancel.clone();
            let tunnel = tokio::spawn(async move {
                let (Ok(c), Ok(u)) = tokio::join!(client_side, upstream_side) else {
                    cancel.cancel();
                    return;
                };
                let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::io::copy_bidirectional(&mut c, &mut u) => {}
                }
                cancel.cancel();
            });
            *self.tunnel.lock().unwrap_or_else(|e| e.into_inner()) = Some(tunnel);
        }
        Ok(res.map(Either::Left))
    }
}

/// Whether the request asks to leave HTTP: `CONNECT`, or an `Upgrade` header.
fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.method() == hyper::Method::CONNECT || req.headers().contains_key(hyper::header::UPGRADE)
}
