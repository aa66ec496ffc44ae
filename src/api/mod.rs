//! The HTTP/1.1 control API, a byte-level match for Toxiproxy 2.12's.
//!
//! # Routes
//!
//! | method | path | handler | success |
//! |---|---|---|---|
//! | `POST` | `/reset` | `ResetState`: enable every proxy, remove all toxics | 204 |
//! | `GET` | `/proxies` | `ProxyIndex`: object keyed by name, sorted | 200 |
//! | `POST` | `/proxies` | `ProxyCreate` | 201 |
//! | `POST` | `/populate` | `Populate`: validate all, then create-or-replace in order | 201 |
//! | `GET` | `/proxies/{proxy}` | `ProxyShow` | 200 |
//! | `POST`, `PATCH` | `/proxies/{proxy}` | `ProxyUpdate` (POST logs a deprecation warning) | 200 |
//! | `DELETE` | `/proxies/{proxy}` | `ProxyDelete` | 204 |
//! | `GET` | `/proxies/{proxy}/toxics` | `ToxicIndex`: upstream toxics first | 200 |
//! | `POST` | `/proxies/{proxy}/toxics` | `ToxicCreate` | 200 |
//! | `GET` | `/proxies/{proxy}/toxics/{toxic}` | `ToxicShow` | 200 |
//! | `POST`, `PATCH` | `/proxies/{proxy}/toxics/{toxic}` | `ToxicUpdate` (POST logs a warning) | 200 |
//! | `DELETE` | `/proxies/{proxy}/toxics/{toxic}` | `ToxicDelete` | 204 |
//! | `GET` | `/version` | `Version`: `{"version": "X"}\n` | 200 |
//! | any | `/metrics` | `Metrics`, only when [`ApiState::metrics`] is set | 200 |
//! | `GET` | `/proxies/{proxy}/connections` | `ConnectionIndex`: open connections, oldest first | 200 |
//! | `DELETE` | `/proxies/{proxy}/connections/{id}` | `ConnectionDelete`: FIN, or RST with `?reset=true` | 204 |
//! | `GET` | `/events` | `Events`: Server-Sent Events, one JSON object per `data:` line | 200 |
//! | `GET` | `/ui/`, `/ui/app.js`, `/ui/style.css` | `Dashboard`: the embedded dashboard (`/ui` redirects) | 200 |
//!
//! # Behaviour outside the handlers
//!
//! * Unknown path: `404`, `text/plain; charset=utf-8`, `nosniff`, body `404 page not found\n`.
//! * Known path, other method (`HEAD` and `OPTIONS` included): `405`, empty body.
//! * Unclean path (`//proxies`, `/a/../proxies`): `301` to the cleaned path, empty body.
//! * None of those three get a request id or go through the middleware below.
//! * Middleware on matched routes, in order: a fresh `X-Toxiproxy-Request-Id`; the browser
//!   block (`User-Agent` starting with `Mozilla/` → `403 User agent not allowed\n`); the
//!   optional bearer token ([`ApiState::api_token`], every route but `/version`, else
//!   `401 {"error":"unauthorized","status":401}`); the handler, run as its own task under a
//!   25 s limit (`503` with Go's HTML body when it overruns; the handler still finishes);
//!   then a debug-level access log line.
//! * Dashboard requests (`/ui/…`, and any request carrying `X-Toxi-Dashboard: 1`) must
//!   name a `Host` that is an IP literal, `localhost` or one of
//!   [`ApiState::ui_allowed_hosts`] (DNS rebinding), else `403 host not allowed`. Such a
//!   request passes the browser block; the token still applies, except to `/ui/` itself
//!   (the page asks for the token). No route ever grants CORS.
//! * `/events` answers at once and then streams; it is not under the handler time limit.
//! * Errors are `{"error":"…","status":N}\n` as `text/plain; charset=utf-8` with `nosniff`;
//!   `/populate` answers `application/json` without a newline and with `proxies`.
//! * Request bodies over 1 MiB are refused with 413 (`request body too large`).
//!
//! # Hardening
//!
//! Request headers must arrive within 10 s (which also closes idle keep-alive
//! connections), a body within 15 s, and a response write may stall at most 30 s. At most
//! 1024 API connections are served at once; beyond that, accepting waits. Handlers never
//! hold a lock across I/O, so slow clients cannot delay other API calls.

