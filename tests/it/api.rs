//! The HTTP API end to end: `toxi::api::serve` in-process on 127.0.0.1:0 with a real
//! registry, driven with raw HTTP/1.1 over TCP so that every byte of the answer is visible.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use toxi::api::{serve, serve_with, ApiState, Limits};
use toxi::proxy::EngineConfig;
use toxi::registry::Registry;

use crate::support::*;

// ---- harness -------------------------------------------------------------------------------

struct Api {
    addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

type Metrics = Option<Arc<dyn Fn() -> String + Send + Sync>>;

async fn api() -> Api {
    api_with(None, None, None).await
}

async fn api_with(metrics: Metrics, api_token: Option<&str>, limits: Option<Limits>) -> Api {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let registry = Arc::new(Registry::new(EngineConfig::default()));
    let state = ApiState {
        registry: registry.clone(),
        metrics,
        api_token: api_token.map(str::to_owned),
        ui_allowed_hosts: Vec::new(),
    };
    let shutdown = CancellationToken::new();
    let task = match limits {
        None => tokio::spawn(serve(listener, state, shutdown.clone())),
        Some(l) => tokio::spawn(serve_with(listener, state, shutdown.clone(), l)),
    };
    Api {
        addr,
        registry,
        shutdown,
        task,
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    /// A JSON success: `application/json`, a request id, and this exact body.
    fn assert_json(&self, status: u16, body: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        assert_eq!(self.header("x-content-type-options"), None);
        assert_request_id(self);
        assert_eq!(self.text(), body);
    }

    /// An API error: `text/plain; charset=utf-8`, nosniff, `{"error":…,"status":N}\n`.
    fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{self:?}"
        );
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
        assert_request_id(self);
        let mut want = String::from("{\"error\":");
        want.push_str(&toxi::model::json::quote(message));
        want.push_str(&format!(",\"status\":{status}}}\n"));
        assert_eq!(self.text(), want);
    }

    /// An error whose message starts with `prefix`.
    fn assert_error_prefix(&self, status: u16, prefix: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        let want = format!("{{\"error\":{}", toxi::model::json::quote(prefix));
        let want = &want[..want.len() - 1];
        assert!(
            self.text().starts_with(want),
            "{:?} does not start with {want:?}",
            self.text()
        );
        assert!(
            self.text().ends_with(&format!(",\"status\":{status}}}\n")),
            "{}",
            self.text()
        );
    }

    /// 204: no body, no Content-Type, a request id.
    fn assert_no_content(&self) {
        assert_eq!(self.status, 204, "{self:?}");
        assert_eq!(self.header("content-type"), None);
        assert!(self.body.is_empty());
        assert_request_id(self);
    }

    /// 404 from the router: plain text, no request id.
    fn assert_router_404(&self) {
        assert_eq!(self.status, 404, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(self.header("x-toxiproxy-request-id"), None);
        assert_eq!(self.text(), "404 page not found\n");
    }

    /// 405 from the router: empty, `Content-Length: 0`, no Content-Type, no request id.
    fn assert_405(&self) {
        assert_eq!(self.status, 405, "{self:?}");
        assert_eq!(self.header("content-type"), None);
        assert_eq!(self.header("content-length"), Some("0"));
        assert_eq!(self.header("x-toxiproxy-request-id"), None);
        assert!(self.body.is_empty());
    }
}

fn assert_request_id(r: &Resp) {
    let id = r
        .header("x-toxiproxy-request-id")
        .expect("request id header");
    assert_eq!(id.len(), 20, "{id}");
    assert!(
        id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'v')),
        "{id}"
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one response from the front of `buf`; `None` if it is not complete yet.
/// `head` is whether the request was a HEAD (no body follows).
fn parse_response(buf: &[u8], head: bool) -> Option<(Resp, usize)> {
    let end = find(buf, b"\r\n\r\n")?;
    let head_text = std::str::from_utf8(&buf[..end]).expect("ascii head");
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.to_owned(), v.trim().to_owned())
        })
        .collect();
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let start = end + 4;
    if head || status == 204 || status == 304 {
        return Some((
            Resp {
                status,
                headers,
                body: Vec::new(),
            },
            start,
        ));
    }
    if let Some(len) = get("content-length") {
        let len: usize = len.parse().unwrap();
        if buf.len() < start + len {
            return None;
        }
        let body = buf[start..start + len].to_vec();
        return Some((
            Resp {
                status,
                headers,
                body,
            },
            start + len,
        ));
    }
    if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut at = start;
        loop {
            let line_end = at + find(&buf[at..], b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[at..line_end]).unwrap().trim(), 16)
                    .unwrap();
            at = line_end + 2;
            if size == 0 {
                if buf.len() < at + 2 {
                    return None;
                }
                return Some((
                    Resp {
                        status,
                        headers,
                        body,
                    },
                    at + 2,
                ));
            }
            if buf.len() < at + size + 2 {
                return None;
            }
            body.extend_from_slice(&buf[at..at + size]);
            at += size + 2;
        }
    }
    panic!("response without a length: {head_text}");
}

