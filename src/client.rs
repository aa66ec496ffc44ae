//! A typed async client for the Toxiproxy control API (works against toxi and Toxiproxy 2.x).
//!
//! Every route has one method: [`Client::proxies`], [`Client::create_proxy`],
//! [`Client::proxy`], [`Client::update_proxy`] (PATCH), [`Client::save_proxy`] (POST of the
//! whole object, like the Go client's `Proxy.Save`), [`Client::delete_proxy`],
//! [`Client::populate`], [`Client::reset`], [`Client::version`], [`Client::toxics`],
//! [`Client::add_toxic`], [`Client::toxic`], [`Client::update_toxic`] and
//! [`Client::remove_toxic`].
//!
//! Each request opens its own HTTP/1.1 connection (hyper's `client::conn::http1` over a
//! tokio `TcpStream`), so there is no pool to keep alive and nothing to shut down. The
//! whole exchange, from DNS lookup to the last body byte, is bounded by a timeout (30 s by
//! default, as in the Go client).
//!
//! Errors are a [`ClientError`]. Its `Display` reproduces the texts of the Go client that
//! `toxiproxy-cli` prints, so a program built on this module can print the same messages:
//! `HTTP 404: proxy not found`, or
//! `fail to request: Get "http://localhost:8474/proxies": dial tcp 127.0.0.1:8474: connect: connection refused`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), toxi::client::ClientError> {
//! use toxi::client::{Client, NewProxy, NewToxic};
//!
//! let client = Client::new("localhost:8474"); // "http://" is added when missing
//! client
//!     .create_proxy(&NewProxy::new("redis", "127.0.0.1:26379", "localhost:6379"))
//!     .await?;
//! let toxic = client
//!     .add_toxic("redis", &NewToxic::new("latency").upstream().attribute("latency", 250))
//!     .await?;
//! assert_eq!(toxic.name, "latency_upstream");
//! for (name, proxy) in client.proxies().await? {
//!     println!("{name}: {} -> {} ({} toxics)", proxy.listen, proxy.upstream, proxy.toxics.len());
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Method, Request};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::net::TcpStream;

use crate::gocompat::{errno_text, lower_first, split_url_host};
use crate::model::json::{self, DecodeError};
use crate::toxics;

/// The API address used when none is configured.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:8474";

/// The time allowed for one whole request, as in the Go client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// When this environment variable is set and not empty, every request carries
/// `Authorization: Bearer <value>`.
pub const TOKEN_ENV: &str = "TOXI_API_TOKEN";

// ---------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The `match` of an HTTP toxic, as sent: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    /// The request method, compared exactly (`POST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// A glob on the request path (`*`, `?`, `[a-z]`, `[!a]`, `\` escapes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Header name (case-insensitive) to the exact value one of its fields must have.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub headers: BTreeMap<String, String>,
}

impl Match {
    /// A match on nothing yet (it matches every request until a condition is added).
    pub fn new() -> Match {
        Match::default()
    }

    pub fn method(mut self, method: impl Into<String>) -> Match {
        self.method = Some(method.into());
        self
    }

    pub fn path(mut self, glob: impl Into<String>) -> Match {
        self.path = Some(glob.into());
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Match {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// The body of `POST /proxies` and one entry of `POST /populate`: the server's
/// [`ProxyInput`](crate::model::ProxyInput) plus, for `/populate`, the toxics the proxy
/// should end up with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewProxy {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    /// toxi's own, for `/populate`: the proxy's toxics become exactly these. `None` leaves
    /// them as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toxics: Option<Vec<NewToxic>>,
    /// toxi's own: `"http"` parses requests; `None` (not sent) is a `tcp` proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

impl NewProxy {
    /// An enabled proxy.
    pub fn new(
        name: impl Into<String>,
        listen: impl Into<String>,
        upstream: impl Into<String>,
    ) -> NewProxy {
        NewProxy {
            name: name.into(),
            listen: listen.into(),
            upstream: upstream.into(),
            enabled: true,
            toxics: None,
            protocol: None,
        }
    }

    /// Sets whether the proxy starts enabled (listening).
    pub fn enabled(mut self, enabled: bool) -> NewProxy {
        self.enabled = enabled;
        self
    }

    /// For `/populate`: the proxy's toxics become exactly `toxics`.
    pub fn toxics(mut self, toxics: Vec<NewToxic>) -> NewProxy {
        self.toxics = Some(toxics);
        self
    }

    /// Sets the protocol: `"http"` for HTTP toxics (toxi only; Toxiproxy ignores it).
    pub fn protocol(mut self, protocol: impl Into<String>) -> NewProxy {
        self.protocol = Some(protocol.into());
        self
    }
}
/// A proxy as the API returns it: the server's own type. Responses are decoded by
/// [`model::json`](crate::model::json), the decoder the server uses for requests, so a
/// malformed answer reads as Go's client would report it. Unknown keys (such as
/// Toxiproxy's `"Logger":{}`) are ignored, and a `null` toxic list reads as empty.
pub use crate::model::ProxySnapshot as Proxy;
/// A toxic as the API returns it, with typed attributes of a type the catalog declares.
pub use crate::model::ToxicSnapshot as Toxic;

/// The body of `PATCH /proxies/{proxy}`: fields left `None` keep their current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProxyUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A toxic's schedule to send, in milliseconds (toxi's own; beyond.md §1.1). Responses
/// carry the server's [`model::Schedule`](crate::model::Schedule) in
/// [`Toxic::schedule`], with whether the toxic acts now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The toxic passes data untouched until this long after it was added or scheduled.
    pub start_after: u64,
    /// How long it is active (each period with `every`); without `every` it then removes
    /// itself. `None`: for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    /// The period of a flapping toxic (needs `duration < every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
}

/// The body of `POST /proxies/{proxy}/toxics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewToxic {
    /// An empty name lets the server choose `<type>_<stream>`.
    pub name: String,
    pub r#type: String,
    /// `None` means the server default, `downstream`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    pub toxicity: f32,
    pub attributes: Map<String, Value>,
    /// toxi's own: when the toxic acts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// For HTTP toxics: which requests it applies to (not sent when `None`).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub r#match: Option<Match>,
}

impl NewToxic {
    /// A toxic of the given type with the server's default name and stream, toxicity 1 and
    /// no attributes (the server fills in each attribute's default, 0).
    pub fn new(r#type: impl Into<String>) -> NewToxic {
        NewToxic {
            name: String::new(),
            r#type: r#type.into(),
            stream: None,
            toxicity: 1.0,
            attributes: Map::new(),
            schedule: None,
            r#match: None,
        }
    }