mod connections;
mod events;
mod handlers;
mod io;
mod reqid;
pub mod routes;
mod ui;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::registry::Registry;
use handlers::{Call, Reply};
use routes::{Route, Routing};

pub use reqid::new_request_id;

/// A response body: whole, or streamed (`/events`).
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// What the API serves.
#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<Registry>,
    /// Renders the Prometheus text for `/metrics`; `None` leaves `/metrics` unrouted (404).
    pub metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// When set, every route except `/version` requires `Authorization: Bearer <token>`.
    pub api_token: Option<String>,
    /// Host names (beyond IP literals and `localhost`) that dashboard requests may name
    /// (`-ui-allowed-hosts`).
    pub ui_allowed_hosts: Vec<String>,
}

/// Timeouts and caps of the API server. [`Limits::default`] is what [`serve`] uses.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A handler running longer gets the client a 503 (the reference's 25 s).
    pub handler_timeout: Duration,
    /// Time allowed for a request's headers, counted from when the connection starts
    /// waiting for a request (so it also bounds idle keep-alive).
    pub header_read_timeout: Duration,
    /// Time allowed for reading a request body.
    pub body_read_timeout: Duration,
    /// How long a response write may make no progress.
    pub write_timeout: Duration,
    /// Largest accepted request body, in bytes.
    pub max_body: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handler_timeout: Duration::from_secs(25),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            max_body: 1 << 20,
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves the API on `listener` until `shutdown` is cancelled, then stops accepting, lets
/// in-flight requests finish (up to 30 s) and returns.
pub async fn serve(listener: TcpListener, state: ApiState, shutdown: CancellationToken) {
    serve_with(listener, state, shutdown, Limits::default()).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    listener: TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let tracker = TaskTracker::new();
    let mut backoff = Duration::ZERO;
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => {
                backoff = Duration::ZERO;
                conn
            }
            Err(e) => {
                // Out of file descriptors and the like: back off and retry, as Go's server does.
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                tracing::warn!(error = %e, "API accept error; retrying in {:?}", backoff);
                drop(permit);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let limits = limits.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            serve_connection(stream, peer, state, limits, shutdown).await;
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    let _ = tokio::time::timeout(limits.shutdown_grace, tracker.wait()).await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: ApiState,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
) {
    let io = TokioIo::new(io::TimedIo::new(stream, limits.write_timeout));
    let service = {
        let limits = limits.clone();
        let shutdown = shutdown.clone();
        service_fn(move |req| {
            let state = state.clone();
            let limits = limits.clone();
            let shutdown = shutdown.clone();
            async move { Ok::<_, Infallible>(handle(state, limits, peer, req, shutdown).await) }
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .title_case_headers(true)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::trace!(client = %peer, error = %e, "API connection ended with an error");
            }
            return;
        }
        _ = shutdown.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

fn respond(reply: Reply) -> Response<Body> {
    let mut resp = Response::new(Full::new(reply.body).boxed());
    *resp.status_mut() = reply.status;
    let headers = resp.headers_mut();
    if let Some(ct) = reply.content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if reply.nosniff {
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    for (name, value) in reply.extra {
        headers.append(name, value);
    }
    resp
}

/// Compares without an early exit, so the token cannot be guessed byte by byte by timing.
fn token_matches(given: &[u8], want: &[u8]) -> bool {
    if given.len() != want.len() {
        return false;
    }
    given
        .iter()
        .zip(want)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let scheme = b"Bearer ";
    value.len() > scheme.len()
        && value[..scheme.len()].eq_ignore_ascii_case(scheme)
        && token_matches(&value[scheme.len()..], token.as_bytes())
}

async fn handle(
    state: ApiState,
    limits: Arc<Limits>,
    peer: SocketAddr,
    req: Request<Incoming>,
    shutdown: CancellationToken,
) -> Response<Body> {
    let method = req.method().clone();
    // `OPTIONS *` is answered by Go's server itself.
    if method == Method::OPTIONS && req.uri() == "*" {
        return respond(Reply::empty(200).with_header(header::CONTENT_LENGTH, "0"));
    }
    let routing = routes::route(
        &method,
        req.uri().path(),
        req.uri().query(),
        state.metrics.is_some(),
    );
    let route = match routing {
        Routing::Matched(route) => route,
        Routing::NotFound => return respond(Reply::text_error(404, "404 page not found")),
        Routing::MethodNotAllowed => {
            // Explicit, so that a HEAD request sees it too (as from Go).
            return respond(Reply::empty(405).with_header(header::CONTENT_LENGTH, "0"));
        }
        Routing::Redirect(location) => {
            let mut resp = respond(Reply::empty(301));
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            return resp;
        }
        Routing::BadRequest => {
            let mut reply = Reply::empty(400).with_header(header::CONNECTION, "close");
            reply.content_type = Some(handlers::TEXT_PLAIN);
            reply.body = Bytes::from_static(b"400 Bad Request");
            return respond(reply);
        }
    };
    matched(state, limits, peer, req, route, shutdown).await
}

/// The middleware chain and the handler, for a request that matched a route.
async fn matched(
    state: ApiState,
    limits: Arc<Limits>,
    peer: SocketAddr,
    req: Request<Incoming>,
    route: Route,
    shutdown: CancellationToken,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = reqid::new_request_id();
    let handler = route.name();
    let method = req.method().clone();
    let url = req.uri().to_string();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();

    let is_ui = matches!(route, Route::Ui(_));
    let dashboard = is_ui || ui::is_dashboard_request(&req);
    let mut stream = None;
    let reply = if dashboard && !ui::host_allowed(&req, &state.ui_allowed_hosts) {
        Reply::error("host not allowed", 403)
    } else if !dashboard && user_agent.starts_with("Mozilla/") {
        Reply::text_error(403, "User agent not allowed")
    } else if state
        .api_token
        .as_deref()
        .is_some_and(|token| route != Route::Version && !is_ui && !authorized(&req, token))
    {
        Reply::error("unauthorized", 401).with_header(header::WWW_AUTHENTICATE, "Bearer")
    } else if let Route::Ui(asset) = &route {
        ui::asset(asset)
    } else if route == Route::Events {
        let (reply, body) = events::open(&state, shutdown);
        stream = Some(body);
        reply
    } else {
        let content_length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let expect_continue = req
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let call = Call {
            route,
            method: method.clone(),
            body: req.into_body(),
            content_length,
            expect_continue,
            request_id: request_id.clone(),
        };
        // The handler runs as its own task: it finishes even if the client goes away or
        // the time limit answers first, so no registry operation is cut in half.
        let task = tokio::spawn(handlers::run(state, limits.clone(), call));
        match tokio::time::timeout(limits.handler_timeout, task).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                tracing::error!(request_id = %request_id, error = %e, "API handler failed");
                Reply::error("internal server error", 500)
            }
            Err(_) => Reply::timeout(),
        }
    };

    let status = reply.status.as_u16();
    let size = reply.body.len();
    let mut resp = respond(reply);
    if let Some(body) = stream {
        *resp.body_mut() = body;
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-toxiproxy-request-id", v);
    }
    tracing::debug!(
        request_id = %request_id,
        client = %peer,
        method = %method,
        url = %url,
        user_agent = %user_agent,
        status,
        size,
        duration = started.elapsed().as_secs_f64() * 1000.0,
        handler,
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"secret1", b"secret"));
        assert!(!token_matches(b"", b"secret"));
    }
}