/// Reads one response from `sock`, keeping any extra bytes in `pending`.
async fn read_response(sock: &mut TcpStream, pending: &mut Vec<u8>, head: bool) -> Resp {
    within("response", async {
        loop {
            if let Some((resp, used)) = parse_response(pending, head) {
                pending.drain(..used);
                return resp;
            }
            let mut chunk = vec![0u8; 16 * 1024];
            let n = sock.read(&mut chunk).await.expect("read response");
            assert!(
                n > 0,
                "connection closed before a full response: {:?}",
                String::from_utf8_lossy(pending)
            );
            pending.extend_from_slice(&chunk[..n]);
        }
    })
    .await
}

/// Sends raw request bytes on a fresh connection and reads one response.
async fn raw(addr: SocketAddr, request: &[u8]) -> Resp {
    let mut sock = within("connect", TcpStream::connect(addr)).await.unwrap();
    sock.write_all(request).await.unwrap();
    let head = request.starts_with(b"HEAD ");
    read_response(&mut sock, &mut Vec::new(), head).await
}

fn request_bytes(
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        out.push_str("User-Agent: toxi-tests/1\r\n");
    }
    for (k, v) in headers {
        if !v.is_empty() {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if let Some(b) = body {
        out.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b.as_bytes());
    }
    bytes
}

async fn call(api: &Api, method: &str, path: &str, body: Option<&str>) -> Resp {
    Box::pin(raw(api.addr, &request_bytes(method, path, body, &[]))).await
}

async fn call_h(
    api: &Api,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    Box::pin(raw(api.addr, &request_bytes(method, path, body, headers))).await
}

fn proxy_json(name: &str, listen: &str, upstream: &str, enabled: bool, toxics: &str) -> String {
    format!(
        r#"{{"name":"{name}","listen":"{listen}","upstream":"{upstream}","enabled":{enabled},"Logger":{{}},"toxics":[{toxics}]}}"#
    )
}