    /// Sets the toxic's schedule.
    pub fn schedule(mut self, schedule: Schedule) -> NewToxic {
        self.schedule = Some(schedule);
        self
    }

    /// Applies an HTTP toxic only to the requests `m` matches.
    pub fn matching(mut self, m: Match) -> NewToxic {
        self.r#match = Some(m);
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> NewToxic {
        self.name = name.into();
        self
    }

    pub fn stream(mut self, stream: impl Into<String>) -> NewToxic {
        self.stream = Some(stream.into());
        self
    }

    pub fn upstream(self) -> NewToxic {
        self.stream("upstream")
    }

    pub fn downstream(self) -> NewToxic {
        self.stream("downstream")
    }

    pub fn toxicity(mut self, toxicity: f32) -> NewToxic {
        self.toxicity = toxicity;
        self
    }

    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> NewToxic {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// The body of `PATCH /proxies/{proxy}/toxics/{toxic}`. The server merges `attributes`
/// into the current ones and replaces `toxicity` only when it is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToxicUpdate {
    pub attributes: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toxicity: Option<f32>,
    /// toxi's own: `Some(Some(_))` sets the schedule (its phases start over), `Some(None)`
    /// clears it (sent as `null`), `None` keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Option<Schedule>>,
    /// `Some(Some(m))` replaces an HTTP toxic's match, `Some(None)` sends `null` and removes
    /// it, `None` keeps it.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub r#match: Option<Option<Match>>,
}

impl ToxicUpdate {
    pub fn new() -> ToxicUpdate {
        ToxicUpdate::default()
    }

    pub fn toxicity(mut self, toxicity: f32) -> ToxicUpdate {
        self.toxicity = Some(toxicity);
        self
    }

    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> ToxicUpdate {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Replaces the match of an HTTP toxic.
    pub fn matching(mut self, m: Match) -> ToxicUpdate {
        self.r#match = Some(Some(m));
        self
    }

    /// Removes the match: the toxic applies to every request again.
    pub fn match_all(mut self) -> ToxicUpdate {
        self.r#match = Some(None);
        self
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a request failed before an HTTP response arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// The endpoint is not a usable `http://` URL (for example it has no host).
    InvalidUrl,
    /// `https://` was asked for; this client has no TLS support.
    UnsupportedScheme,
    /// The host name did not resolve.
    Resolve,
    /// No resolved address accepted a connection.
    Connect,
    /// The request did not finish within the timeout.
    Timeout,
    /// The connection broke while sending the request or reading the response.
    Io,
}

/// A failed API call.
///
/// `Display` gives the Go client's wording, which `toxiproxy-cli` prints after its own
/// context (`Failed to retrieve proxy x: <this>`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No HTTP response: `fail to request: Get "<url>": <reason>`.
    #[error("fail to request: {method} \"{url}\": {reason}")]
    Transport {
        kind: TransportKind,
        /// The method as Go spells it in errors: `Get`, `Post`, `Patch`, `Delete`.
        method: String,
        /// The URL of the request (any password replaced by `***`).
        url: String,
        reason: String,
    },
    /// A non-2xx answer with a Toxiproxy error body `{"error":"…","status":N}`:
    /// `HTTP <status>: <message>`, where `status` is the one in the body.
    #[error("HTTP {status}: {message}")]
    Api {
        /// The status line's code.
        http_status: u16,
        /// The `status` field of the body (normally equal to `http_status`).
        status: i64,
        /// The `error` field of the body.
        message: String,
    },
    /// A non-2xx answer whose body is not an error object (for example the router's
    /// `404 page not found`). `detail` is what Go's JSON decoder says about the body, which
    /// is what the Go client reports.
    #[error("{detail}")]
    UnexpectedBody {
        http_status: u16,
        detail: String,
        body: String,
    },
    /// A 2xx answer whose body could not be decoded.
    #[error("{detail}")]
    Decode { http_status: u16, detail: String },
}

impl ClientError {
    /// The HTTP status of the answer, if one arrived.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ClientError::Api { http_status, .. }
            | ClientError::UnexpectedBody { http_status, .. }
            | ClientError::Decode { http_status, .. } => Some(*http_status),
            ClientError::Transport { .. } => None,
        }
    }

    /// The server's `error` message, for [`ClientError::Api`].
    pub fn api_message(&self) -> Option<&str> {
        match self {
            ClientError::Api { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The transport failure kind, if no answer arrived.
    pub fn transport_kind(&self) -> Option<TransportKind> {
        match self {
            ClientError::Transport { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// True when the server could not be reached at all (bad address, DNS failure, refused
    /// connection, timeout), as opposed to a server that answered with an error.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self.transport_kind(),
            Some(
                TransportKind::Resolve
                    | TransportKind::Connect
                    | TransportKind::Timeout
                    | TransportKind::InvalidUrl
                    | TransportKind::UnsupportedScheme
            )
        )
    }

    /// True for an API error with this HTTP status.
    pub fn is_status(&self, status: u16) -> bool {
        self.http_status() == Some(status)
    }
}

/// Turns a non-2xx body into the error the Go client would report.
///
/// The Go client JSON-decodes the first value of the body into `{"error","status"}`; a body
/// that is not an object yields the decoder's own message instead (`EOF` for an empty body,
/// `invalid character 'U' looking for beginning of value` for plain text, ...).
fn error_from_body(http_status: u16, body: &[u8]) -> ClientError {
    match json::decode_api_error(body) {
        Ok(Some(e)) => ClientError::Api {
            http_status,
            status: e.status,
            message: e.message,
        },
        Ok(None) => unexpected_body(
            http_status,
            body,
            format!("Unexpected response code {http_status}"),
        ),
        Err(e) => unexpected_body(http_status, body, e.0),
    }
}

fn unexpected_body(http_status: u16, body: &[u8], detail: String) -> ClientError {
    ClientError::UnexpectedBody {
        http_status,
        detail,
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

/// A handle on one Toxiproxy API. Cheap to clone; holds no connections.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: String,
    user_agent: String,
    timeout: Duration,
    token: Option<String>,
}

/// A parsed `http://` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// `host:port` as written (the `Host` header).
    authority: String,
    /// The host to resolve, without IPv6 brackets.
    host: String,
    port: u16,
    /// Path prefix before the API routes, without a trailing slash (usually empty).
    prefix: String,
    /// `user:password` from the URL, sent as basic authentication.
    userinfo: Option<String>,
}

impl Client {
    /// A client for the API at `endpoint` (`http://host:port`, or `host:port`, to which
    /// `http://` is added). Trailing slashes are ignored. The address is checked when a
    /// request is made, so a bad one shows up as a [`TransportKind::InvalidUrl`] error.
    ///
    /// The bearer token comes from [`TOKEN_ENV`] when it is set.
    pub fn new(endpoint: &str) -> Client {
        let mut endpoint = endpoint.to_string();
        if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
            endpoint.insert_str(0, "http://");
        }
        while endpoint.ends_with('/') && !endpoint.ends_with("://") {
            endpoint.pop();
        }
        let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
        Client {
            endpoint,
            user_agent: format!("toxi/{}", env!("CARGO_PKG_VERSION")),
            timeout: DEFAULT_TIMEOUT,
            token,
        }
    }

    /// Sets the `User-Agent` header (default `toxi/<version>`). Toxiproxy servers refuse
    /// agents starting with `Mozilla/`.
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Client {
        self.user_agent = user_agent.into();
        self
    }

    /// Sets the time allowed for each whole request (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Sets or clears the bearer token sent as `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token;
        self
    }

    /// The base URL requests go to, with its scheme (e.g. `http://localhost:8474`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `GET /version`: the server's version string (`2.12.0`). Also understands the plain
    /// text answer of Toxiproxy 2.5 and older.
    pub async fn version(&self) -> Result<String, ClientError> {
        let (status, body) = self.call(Method::GET, "/version", None).await?;
        match json::decode_version(&body) {
            Ok(v) => Ok(v),
            Err(e) => {
                let text = String::from_utf8_lossy(&body).trim().to_string();
                if !text.is_empty() && !text.starts_with('{') {
                    Ok(text)
                } else {
                    Err(decode_error(status, e))
                }
            }
        }
    }

    /// `GET /proxies`: every proxy, keyed (and so sorted) by name.
    pub async fn proxies(&self) -> Result<BTreeMap<String, Proxy>, ClientError> {
        self.get("/proxies", json::decode_proxy_index).await
    }

    /// `POST /proxies`: creates a proxy and, if enabled, starts it. Returns the proxy as
    /// created, with its bound `listen` address.
    pub async fn create_proxy(&self, proxy: &NewProxy) -> Result<Proxy, ClientError> {
        self.send(
            Method::POST,
            "/proxies",
            to_json(proxy)?,
            json::decode_proxy_response,
        )
        .await
    }

    /// `GET /proxies/{proxy}`.
    pub async fn proxy(&self, name: &str) -> Result<Proxy, ClientError> {
        self.get(&proxy_path(name), json::decode_proxy_response)
            .await
    }

    /// `PATCH /proxies/{proxy}`: changes listen, upstream or enabled.
    pub async fn update_proxy(
        &self,
        name: &str,
        update: &ProxyUpdate,
    ) -> Result<Proxy, ClientError> {
        let body = to_json(update)?;
        self.send(
            Method::PATCH,
            &proxy_path(name),
            body,
            json::decode_proxy_response,
        )
        .await
    }

    /// `POST /proxies/{proxy.name}` with the whole object, as the Go client's `Proxy.Save`
    /// does for an existing proxy (`toxiproxy-cli toggle` uses it).
    pub async fn save_proxy(&self, proxy: &Proxy) -> Result<Proxy, ClientError> {
        let body = json::proxy_json(proxy).into_bytes();
        self.send(
            Method::POST,
            &proxy_path(&proxy.name),
            body,
            json::decode_proxy_response,
        )
        .await
    }

    /// `DELETE /proxies/{proxy}`: stops the proxy, closes its connections and removes it.
    pub async fn delete_proxy(&self, name: &str) -> Result<(), ClientError> {
        self.call(Method::DELETE, &proxy_path(name), None).await?;
        Ok(())
    }

    /// `POST /populate`: creates or replaces the given proxies; returns them in order.
    pub async fn populate(&self, proxies: &[NewProxy]) -> Result<Vec<Proxy>, ClientError> {
        let body = to_json(proxies)?;
        self.send(
            Method::POST,
            "/populate",
            body,
            json::decode_populate_response,
        )
        .await
    }

    /// `POST /reset`: re-enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<(), ClientError> {
        self.call(Method::POST, "/reset", Some(Vec::new())).await?;
        Ok(())
    }

    /// `GET /proxies/{proxy}/toxics`: upstream toxics first, each in chain order.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, ClientError> {
        self.get(
            &format!("{}/toxics", proxy_path(proxy)),
            json::decode_toxics_response,
        )
        .await
    }

    /// `POST /proxies/{proxy}/toxics`: adds a toxic to every current and future connection.
    pub async fn add_toxic(&self, proxy: &str, toxic: &NewToxic) -> Result<Toxic, ClientError> {
        let path = format!("{}/toxics", proxy_path(proxy));
        self.send(
            Method::POST,
            &path,
            to_json(toxic)?,
            json::decode_toxic_response,
        )
        .await
    }

    /// `GET /proxies/{proxy}/toxics/{toxic}`.
    pub async fn toxic(&self, proxy: &str, toxic: &str) -> Result<Toxic, ClientError> {
        self.get(&toxic_path(proxy, toxic), json::decode_toxic_response)
            .await
    }

    /// `PATCH /proxies/{proxy}/toxics/{toxic}`: merges attributes, optionally sets toxicity.
    pub async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        update: &ToxicUpdate,
    ) -> Result<Toxic, ClientError> {
        let body = to_json(update)?;
        self.send(
            Method::PATCH,
            &toxic_path(proxy, toxic),
            body,
            json::decode_toxic_response,
        )
        .await
    }

