//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! started here on a free port). Controls are found by their labels and visible text.
//!
//! Without a browser the test prints SKIPPED and passes, except under `CI=true`, where it
//! fails. `TOXI_SCREENSHOT=path.png` saves a screenshot of the dashboard.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use toxi::client::NewToxic;

use crate::support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session.
struct Session {
    port: u16,
    id: String,
}

/// One minimal HTTP/1.1 exchange with chromedriver; returns the `value` of the answer.
async fn wd(port: u16, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let (head, mut data) = loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed early".into());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            break (head, raw[split + 4..].to_vec());
        }
    };
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or("no Content-Length")?;
    while data.len() < length {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let v: Value = serde_json::from_slice(&data).map_err(|e| format!("{e}: {head}"))?;
    if !head.starts_with("http/1.1 200") {
        return Err(v["value"].to_string());
    }
    Ok(v["value"].clone())
}

impl Session {
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        wd(
            self.port,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
        .await
    }

    async fn find(&self, xpath: &str) -> Result<String, String> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "xpath", "value": xpath})),
            )
            .await?;
        v[ELEMENT].as_str().map(str::to_owned).ok_or(v.to_string())
    }

    /// Waits until `xpath` matches an element.
    async fn wait_for(&self, xpath: &str) -> String {
        within(xpath, async {
            loop {
                if let Ok(id) = self.find(xpath).await {
                    return id;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }

    /// The form control whose `<label for>` reads `text`.
    async fn by_label(&self, text: &str) -> String {
        let label = self
            .wait_for(&format!("//label[normalize-space(.)='{text}']"))
            .await;
        let target = self
            .cmd("GET", &format!("/element/{label}/attribute/for"), None)
            .await
            .unwrap();
        let id = target.as_str().expect("the label names its control");
        self.find(&format!("//*[@id='{id}']")).await.unwrap()
    }

    async fn type_into(&self, label: &str, text: &str) {
        let el = self.by_label(label).await;
        self.cmd("POST", &format!("/element/{el}/clear"), Some(json!({})))
            .await
            .unwrap();
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await
        .unwrap();
    }

    async fn choose(&self, label: &str, option: &str) {
        let el = self.by_label(label).await;
        let id = self
            .cmd("GET", &format!("/element/{el}/attribute/id"), None)
            .await
            .unwrap();
        let opt = self
            .find(&format!(
                "//select[@id='{}']/option[normalize-space(.)='{option}']",
                id.as_str().unwrap()
            ))
            .await
            .unwrap();
        self.click_el(&opt).await;
    }

    async fn click_el(&self, el: &str) {
        self.cmd("POST", &format!("/element/{el}/click"), Some(json!({})))
            .await
            .unwrap();
    }

    async fn click_button(&self, text: &str) {
        let b = self
            .wait_for(&format!("//button[normalize-space(.)='{text}']"))
            .await;
        self.click_el(&b).await;
    }
}

/// Whether a browser can be used here; `Err` says why not.
fn browser_available() -> Result<(), String> {
    for path in [CHROMIUM, CHROMEDRIVER] {
        if !std::path::Path::new(path).exists() {
            return Err(format!("{path} is not installed"));
        }
    }
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so that dropping the driver ends the browsers it started
        // too, even when the test fails half-way.
        .process_group(0)
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    within("chromedriver ready", async {
        loop {
            if let Ok(v) = wd(port, "GET", "/status", None).await {
                if v["ready"] == true {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    driver
}

#[tokio::test]
async fn dashboard_in_headless_chromium() {
    if let Err(why) = browser_available() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("no browser in CI: {why}");
        }
        println!("SKIPPED dashboard_in_headless_chromium: {why}");
        return;
    }
    // With a token: the page asks for it.
    let server = server_with(toxi::server::Config {
        api_token: Some("s3cret".into()),
        ..toxi::server::Config::for_tests()
    })
    .await;
    let client = server.client().with_token(Some("s3cret".into()));
    let p = proxy(&server, "web", echo_upstream().await).await;
    proxy(&server, "cache", echo_upstream().await).await;

    let driver = start_driver().await;
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1100"]
        }
    }}});
    // A browser's first start on a loaded machine takes a while: allow it three times the
    // usual patience.
    let start = wd(driver.port, "POST", "/session", Some(caps));
    let session = tokio::time::timeout(patience() * 3, start)
        .await
        .expect("timed out waiting for a browser session")
        .expect("a browser session");
    let session = Session {
        port: driver.port,
        id: session["sessionId"].as_str().unwrap().to_owned(),
    };
    session
        .cmd(
            "POST",
            "/url",
            Some(json!({"url": format!("{}/ui/", server.url())})),
        )
        .await
        .unwrap();
    session
        .wait_for("//*[@id='error'][contains(., 'unauthorized')]")
        .await;
    session.type_into("API token", "s3cret").await;
    session.click_button("Use token").await;
    session.wait_for("//article[@aria-label='Proxy web']").await;
    session
        .wait_for("//*[@id='status'][normalize-space(.)='live']")
        .await;

    // A toxic added through the page's form reaches the API.
    session.choose("Proxy", "web").await;
    session.choose("Type", "latency").await;
    session.type_into("Toxic name", "slow").await;
    session.choose("Stream", "downstream").await;
    session.type_into("latency", "123").await;
    session.type_into("jitter", "5").await;
    session.click_button("Add toxic").await;
    let toxic = within("the toxic from the page", async {
        loop {
            let toxics = client.toxics("web").await.unwrap();
            if let Some(t) = toxics.into_iter().find(|t| t.name == "slow") {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(toxic.kind.type_name(), "latency");
    assert_eq!(toxic.stream, "downstream");
    assert_eq!(toxic.kind.int("latency"), 123);

    // A toxic added through the API shows up without a reload.
    client
        .add_toxic(
            "web",
            &NewToxic::new("bandwidth")
                .name("narrow")
                .upstream()
                .toxicity(0.5)
                .attribute("rate", 500_000),
        )
        .await
        .unwrap();
    session
        .wait_for("//article[@aria-label='Proxy web']//td[normalize-space(.)='narrow']")
        .await;

    // Live connections and the throughput chart.
    let mut sock = connect(&p).await;
    let traffic = async {
        for _ in 0..20 {
            sock.write_all(&[7; 8000]).await.unwrap();
            read_n(&mut sock, 8000).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    traffic.await;
    let me = sock.local_addr().unwrap().to_string();
    session
        .wait_for(&format!(
            "//article[@aria-label='Proxy web']//td[normalize-space(.)='{me}']"
        ))
        .await;

    if let Ok(path) = std::env::var("TOXI_SCREENSHOT") {
        session
            .cmd(
                "POST",
                "/execute/sync",
                Some(json!({"script": "window.scrollTo(0, 0)", "args": []})),
            )
            .await
            .unwrap();
        let shot = session.cmd("GET", "/screenshot", None).await.unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().unwrap())
            .unwrap();
        std::fs::write(&path, png).unwrap();
        println!("screenshot saved to {path}");
    }
    let _ = session.cmd("DELETE", "", None).await;
    drop(driver);
}

/// One request with exactly these headers (no default `Host`); returns status and body.
async fn raw(
    api: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
) -> (u16, String) {
    let mut s = TcpStream::connect(api).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    within("response", s.read_to_end(&mut out)).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// beyond.md §3.3: the browser block and its `X-Toxi-Dashboard` exception, the Host check
/// against DNS rebinding (with `-ui-allowed-hosts`), no CORS, and the token.
#[tokio::test]
async fn dashboard_security_rules() {
    let server = server_with(toxi::server::Config {
        api_token: Some("s3cret".into()),
        ui_allowed_hosts: vec!["toxi.internal".into()],
        ..toxi::server::Config::for_tests()
    })
    .await;
    let api = server.api_addr();
    let host = format!("Host: {api}");
    let ua = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/156";
    let dash = "X-Toxi-Dashboard: 1";
    let auth = "Authorization: Bearer s3cret";

    // The page itself: any browser, no token, but only under an allowed Host.
    let (status, body) = raw(api, "GET", "/ui/", &[&host, ua]).await;
    assert_eq!(status, 200);
    assert!(body.contains("<label for=\"toxic-name\">"), "{body}");
    assert_eq!(
        raw(api, "GET", "/ui/app.js", &["Host: localhost:8474", ua])
            .await
            .0,
        200
    );
    assert_eq!(
        raw(api, "GET", "/ui/", &["Host: toxi.internal:8474", ua])
            .await
            .0,
        200
    );
    let (status, body) = raw(api, "GET", "/ui/", &["Host: evil.example", ua]).await;
    assert_eq!(
        (status, body.as_str()),
        (403, "{\"error\":\"host not allowed\",\"status\":403}\n")
    );
    assert_eq!(
        raw(api, "GET", "/ui/", &[ua]).await.0,
        403,
        "no Host at all"
    );

    // A browser without the header is still refused everywhere else.
    for path in ["/proxies", "/events", "/proxies/x/connections"] {
        let (status, body) = raw(api, "GET", path, &[&host, ua, auth]).await;
        assert_eq!(
            (status, body.as_str()),
            (403, "User agent not allowed\n"),
            "{path}"
        );
    }
    // With the header: the Host check, then the token, as for any client.
    assert_eq!(
        raw(api, "GET", "/proxies", &[&host, ua, dash, auth])
            .await
            .0,
        200
    );
    assert_eq!(raw(api, "GET", "/proxies", &[&host, ua, dash]).await.0, 401);
    assert_eq!(
        raw(api, "GET", "/proxies/x/connections", &[&host, ua, dash])
            .await
            .0,
        401
    );
    assert_eq!(raw(api, "GET", "/events", &[&host, ua, dash]).await.0, 401);
    let (status, _) = raw(
        api,
        "GET",
        "/proxies",
        &["Host: evil.example:80", ua, dash, auth],
    )
    .await;
    assert_eq!(status, 403, "a rebound name is refused even with the token");
    let (status, _) = raw(
        api,
        "GET",
        "/proxies",
        &["Host: 127.0.0.1.evil.example", dash, auth],
    )
    .await;
    assert_eq!(status, 403);

    // No CORS: a preflight is never granted, and no answer carries Access-Control-*.
    let mut s = TcpStream::connect(api).await.unwrap();
    s.write_all(
        format!(
            "OPTIONS /proxies HTTP/1.1\r\n{host}\r\nOrigin: http://evil.example\r\n\
             Access-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: x-toxi-dashboard\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 405"), "{text}");
    assert!(!text.contains("access-control-"), "{text}");
    let mut s = TcpStream::connect(api).await.unwrap();
    s.write_all(
        format!("GET /proxies HTTP/1.1\r\n{host}\r\nOrigin: http://evil.example\r\n{dash}\r\n{auth}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert!(!String::from_utf8_lossy(&out)
        .to_ascii_lowercase()
        .contains("access-control-"));

    // Non-browser clients keep working under any Host, as with Toxiproxy.
    assert_eq!(
        raw(api, "GET", "/proxies", &["Host: toxiproxy:8474", auth])
            .await
            .0,
        200
    );
    assert_eq!(
        raw(api, "GET", "/version", &["Host: toxiproxy:8474"])
            .await
            .0,
        200
    );
}