async fn create_proxy(api: &Api, name: &str, upstream: &str) -> String {
    let r = call(
        api,
        "POST",
        "/proxies",
        Some(&format!(
            r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#
        )),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    api.registry.get(name).unwrap().listen
}

const MOZILLA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

// ---- routing and middleware ----------------------------------------------------------------

#[tokio::test]
async fn version_and_wrong_methods() {
    let api = api().await;
    let r = call(&api, "GET", "/version", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=utf-8")
    );
    assert_request_id(&r);
    assert_eq!(
        r.text(),
        format!("{{\"version\": \"{}\"}}\n", toxi::VERSION)
    );
    let r2 = call(&api, "GET", "/version?x=1", None).await;
    assert_eq!(r2.status, 200);
    assert_ne!(
        r.header("x-toxiproxy-request-id"),
        r2.header("x-toxiproxy-request-id")
    );

    for (m, p) in [
        ("HEAD", "/version"),
        ("POST", "/version"),
        ("OPTIONS", "/version"),
        ("DELETE", "/version"),
        ("PUT", "/proxies"),
        ("PATCH", "/proxies"),
        ("DELETE", "/proxies"),
        ("OPTIONS", "/proxies"),
        ("GET", "/populate"),
        ("GET", "/reset"),
        ("PUT", "/proxies/x"),
        ("PUT", "/proxies/x/toxics"),
        ("PUT", "/proxies/x/toxics/y"),
    ] {
        call(&api, m, p, None).await.assert_405();
    }
}

#[tokio::test]
async fn unknown_paths_redirects_and_bad_targets() {
    let api = api().await;
    for p in [
        "/nope",
        "/proxies/",
        "/proxies/x/toxics/",
        "/proxies/x/toxics/y/z",
        "/VERSION",
        "/metrics",
        "/",
    ] {
        call(&api, "GET", p, None).await.assert_router_404();
    }
    call(&api, "POST", "/metrics", None)
        .await
        .assert_router_404();

    for (path, location) in [
        ("//proxies", "/proxies"),
        ("/a/../proxies", "/proxies"),
        ("/./version?x=1", "/version?x=1"),
        ("/proxies/a%2F..%2Fb", "/proxies/b"),
    ] {
        let r = call(&api, "GET", path, None).await;
        assert_eq!(r.status, 301, "{path}: {r:?}");
        assert_eq!(r.header("location"), Some(location), "{path}");
        assert_eq!(r.header("x-toxiproxy-request-id"), None);
        assert!(r.body.is_empty());
    }

    let r = call(&api, "GET", "/proxies/%zz", None).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "400 Bad Request");

    let r = raw(api.addr, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    // Path variables are percent-decoded; a decoded `/` never matches a variable.
    call(&api, "DELETE", "/proxies/%3Ca%3E", None)
        .await
        .assert_error(404, "proxy not found");
    let up = echo_upstream().await.to_string();
    create_proxy(&api, "a b", &up).await;
    let r = call(&api, "GET", "/proxies/a%20b", None).await;
    assert_eq!(r.status, 200);
    call(&api, "GET", "/proxies/a%2Fb", None)
        .await
        .assert_router_404();
}

#[tokio::test]
async fn browser_block_on_matched_routes_only() {
    let api = api().await;
    let ua = [("User-Agent", MOZILLA)];
    for (m, p, body) in [
        ("GET", "/proxies", None),
        ("GET", "/version", None),
        (
            "POST",
            "/proxies",
            Some(r#"{"name":"m","listen":"127.0.0.1:0","upstream":"x:1"}"#),
        ),
        ("POST", "/reset", None),
    ] {
        let r = call_h(&api, m, p, body, &ua).await;
        assert_eq!(r.status, 403, "{m} {p}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_request_id(&r);
        assert_eq!(r.text(), "User agent not allowed\n");
    }
    assert!(
        api.registry.list().is_empty(),
        "blocked create must not create"
    );
    call_h(&api, "GET", "/nope", None, &ua)
        .await
        .assert_router_404();
    call_h(&api, "PUT", "/proxies", None, &ua)
        .await
        .assert_405();
    call_h(
        &api,
        "GET",
        "/proxies",
        None,
        &[("User-Agent", "mozilla/5.0")],
    )
    .await
    .assert_json(200, "{}");
    // No User-Agent at all passes.
    raw(api.addr, b"GET /proxies HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .assert_json(200, "{}");
}

#[tokio::test]
async fn metrics_route_when_configured() {
    let metrics: Metrics = Some(Arc::new(|| "# HELP x \nx 1\n".to_owned()));
    let api = api_with(metrics, None, None).await;
    for m in ["GET", "POST", "DELETE"] {
        let r = call(&api, m, "/metrics", None).await;
        assert_eq!(r.status, 200, "{m}");
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert_request_id(&r);
        assert_eq!(r.text(), "# HELP x \nx 1\n");
    }
    let r = call_h(&api, "GET", "/metrics", None, &[("User-Agent", MOZILLA)]).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn bearer_token_guards_every_route_but_version() {
    let metrics: Metrics = Some(Arc::new(String::new));
    let api = api_with(metrics, Some("s3cret"), None).await;
    for (m, p) in [
        ("GET", "/proxies"),
        ("POST", "/reset"),
        ("GET", "/metrics"),
        ("GET", "/proxies/x"),
    ] {
        let r = call(&api, m, p, None).await;
        r.assert_error(401, "unauthorized");
        let r = call_h(&api, m, p, None, &[("Authorization", "Bearer wrong")]).await;
        r.assert_error(401, "unauthorized");
    }
    call_h(
        &api,
        "GET",
        "/proxies",
        None,
        &[("Authorization", "Bearer s3cret")],
    )
    .await
    .assert_json(200, "{}");
    call_h(
        &api,
        "GET",
        "/proxies/x",
        None,
        &[("Authorization", "bearer s3cret")],
    )
    .await
    .assert_error(404, "proxy not found");
    assert_eq!(call(&api, "GET", "/version", None).await.status, 200);
    call(&api, "GET", "/nope", None).await.assert_router_404();
    call(&api, "PUT", "/proxies", None).await.assert_405();
}

// ---- proxies -------------------------------------------------------------------------------

#[tokio::test]
async fn proxy_create_list_get_and_errors() {
    let api = api().await;
    let up = echo_upstream().await.to_string();
    call(&api, "GET", "/proxies", None)
        .await
        .assert_json(200, "{}");

    let r = call(
        &api,
        "POST",
        "/proxies",
        Some(&format!(
            r#"{{"NAME":"web","Listen":"127.0.0.1:0","UpStream":"{up}","toxics":[1]}} trailing"#
        )),
    )
    .await;
    let listen = api.registry.get("web").unwrap().listen;
    assert!(
        listen.starts_with("127.0.0.1:") && !listen.ends_with(":0"),
        "{listen}"
    );
    r.assert_json(201, &proxy_json("web", &listen, &up, true, ""));
    // It really forwards.
    let p = api.registry.get("web").unwrap();
    let mut c = connect(&p).await;
    c.write_all(b"ping").await.unwrap();
    assert_eq!(read_n(&mut c, 4).await, b"ping");

    call(&api, "GET", "/proxies/web", None)
        .await
        .assert_json(200, &proxy_json("web", &listen, &up, true, ""));

    let r = call(
        &api,
        "POST",
        "/proxies",
        Some(&format!(
            r#"{{"name":"Zed","listen":"localhost:1","upstream":"{up}","enabled":false}}"#
        )),
    )
    .await;
    r.assert_json(201, &proxy_json("Zed", "localhost:1", &up, false, ""));
    call(&api, "GET", "/proxies", None).await.assert_json(
        200,
        &format!(
            r#"{{"Zed":{},"web":{}}}"#,
            proxy_json("Zed", "localhost:1", &up, false, ""),
            proxy_json("web", &listen, &up, true, "")
        ),
    );

    let post = |body: &'static str| call(&api, "POST", "/proxies", Some(body));
    post(r#"{"name":"web","listen":"127.0.0.1:0","upstream":"x:1"}"#)
        .await
        .assert_error(409, "proxy already exists");
    post(r#"{"listen":"127.0.0.1:0","upstream":"x:1"}"#)
        .await
        .assert_error(400, "missing required field: name");
    post(r#"{"name":"nou"}"#)
        .await
        .assert_error(400, "missing required field: upstream");
    post("{}")
        .await
        .assert_error(400, "missing required field: name");
    post("null")
        .await
        .assert_error(400, "missing required field: name");
    post("").await.assert_error(400, "bad request body: EOF");
    post(r#"{"name":"#)
        .await
        .assert_error(400, "bad request body: unexpected EOF");
    post("x").await.assert_error(
        400,
        "bad request body: invalid character 'x' looking for beginning of value",
    );
    post(r#"{"name":5}"#).await.assert_error(
        400,
        "bad request body: json: cannot unmarshal number into Go struct field Proxy.name of type string",
    );
    post("<").await.assert_error(
        400,
        "bad request body: invalid character '<' looking for beginning of value",
    );
    post(r#"{"name":"bad","listen":"local373","upstream":"x:1"}"#)
        .await
        .assert_error(500, "listen tcp: address local373: missing port in address");
    call(&api, "GET", "/proxies/bad", None)
        .await
        .assert_error(404, "proxy not found");
    call(&api, "GET", "/proxies/nope", None)
        .await
        .assert_error(404, "proxy not found");

    // A huge nesting depth is a 400, not a crash.
    let deep = "[".repeat(200_000);
    call(&api, "POST", "/proxies", Some(&deep))
        .await
        .assert_error(
            400,
            "bad request body: invalid character '[' exceeded max depth",
        );
    assert_eq!(api.registry.list().len(), 2);
}

#[tokio::test]
async fn proxy_update_and_delete() {
    let api = api().await;
    let up = echo_upstream().await.to_string();
    let listen = create_proxy(&api, "web", &up).await;
    let p = api.registry.get("web").unwrap();
    let mut c = connect(&p).await;
    c.write_all(b"x").await.unwrap();
    assert_eq!(read_n(&mut c, 1).await, b"x");

    call(&api, "PATCH", "/proxies/web", Some(r#"{"enabled":false}"#))
        .await
        .assert_json(200, &proxy_json("web", &listen, &up, false, ""));
    expect_closed(&mut c).await;
    call(&api, "POST", "/proxies/web", Some(r#"{"Enabled":true}"#))
        .await
        .assert_json(200, &proxy_json("web", &listen, &up, true, ""));
    for body in ["{}", "null", r#"{"name":"other","enabled":null}"#] {
        call(&api, "PATCH", "/proxies/web", Some(body))
            .await
            .assert_json(200, &proxy_json("web", &listen, &up, true, ""));
    }
    call(&api, "GET", "/proxies/other", None)
        .await
        .assert_error(404, "proxy not found");
    call(&api, "PATCH", "/proxies/web", Some(""))
        .await
        .assert_error(400, "bad request body: EOF");
    call(&api, "PATCH", "/proxies/web", Some(r#"{"upstream":1}"#)).await.assert_error(
        400,
        "bad request body: json: cannot unmarshal number into Go struct field Proxy.upstream of type string",
    );
    // The proxy lookup comes before the body.
    call(&api, "PATCH", "/proxies/nope", Some("garbage"))
        .await
        .assert_error(404, "proxy not found");
    call(
        &api,
        "PATCH",
        "/proxies/web",
        Some(r#"{"upstream":"127.0.0.1:1"}"#),
    )
    .await
    .assert_json(200, &proxy_json("web", &listen, "127.0.0.1:1", true, ""));
    call(
        &api,
        "PATCH",
        "/proxies/web",
        Some(r#"{"listen":"local373"}"#),
    )
    .await
    .assert_error(500, "address local373: missing port in address");

    call(&api, "DELETE", "/proxies/web", Some("ignored"))
        .await
        .assert_no_content();
    call(&api, "DELETE", "/proxies/web", None)
        .await
        .assert_error(404, "proxy not found");
    call(&api, "GET", "/proxies/web", None)
        .await
        .assert_error(404, "proxy not found");
    call(&api, "GET", "/proxies", None)
        .await
        .assert_json(200, "{}");
}

#[tokio::test]
async fn populate_shapes() {
    let api = api().await;
    let up = echo_upstream().await.to_string();
    let json_no_newline = |r: &Resp, status: u16, body: &str| {
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-content-type-options"), None);
        assert_request_id(r);
        assert_eq!(r.text(), body);
    };
    let r = call(
        &api,
        "POST",
        "/populate",
        Some(&format!(
            r#"[{{"name":"one","listen":"127.0.0.1:0","upstream":"{up}"}},{{"name":"two","listen":"localhost:9","upstream":"{up}","enabled":false}}]"#
        )),
    )
    .await;
    let one = api.registry.get("one").unwrap().listen;
    json_no_newline(
        &r,
        201,
        &format!(
            r#"{{"proxies":[{},{}]}}"#,
            proxy_json("one", &one, &up, true, ""),
            proxy_json("two", "localhost:9", &up, false, "")
        ),
    );
    for body in ["[]", "null"] {
        json_no_newline(
            &call(&api, "POST", "/populate", Some(body)).await,
            201,
            r#"{"proxies":null}"#,
        );
    }
    json_no_newline(
        &call(&api, "POST", "/populate", Some("[{")).await,
        400,
        r#"{"error":"bad request body: unexpected EOF","status":400,"proxies":null}"#,
    );
    let r = call(&api, "POST", "/populate", Some("{}")).await;
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with(r#"{"error":"bad request body: json: cannot unmarshal object into Go value of type []struct"#));
    assert!(r.text().ends_with(r#","status":400,"proxies":null}"#));
    json_no_newline(
        &call(
            &api,
            "POST",
            "/populate",
            Some(r#"[{"name":"n1","upstream":"x:1"},{"upstream":"x:1"}]"#),
        )
        .await,
        400,
        r#"{"error":"missing required field: name at proxy 2","status":400,"proxies":null}"#,
    );
    json_no_newline(
        &call(&api, "POST", "/populate", Some(r#"[{"name":"u1"}]"#)).await,
        400,
        r#"{"error":"missing required field: upstream at proxy 1","status":400,"proxies":null}"#,
    );
    assert!(api.registry.get("n1").is_err());
    let r = call(
        &api,
        "POST",
        "/populate",
        Some(r#"[{"name":"ok1","listen":"127.0.0.1:0","upstream":"x:1"},{"name":"bad","listen":"local373","upstream":"x:1"},{"name":"ok3","upstream":"x:1"}]"#),
    )
    .await;
    let ok1 = api.registry.get("ok1").unwrap().listen;
    json_no_newline(
        &r,
        500,
        &format!(
            r#"{{"error":"listen tcp: address local373: missing port in address","status":500,"proxies":[{}]}}"#,
            proxy_json("ok1", &ok1, "x:1", true, "")
        ),
    );
    assert!(api.registry.get("ok3").is_err());
}

// ---- toxics --------------------------------------------------------------------------------

const LAT: &str = r#"{"attributes":{"latency":250,"jitter":10},"name":"lat","type":"latency","stream":"downstream","toxicity":1}"#;

#[tokio::test]
async fn toxic_create_defaults_and_validation() {
    let api = api().await;
    let up = echo_upstream().await.to_string();
    create_proxy(&api, "web", &up).await;
    let add = |body: &'static str| call(&api, "POST", "/proxies/web/toxics", Some(body));

    call(&api, "GET", "/proxies/web/toxics", None)
        .await
        .assert_json(200, "[]");
    add(r#"{"name":"lat","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":250,"jitter":10}}"#)
        .await
        .assert_json(200, LAT);
    add(r#"{"type":"bandwidth","stream":"UpStream","attributes":{"rate":100}}"#).await.assert_json(
        200,
        r#"{"attributes":{"rate":100},"name":"bandwidth_UpStream","type":"bandwidth","stream":"UpStream","toxicity":1}"#,
    );
    add(r#"{"type":"noop","stream":null,"name":""}"#).await.assert_json(
        200,
        r#"{"attributes":{},"name":"noop_downstream","type":"noop","stream":"downstream","toxicity":1}"#,
    );
    add(r#"{"Name":"t7","TYPE":"latency","Stream":"upstream","Attributes":{"Latency":7,"JITTER":2,"foo":1}}"#)
        .await
        .assert_json(
            200,
            r#"{"attributes":{"latency":7,"jitter":2},"name":"t7","type":"latency","stream":"upstream","toxicity":1}"#,
        );
    add(r#"{"name":"tiny","type":"noop","toxicity":1e-7}"#).await.assert_json(
        200,
        r#"{"attributes":{},"name":"tiny","type":"noop","stream":"downstream","toxicity":1e-7}"#,
    );
    add(r#"{"name":"five","type":"noop","toxicity":5}"#)
        .await
        .assert_json(
            200,
            r#"{"attributes":{},"name":"five","type":"noop","stream":"downstream","toxicity":5}"#,
        );
    add(r#"{"name":"sd","type":"slow_close","attributes":null}"#).await.assert_json(
        200,
        r#"{"attributes":{"delay":0},"name":"sd","type":"slow_close","stream":"downstream","toxicity":1}"#,
    );

    add(r#"{"type":"latency","stream":"sideways"}"#)
        .await
        .assert_error(
            400,
            "stream was invalid, can be either upstream or downstream",
        );
    add(r#"{"type":"latency","stream":""}"#).await.assert_error(
        400,
        "stream was invalid, can be either upstream or downstream",
    );
    add(r#"{"stream":"upstream"}"#)
        .await
        .assert_error(400, "invalid toxic type");
    add(r#"{"type":"http"}"#)
        .await
        .assert_error(400, "invalid toxic type");
    add(r#"{"type":"Latency"}"#)
        .await
        .assert_error(400, "invalid toxic type");
    add(r#"{"name":"lat","type":"noop","stream":"upstream"}"#)
        .await
        .assert_error(409, "toxic already exists");
    // The conflict check comes before the attribute decode.
    add(r#"{"name":"lat","type":"latency","attributes":{"latency":"x"}}"#)
        .await
        .assert_error(409, "toxic already exists");
    add(r#"{"name":"t2","type":"latency","attributes":{"latency":"abc"}}"#).await.assert_error(
        400,
        "bad request body: json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type int64",
    );
    add(r#"{"name":"t3","type":"latency","attributes":{"latency":1.5}}"#).await.assert_error(
        400,
        "bad request body: json: cannot unmarshal number 1.5 into Go struct field LatencyToxic.attributes.latency of type int64",
    );
    add(r#"{"name":"t4","type":"latency","attributes":5}"#).await.assert_error(
        400,
        "bad request body: json: cannot unmarshal number into Go struct field ToxicWrapper.attributes of type toxics.NoopToxic",
    );
    add(r#"{"name":"t5","type":"noop","toxicity":"1"}"#)
        .await
        .assert_error_prefix(400, "bad request body: json: ");
    add("").await.assert_error(400, "bad request body: EOF");
    // DECISIONS §2.2: values that crash the reference are refused, naming the attribute.
    add(r#"{"name":"sl0","type":"slicer"}"#)
        .await
        .assert_error_prefix(400, "average_size");
    add(r#"{"name":"bw","type":"bandwidth","attributes":{"rate":-1}}"#)
        .await
        .assert_error_prefix(400, "rate");
    add(r#"{"name":"big","type":"latency","attributes":{"latency":9223372036854775807}}"#)
        .await
        .assert_json(
            200,
            r#"{"attributes":{"latency":9223372036854775807,"jitter":0},"name":"big","type":"latency","stream":"downstream","toxicity":1}"#,
        );

    let names: Vec<String> = api
        .registry
        .toxics("web")
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        names,
        [
            "bandwidth_UpStream",
            "t7",
            "lat",
            "noop_downstream",
            "tiny",
            "five",
            "sd",
            "big"
        ]
    );
    let r = call(&api, "GET", "/proxies/web/toxics", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .starts_with(r#"[{"attributes":{"rate":100},"name":"bandwidth_UpStream""#),
        "{}",
        r.text()
    );
    let r = call(&api, "GET", "/proxies/web", None).await;
    assert!(
        r.text()
            .contains(r#""Logger":{},"toxics":[{"attributes":{"rate":100}"#),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn toxic_get_update_delete() {
    let api = api().await;
    let up = echo_upstream().await.to_string();
    create_proxy(&api, "web", &up).await;
    call(
        &api,
        "POST",
        "/proxies/web/toxics",
        Some(r#"{"name":"lat","type":"latency","attributes":{"latency":250,"jitter":10}}"#),
    )
    .await
    .assert_json(200, LAT);
    call(&api, "GET", "/proxies/web/toxics/lat", None)
        .await
        .assert_json(200, LAT);

    call(&api, "PATCH", "/proxies/web/toxics/lat", Some(r#"{"attributes":{"jitter":5},"name":"x","stream":"upstream","type":"noop"}"#))
        .await
        .assert_json(
            200,
            r#"{"attributes":{"latency":250,"jitter":5},"name":"lat","type":"latency","stream":"downstream","toxicity":1}"#,
        );
    call(&api, "PATCH", "/proxies/web/toxics/lat", Some(r#"{"toxicity":0.3}"#)).await.assert_json(
        200,
        r#"{"attributes":{"latency":250,"jitter":5},"name":"lat","type":"latency","stream":"downstream","toxicity":0.3}"#,
    );
    call(&api, "POST", "/proxies/web/toxics/lat", Some(r#"{"attributes":{"latency":100}}"#)).await.assert_json(
        200,
        r#"{"attributes":{"latency":100,"jitter":5},"name":"lat","type":"latency","stream":"downstream","toxicity":0.3}"#,
    );
    let before = call(&api, "GET", "/proxies/web/toxics/lat", None)
        .await
        .body;
    call(&api, "PATCH", "/proxies/web/toxics/lat", Some(r#"{"attributes":{"jitter":1,"latency":"x"}}"#))
        .await
        .assert_error(
            400,
            "bad request body: json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type int64",
        );
    call(&api, "PATCH", "/proxies/web/toxics/lat", Some(r#"{"attributes":5}"#))
        .await
        .assert_error(
            400,
            "bad request body: json: cannot unmarshal number into Go struct field .attributes of type toxics.LatencyToxic",
        );
    call(&api, "PATCH", "/proxies/web/toxics/lat", Some(""))
        .await
        .assert_error(400, "bad request body: EOF");
    assert_eq!(
        call(&api, "GET", "/proxies/web/toxics/lat", None)
            .await
            .body,
        before,
        "failed updates change nothing"
    );
    // Lookups come before the body.
    call(&api, "PATCH", "/proxies/web/toxics/nope", Some("garbage"))
        .await
        .assert_error(404, "toxic not found");
    call(&api, "PATCH", "/proxies/nope/toxics/lat", Some("garbage"))
        .await
        .assert_error(404, "proxy not found");

    call(&api, "DELETE", "/proxies/web/toxics/lat", None)
        .await
        .assert_no_content();
    call(&api, "DELETE", "/proxies/web/toxics/lat", None)
        .await
        .assert_error(404, "toxic not found");
    call(&api, "GET", "/proxies/web/toxics/lat", None)
        .await
        .assert_error(404, "toxic not found");
    for (m, p, b) in [
        ("GET", "/proxies/nope/toxics", None),
        (
            "POST",
            "/proxies/nope/toxics",
            Some(r#"{"type":"latency"}"#),
        ),
        ("POST", "/proxies/nope/toxics", Some("garbage")),
        ("GET", "/proxies/nope/toxics/lat", None),
        ("DELETE", "/proxies/nope/toxics/lat", None),
    ] {
        call(&api, m, p, b)
            .await
            .assert_error(404, "proxy not found");
    }
}

#[tokio::test]
async fn reset_enables_everything_and_clears_toxics() {
    let api = api().await;
    let up = echo_upstream().await.to_string();
    let a = create_proxy(&api, "a", &up).await;
    call(
        &api,
        "POST",
        "/proxies/a/toxics",
        Some(r#"{"type":"latency","attributes":{"latency":1}}"#),
    )
    .await;
    call(&api, "PATCH", "/proxies/a", Some(r#"{"enabled":false}"#)).await;
    call(&api, "POST", "/reset", Some("garbage"))
        .await
        .assert_no_content();
    call(&api, "GET", "/proxies/a", None)
        .await
        .assert_json(200, &proxy_json("a", &a, &up, true, ""));
    call(&api, "POST", "/reset", None).await.assert_no_content();
}

// ---- limits and connection handling --------------------------------------------------------

#[tokio::test]
async fn bodies_over_one_mib_get_413() {
    let api = api().await;
    let big = format!(r#"{{"name":"x","upstream":"{}"}}"#, " ".repeat(1 << 20));
    call(&api, "POST", "/proxies", Some(&big))
        .await
        .assert_error(413, "request body too large");
    let r = call(&api, "POST", "/populate", Some(&big)).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.text(),
        r#"{"error":"request body too large","status":413,"proxies":null}"#
    );

    // Without a Content-Length (chunked), the limit still applies while reading.
    let mut req =
        b"POST /proxies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..17 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    raw(api.addr, &req)
        .await
        .assert_error(413, "request body too large");

    // A client waiting for `100 Continue` is refused before it sends anything.
    let r = raw(
        api.addr,
        b"POST /proxies HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n",
    )
    .await;
    r.assert_error(413, "request body too large");

    // Exactly at the limit is fine (it fails later, on content).
    let at_limit = format!("{}{}", " ".repeat((1 << 20) - 2), "{}");
    call(&api, "POST", "/proxies", Some(&at_limit))
        .await
        .assert_error(400, "missing required field: name");
    assert!(api.registry.list().is_empty());
}

#[tokio::test]
async fn keep_alive_and_pipelining() {
    let api = api().await;
    let mut sock = TcpStream::connect(api.addr).await.unwrap();
    let mut req = request_bytes("GET", "/version", None, &[]);
    req.extend(request_bytes("POST", "/proxies", Some("{}"), &[]));
    req.extend(request_bytes("GET", "/nope", None, &[]));
    req.extend(request_bytes("HEAD", "/version", None, &[]));
    req.extend(request_bytes("GET", "/proxies", None, &[]));
    sock.write_all(&req).await.unwrap();
    let mut pending = Vec::new();
    assert_eq!(
        read_response(&mut sock, &mut pending, false).await.status,
        200
    );
    read_response(&mut sock, &mut pending, false)
        .await
        .assert_error(400, "missing required field: name");
    read_response(&mut sock, &mut pending, false)
        .await
        .assert_router_404();
    read_response(&mut sock, &mut pending, true)
        .await
        .assert_405();
    read_response(&mut sock, &mut pending, false)
        .await
        .assert_json(200, "{}");
}

/// A client that never finishes its headers is dropped after the header timeout, and the
/// connection cap makes later clients wait instead of being refused.
#[tokio::test]
async fn slow_clients_cannot_starve_the_api() {
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        max_connections: 2,
        ..Limits::default()
    };
    let api = api_with(None, None, Some(limits)).await;
    let mut lorises = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(api.addr).await.unwrap();
        s.write_all(b"GET /proxies HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        lorises.push(s);
    }
    // Both slots are taken; this request is served once a slow client has been dropped.
    call(&api, "GET", "/proxies", None)
        .await
        .assert_json(200, "{}");
    for mut s in lorises {
        let mut buf = Vec::new();
        // Closed by the server (hyper may answer 408 first).
        within("slow client dropped", s.read_to_end(&mut buf))
            .await
            .ok();
    }
}

/// Many half-open API connections under the default limits do not delay a normal request.
#[tokio::test]
async fn half_open_connections_do_not_block_requests() {
    let api = api().await;
    let mut idle = Vec::new();
    for _ in 0..64 {
        let mut s = TcpStream::connect(api.addr).await.unwrap();
        s.write_all(b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            .await
            .unwrap();
        idle.push(s);
    }
    let started = std::time::Instant::now();
    call(&api, "GET", "/proxies", None)
        .await
        .assert_json(200, "{}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A handler that overruns the limit answers 503 with Go's HTML body and the request id.
#[tokio::test]
async fn slow_handler_gets_503() {
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let metrics: Metrics = Some(Arc::new(move || {
        // Blocks (on a blocking-pool thread) until the test lets it go.
        let _ = release_rx.lock().unwrap().recv_timeout(patience());
        "late".to_owned()
    }));
    let limits = Limits {
        handler_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let api = api_with(metrics, None, Some(limits)).await;
    let r = call(&api, "GET", "/metrics", None).await;
    release_tx.send(()).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_request_id(&r);
    assert_eq!(
        r.text(),
        "<html><head><title>Timeout</title></head><body><h1>Timeout</h1></body></html>"
    );
}

#[tokio::test]
async fn shutdown_stops_serving_and_closes_idle_connections() {
    let mut api = api().await;
    let mut sock = TcpStream::connect(api.addr).await.unwrap();
    sock.write_all(&request_bytes("GET", "/version", None, &[]))
        .await
        .unwrap();
    let mut pending = Vec::new();
    assert_eq!(
        read_response(&mut sock, &mut pending, false).await.status,
        200
    );
    api.shutdown.cancel();
    within("serve returns", &mut api.task).await.unwrap();
    let mut buf = Vec::new();
    within("idle connection closed", sock.read_to_end(&mut buf))
        .await
        .ok();
    assert!(
        TcpStream::connect(api.addr).await.is_err(),
        "listener closed"
    );
}