    /// `DELETE /proxies/{proxy}/toxics/{toxic}`.
    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ClientError> {
        self.call(Method::DELETE, &toxic_path(proxy, toxic), None)
            .await?;
        Ok(())
    }

    /// A GET whose 2xx body `decode` reads with the server's toxic catalog.
    async fn get<T>(&self, path: &str, decode: Decoder<T>) -> Result<T, ClientError> {
        let (status, body) = self.call(Method::GET, path, None).await?;
        decode(&body, toxics::def).map_err(|e| decode_error(status, e))
    }

    /// A request with a JSON body whose 2xx answer `decode` reads.
    async fn send<T>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        decode: Decoder<T>,
    ) -> Result<T, ClientError> {
        let (status, answer) = self.call(method, path, Some(body)).await?;
        decode(&answer, toxics::def).map_err(|e| decode_error(status, e))
    }

    /// Sends one request and returns the status and body of a 2xx answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), ClientError> {
        let url = format!("{}{}", self.endpoint, path);
        let transport = |kind: TransportKind, reason: String| ClientError::Transport {
            kind,
            method: go_method_name(&method),
            url: redact_password(&url),
            reason,
        };
        if self.endpoint.starts_with("https://") {
            return Err(transport(
                TransportKind::UnsupportedScheme,
                "https is not supported by this client (it has no TLS); use an http:// address"
                    .to_string(),
            ));
        }
        let target =
            parse_target(&self.endpoint).map_err(|r| transport(TransportKind::InvalidUrl, r))?;
        let exchange = self.exchange(&target, &method, path, body);
        let (status, bytes) =
            match tokio::time::timeout(self.timeout, exchange).await {
                Ok(Ok(answer)) => answer,
                Ok(Err((kind, reason))) => return Err(transport(kind, reason)),
                Err(_) => return Err(transport(
                    TransportKind::Timeout,
                    "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                        .to_string(),
                )),
            };
        if (200..300).contains(&status) {
            Ok((status, bytes))
        } else {
            Err(error_from_body(status, &bytes))
        }
    }

    async fn exchange(
        &self,
        target: &Target,
        method: &Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), (TransportKind, String)> {
        let stream = connect(&target.host, target.port).await?;
        let local = stream.local_addr().ok();
        let peer = stream.peer_addr().ok();
        let io_reason = |e: hyper::Error| (TransportKind::Io, hyper_reason(&e, local, peer));

        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(io_reason)?;
        // The connection future does the socket I/O; it ends when the exchange is over and
        // `sender` is dropped.
        let driver = tokio::spawn(connection);

        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{}", target.prefix, path))
            .header(header::HOST, &target.authority)
            .header(header::USER_AGENT, &self.user_agent)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        } else if let Some(userinfo) = &target.userinfo {
            request = request.header(
                header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(percent_decode(userinfo))),
            );
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || matches!(*method, Method::POST | Method::PATCH | Method::PUT) {
            request = request.header(header::CONTENT_LENGTH, body.len());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| (TransportKind::InvalidUrl, e.to_string()))?;

        let response = sender.send_request(request).await.map_err(io_reason)?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(io_reason)?
            .to_bytes();
        drop(sender);
        driver.abort();
        Ok((status, bytes))
    }
}

/// A response decoder of `model::json`.
type Decoder<T> = fn(&[u8], json::FindDef) -> Result<T, DecodeError>;

fn decode_error(http_status: u16, e: DecodeError) -> ClientError {
    ClientError::Decode {
        http_status,
        detail: e.0,
    }
}

/// A body of toxi's own routes that does not decode.
fn serde_error(http_status: u16, e: &serde_json::Error) -> ClientError {
    ClientError::Decode {
        http_status,
        detail: format!("json: {e}"),
    }
}

/// A request body.
fn to_json<B: Serialize + ?Sized>(body: &B) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(body).map_err(|e| ClientError::Decode {
        http_status: 0,
        detail: format!("json: {e}"),
    })
}

/// Connects to the first resolved address that accepts, reporting failures as Go does
/// (`dial tcp 127.0.0.1:8474: connect: connection refused`).
async fn connect(host: &str, port: u16) -> Result<TcpStream, (TransportKind, String)> {
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            return Err((
                TransportKind::Resolve,
                format!("dial tcp: lookup {host}: {}", lookup_reason(&e)),
            ))
        }
    };
    if addrs.is_empty() {
        return Err((
            TransportKind::Resolve,
            format!("dial tcp: lookup {host}: no such host"),
        ));
    }
    let mut first_error = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                first_error
                    .get_or_insert_with(|| format!("dial tcp {addr}: connect: {}", errno_text(&e)));
            }
        }
    }
    Err((
        TransportKind::Connect,
        first_error.unwrap_or_else(|| format!("dial tcp {host}:{port}: connect failed")),
    ))
}

fn lookup_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text);
    if text.contains("not known") || text.contains("No address associated") {
        "no such host".to_string()
    } else {
        lower_first(text)
    }
}

fn hyper_reason(e: &hyper::Error, local: Option<SocketAddr>, peer: Option<SocketAddr>) -> String {
    if e.is_incomplete_message() {
        return "EOF".to_string();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let op = if e.is_user() { "write" } else { "read" };
            return match (local, peer) {
                (Some(l), Some(p)) => format!("{op} tcp {l}->{p}: {op}: {}", errno_text(io)),
                _ => errno_text(io),
            };
        }
        source = s.source();
    }
    format!("net/http: HTTP/1.x transport connection broken: {e}")
}

/// Go's `url.Error` spelling of a method: `Get`, `Post`, `Patch`, `Delete`.
fn go_method_name(method: &Method) -> String {
    let m = method.as_str();
    let mut out = String::with_capacity(m.len());
    for (i, c) in m.chars().enumerate() {
        if i == 0 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn parse_target(endpoint: &str) -> Result<Target, String> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("unsupported protocol scheme in {endpoint:?}"))?;
    let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, prefix) = rest.split_at(cut);
    if prefix.contains(['?', '#']) {
        return Err(format!(
            "the API address {endpoint:?} must not contain a query or fragment"
        ));
    }
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(authority[..i].to_string()), &authority[i + 1..]),
        None => (None, authority),
    };
    if hostport.is_empty() {
        return Err("http: no Host in request URL".to_string());
    }
    let (host, port) = split_url_host(hostport)?;
    if host.is_empty() {
        return Err("http: no Host in request URL".to_string());
    }
    let port = match port {
        None | Some("") => 80,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("invalid port \":{p}\" after host"))?,
    };
    let hostport = hostport.strip_suffix(':').unwrap_or(hostport);
    Ok(Target {
        authority: hostport.to_string(),
        host: host.to_string(),
        port,
        prefix: prefix.to_string(),
        userinfo,
    })
}

fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end + 3],
                &authority[..colon],
                &rest[at..]
            ),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `/proxies/{name}` with the name percent-encoded.
fn proxy_path(name: &str) -> String {
    format!("/proxies/{}", encode_segment(name))
}

fn toxic_path(proxy: &str, toxic: &str) -> String {
    format!("{}/toxics/{}", proxy_path(proxy), encode_segment(toxic))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so any name (with
/// spaces, slashes, `?`, non-ASCII ...) stays one path segment.
pub fn encode_segment(segment: &str) -> String {
    const SEGMENT_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(segment, SEGMENT_ESCAPED).to_string()
}

/// `%XX` escapes decoded; a malformed escape stays as written.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_scheme_and_trims_slashes() {
        assert_eq!(
            Client::new("localhost:8474").endpoint(),
            "http://localhost:8474"
        );
        assert_eq!(Client::new("http://h:1/").endpoint(), "http://h:1");
        assert_eq!(Client::new("https://h:1").endpoint(), "https://h:1");
    }

    #[test]
    fn parses_targets() {
        let t = parse_target("http://127.0.0.1:8474").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.prefix.as_str()),
            ("127.0.0.1", 8474, "")
        );
        let t = parse_target("http://[::1]:9/api").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.prefix.as_str()),
            ("::1", 9, "/api")
        );
        assert_eq!(t.authority, "[::1]:9");
        let t = parse_target("http://example").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example", 80));
        let t = parse_target("http://u:p@h:2").unwrap();
        assert_eq!(t.userinfo.as_deref(), Some("u:p"));
        assert_eq!(
            parse_target("http://").unwrap_err(),
            "http: no Host in request URL"
        );
        assert!(parse_target("http://h:99999").is_err());
    }

    #[test]
    fn encodes_segments() {
        assert_eq!(encode_segment("chaos"), "chaos");
        assert_eq!(encode_segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert_eq!(encode_segment(""), "");
        assert_eq!(toxic_path("p", ""), "/proxies/p/toxics/");
    }

    #[test]
    fn api_error_bodies() {
        let e = error_from_body(404, b"{\"error\":\"proxy not found\",\"status\":404}\n");
        assert_eq!(e.to_string(), "HTTP 404: proxy not found");
        assert_eq!(e.http_status(), Some(404));
        assert_eq!(e.api_message(), Some("proxy not found"));
        let e = error_from_body(500, b"{\"error\":\"x\",\"status\":500,\"proxies\":null}");
        assert_eq!(e.to_string(), "HTTP 500: x");
    }

    #[test]
    fn non_json_error_bodies_use_go_decoder_messages() {
        let cases: [(&[u8], &str); 6] = [
            (
                b"404 page not found\n",
                "json: cannot unmarshal number into Go value of type toxiproxy.ApiError",
            ),
            (b"", "EOF"),
            (
                b"User agent not allowed\n",
                "invalid character 'U' looking for beginning of value",
            ),
            (
                b"<html>",
                "invalid character '<' looking for beginning of value",
            ),
            (
                b"\"s\"",
                "json: cannot unmarshal string into Go value of type toxiproxy.ApiError",
            ),
            (b"{\"error\":", "unexpected EOF"),
        ];
        for (body, want) in cases {
            assert_eq!(error_from_body(404, body).to_string(), want, "{body:?}");
        }
    }

    #[test]
    fn transport_error_text() {
        let e = ClientError::Transport {
            kind: TransportKind::Connect,
            method: go_method_name(&Method::GET),
            url: "http://127.0.0.1:1/proxies".into(),
            reason: "dial tcp 127.0.0.1:1: connect: connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "fail to request: Get \"http://127.0.0.1:1/proxies\": dial tcp 127.0.0.1:1: connect: connection refused"
        );
        assert!(e.is_unreachable());
        assert_eq!(go_method_name(&Method::PATCH), "Patch");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_password("http://u:secret@h:1/x"),
            "http://u:***@h:1/x"
        );
        assert_eq!(redact_password("http://h:1/x"), "http://h:1/x");
    }

    #[test]
    fn percent_decodes_userinfo() {
        assert_eq!(percent_decode("a%40b"), "a@b");
        assert_eq!(percent_decode("50%"), "50%");
    }

    #[test]
    fn decodes_proxies_with_logger_and_null_toxics() {
        let proxy = |body: &str| json::decode_proxy_response(body.as_bytes(), toxics::def);
        let p = proxy(
            r#"{"name":"a","listen":"127.0.0.1:1","upstream":"x:1","enabled":true,"Logger":{},"toxics":null}"#,
        )
        .unwrap();
        assert!(p.toxics.is_empty());
        let body = r#"{"name":"a","listen":"l","upstream":"u","enabled":false,"Logger":{},"toxics":[{"attributes":{"latency":250,"jitter":0},"name":"latency_upstream","type":"latency","stream":"upstream","toxicity":1}]}"#;
        let p = proxy(body).unwrap();
        assert_eq!(p.toxics[0].kind.type_name(), "latency");
        assert_eq!(p.toxics[0].kind.int("latency"), 250);
        // What the server encodes, the client decodes back to the same value.
        assert_eq!(json::proxy_json(&p), body);
        // Errors read as Go's decoder reports them.
        assert_eq!(
            proxy(r#"{"name":1}"#).unwrap_err().0,
            "json: cannot unmarshal number into Go struct field Proxy.name of type string"
        );
        assert_eq!(
            proxy(r#"{"toxics":[{"type":"latency","attributes":{"latency":"x"}}]}"#)
                .unwrap_err()
                .0,
            "json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type int64"
        );
        assert_eq!(
            proxy(r#"{"toxics":[{"type":"nope"}]}"#).unwrap_err().0,
            "unknown toxic type \"nope\""
        );
        assert_eq!(proxy("").unwrap_err().0, "EOF");
        assert_eq!(proxy("{").unwrap_err().0, "unexpected EOF");
        let index =
            json::decode_proxy_index(format!(r#"{{"a":{body}}}"#).as_bytes(), toxics::def).unwrap();
        assert_eq!(index["a"], p);
    }

    #[test]
    fn request_bodies() {
        let t = NewToxic::new("latency")
            .upstream()
            .attribute("latency", 250)
            .toxicity(0.5);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"name":"","type":"latency","stream":"upstream","toxicity":0.5,"attributes":{"latency":250}}"#
        );
        let u = ToxicUpdate::new().toxicity(1.0);
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            r#"{"attributes":{},"toxicity":1.0}"#
        );
        let p = ProxyUpdate {
            enabled: Some(false),
            ..ProxyUpdate::default()
        };
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"enabled":false}"#);
    }

    #[test]
    fn protocol_and_match_are_sent_and_read_only_when_set() {
        let plain = serde_json::to_string(&NewProxy::new("a", "l", "u")).unwrap();
        assert_eq!(
            plain,
            r#"{"name":"a","listen":"l","upstream":"u","enabled":true}"#
        );
        let http = serde_json::to_string(&NewProxy::new("a", "l", "u").protocol("http")).unwrap();
        assert_eq!(
            http,
            r#"{"name":"a","listen":"l","upstream":"u","enabled":true,"protocol":"http"}"#
        );
        let t = NewToxic::new("http_abort").toxicity(0.3).matching(
            Match::new()
                .method("POST")
                .path("/api/*")
                .header("x-a", "1"),
        );
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"name":"","type":"http_abort","toxicity":0.3,"attributes":{},"match":{"method":"POST","path":"/api/*","headers":{"x-a":"1"}}}"#
        );
        assert_eq!(
            serde_json::to_string(&ToxicUpdate::new().match_all()).unwrap(),
            r#"{"attributes":{},"match":null}"#
        );
        assert_eq!(
            serde_json::to_string(&ToxicUpdate::new().matching(Match::new().path("/x"))).unwrap(),
            r#"{"attributes":{},"match":{"path":"/x"}}"#
        );
        let p = json::decode_proxy_response(
            br#"{"name":"a","listen":"l","upstream":"u","enabled":true,"protocol":"http","toxics":[{"name":"x","type":"http_reset","stream":"downstream","toxicity":1,"attributes":{},"match":{"path":"/a"}}]}"#,
            toxics::def,
        )
        .unwrap();
        assert_eq!(p.protocol, crate::model::Protocol::Http);
        assert_eq!(
            p.toxics[0].matcher.as_ref().and_then(|m| m.path.as_deref()),
            Some("/a")
        );
        // Re-encoding a Toxiproxy proxy adds nothing.
        let toxiproxy = r#"{"name":"a","listen":"l","upstream":"u","enabled":true,"toxics":[{"name":"x","type":"noop","stream":"downstream","toxicity":1,"attributes":{}}]}"#;
        let p = json::decode_proxy_response(toxiproxy.as_bytes(), toxics::def).unwrap();
        assert_eq!(p.protocol, crate::model::Protocol::Tcp);
        assert!(!json::proxy_json(&p).contains("protocol"));
        assert!(!json::proxy_json(&p).contains("match"));
    }

    #[tokio::test]
    async fn refused_connection_reads_like_go() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = Client::new(&addr.to_string());
        let err = client.proxies().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("fail to request: Get \"http://{addr}/proxies\": dial tcp {addr}: connect: connection refused")
        );
        assert_eq!(err.transport_kind(), Some(TransportKind::Connect));
    }

    #[tokio::test]
    async fn https_is_refused_clearly() {
        let err = Client::new("https://127.0.0.1:1")
            .proxies()
            .await
            .unwrap_err();
        assert_eq!(err.transport_kind(), Some(TransportKind::UnsupportedScheme));
        assert!(err.to_string().starts_with(
            "fail to request: Get \"https://127.0.0.1:1/proxies\": https is not supported"
        ));
    }

    #[tokio::test]
    async fn empty_host() {
        let err = Client::new("").proxies().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "fail to request: Get \"http:///proxies\": http: no Host in request URL"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Live traffic (toxi's own routes, beyond.md §3): connections and the event stream.

/// One open connection of a proxy (`GET /proxies/{proxy}/connections`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// Increasing per proxy; the listing is oldest first.
    pub id: u64,
    /// The client's address (`127.0.0.1:51234`).
    pub client: String,
    /// RFC 3339 in UTC with milliseconds.
    pub opened_at: String,
    /// Bytes forwarded so far, per direction.
    pub bytes: ConnectionBytes,
    /// Every toxic of the proxy and whether its toxicity roll applies it here.
    #[serde(default)]
    pub toxics: BTreeMap<String, bool>,
}

/// Live byte counts of a [`Connection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionBytes {
    pub upstream: u64,
    pub downstream: u64,
}

/// One event of `GET /events`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// RFC 3339 with milliseconds.
    pub time: String,
    /// `proxy.created`, `connection.closed`, `lagged`, …
    pub kind: String,
    pub proxy: Option<String>,
    /// The whole event object as sent.
    pub json: Value,
}

/// A followed `GET /events` stream; see [`Client::events`].
pub struct EventStream {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl EventStream {
    /// The next event, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block);
                let data: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if data.is_empty() {
                    continue; // a comment (keepalive)
                }
                let json: Value =
                    serde_json::from_str(&data.join("\n")).map_err(|e| serde_error(200, &e))?;
                let field = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_owned);
                return Ok(Some(Event {
                    time: field("time").unwrap_or_default(),
                    kind: field("type").unwrap_or_default(),
                    proxy: field("proxy"),
                    json,
                }));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(ClientError::Transport {
                        kind: TransportKind::Io,
                        method: "Get".to_owned(),
                        url: "/events".to_owned(),
                        reason: e.to_string(),
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

impl Client {
    /// `GET /proxies/{proxy}/connections`: the open connections, oldest first.
    pub async fn connections(&self, proxy: &str) -> Result<Vec<Connection>, ClientError> {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("{}/connections", proxy_path(proxy)),
                None,
            )
            .await?;
        serde_json::from_slice(&body).map_err(|e| serde_error(status, &e))
    }

    /// `DELETE /proxies/{proxy}/connections/{id}`: closes one connection with FIN, or with
    /// RST when `reset`.
    pub async fn kill(&self, proxy: &str, id: u64, reset: bool) -> Result<(), ClientError> {
        let query = if reset { "?reset=true" } else { "" };
        let path = format!("{}/connections/{id}{query}", proxy_path(proxy));
        self.call(Method::DELETE, &path, None).await.map(|_| ())
    }

    /// `GET /events`: follows the event stream. The connection and the server's answer
    /// must come within the client's timeout; the stream itself has no time limit.
    pub async fn events(&self) -> Result<EventStream, ClientError> {
        let url = format!("{}/events", self.endpoint);
        let transport = |kind: TransportKind, reason: String| ClientError::Transport {
            kind,
            method: "Get".to_owned(),
            url: redact_password(&url),
            reason,
        };
        let target =
            parse_target(&self.endpoint).map_err(|r| transport(TransportKind::InvalidUrl, r))?;
        let open = async {
            let stream = connect(&target.host, target.port).await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                    .await
                    .map_err(|e| (TransportKind::Io, e.to_string()))?;
            let driver = tokio::spawn(async move {
                let _ = connection.await;
            });
            let mut request = Request::builder()
                .method(Method::GET)
                .uri(format!("{}/events", target.prefix))
                .header(header::HOST, &target.authority)
                .header(header::USER_AGENT, &self.user_agent)
                .header(header::ACCEPT, "text/event-stream");
            if let Some(token) = &self.token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let request = request
                .body(Full::new(Bytes::new()))
                .map_err(|e| (TransportKind::InvalidUrl, e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| (TransportKind::Io, e.to_string()))?;
            Ok::<_, (TransportKind, String)>((response, driver))
        };
        let (response, driver) = match tokio::time::timeout(self.timeout, open).await {
            Ok(Ok(r)) => r,
            Ok(Err((kind, reason))) => return Err(transport(kind, reason)),
            Err(_) => {
                return Err(transport(
                    TransportKind::Timeout,
                    "context deadline exceeded".to_owned(),
                ))
            }
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            driver.abort();
            return Err(error_from_body(status, &body));
        }
        Ok(EventStream {
            body: response.into_body(),
            buf: Vec::new(),
            driver,
        })
    }
}
