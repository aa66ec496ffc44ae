//! Logs: the zerolog-style JSON format (key order, time, level names), `LOG_LEVEL` and
//! `LOG_FORMAT` parsing, and the real binary's log lines.

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, BufReader};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

use toxi::logging::{
    filter, parse_format, parse_level, rfc3339_seconds, Format, JsonFields, JsonFormat,
};

use crate::support::*;

/// A `MakeWriter` collecting everything written into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn fixed_clock() -> SystemTime {
    // 2026-11-24T14:34:27.9Z: the fraction is dropped, not rounded.
    UNIX_EPOCH + Duration::from_millis(1_795_530_867_900)
}

/// Runs `f` with a JSON subscriber at `level` and returns the lines it logged.
fn capture(level: LevelFilter, f: impl FnOnce()) -> Vec<String> {
    let out = Capture::default();
    let subscriber = tracing_subscriber::registry().with(level).with(
        tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields)
            .event_format(JsonFormat::with_clock(fixed_clock))
            .with_writer(out.clone()),
    );
    tracing::subscriber::with_default(subscriber, f);
    out.lines()
}

fn keys(line: &str) -> Vec<String> {
    // serde_json keeps key order (the `preserve_order` feature).
    let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn json_line_has_zerolog_key_order() {
    let mut line_no = 0;
    let lines = capture(LevelFilter::TRACE, || {
        let span = tracing::info_span!("proxy", proxy = "echo");
        let _entered = span.enter();
        line_no = line!() + 1;
        tracing::info!(
            name = "echo",
            listen = "127.0.0.1:26501",
            bytes = 12,
            ok = true,
            ratio = 0.5,
            "Started proxy"
        );
    });
    assert_eq!(
        lines,
        [format!(
            "{{\"level\":\"info\",\"proxy\":\"echo\",\"name\":\"echo\",\"listen\":\"127.0.0.1:26501\",\
             \"bytes\":12,\"ok\":true,\"ratio\":0.5,\"caller\":\"logging.rs:{line_no}\",\
             \"time\":\"2026-11-24T14:34:27Z\",\"message\":\"Started proxy\"}}"
        )]
    );
}

#[test]
fn level_names_and_fields() {
    let err = std::io::Error::other("boom \"quoted\"");
    let lines = capture(LevelFilter::TRACE, || {
        tracing::trace!("t");
        tracing::debug!(status = 200, handler = "ProxyIndex", r#type = "latency");
        tracing::info!(addr = %"127.0.0.1:1", "i");
        tracing::warn!(error = %err, "w {}", 42);
        tracing::error!(kind = ?Some(3), "e");
    });
    let levels: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["level"].to_string())
        .collect();
    assert_eq!(
        levels,
        [
            "\"trace\"",
            "\"debug\"",
            "\"info\"",
            "\"warn\"",
            "\"error\""
        ]
    );
    // No message: no `message` key (like the reference's access log); `r#type` is `type`.
    assert_eq!(
        keys(&lines[1]),
        ["level", "status", "handler", "type", "caller", "time"]
    );
    assert!(lines[1].contains("\"status\":200,"));
    assert!(lines[3].contains(r#""error":"boom \"quoted\"""#));
    assert!(lines[3].ends_with(r#""message":"w 42"}"#));
    assert!(lines[4].contains(r#""kind":"Some(3)""#));
    for line in &lines {
        let k = keys(line);
        assert_eq!(k[0], "level");
        let time = k.iter().position(|k| k == "time").unwrap();
        assert_eq!(k[time - 1], "caller");
        assert!(time + 2 >= k.len(), "time is last or just before message");
    }
}

#[test]
fn level_filter_applies() {
    let lines = capture(LevelFilter::WARN, || {
        tracing::info!("hidden");
        tracing::warn!("shown");
    });
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("\"shown\""));
    // Other crates are capped at warn even when toxi logs everything.
    let f = filter(LevelFilter::TRACE);
    assert!(f.would_enable("toxi::registry", &tracing::Level::TRACE));
    assert!(f.would_enable("toxi_server", &tracing::Level::TRACE));
    assert!(!f.would_enable("hyper::proto", &tracing::Level::DEBUG));
    assert!(f.would_enable("hyper::proto", &tracing::Level::WARN));
}

#[test]
fn log_level_values() {
    use LevelFilter as L;
    assert_eq!(parse_level(None), Ok(L::TRACE));
    for (raw, want) in [
        ("trace", L::TRACE),
        ("DEBUG", L::DEBUG),
        ("Info", L::INFO),
        ("warn", L::WARN),
        ("error", L::ERROR),
        ("fatal", L::ERROR),
        ("panic", L::ERROR),
        ("disabled", L::OFF),
        ("-1", L::TRACE),
        ("-128", L::TRACE),
        ("0", L::DEBUG),
        ("1", L::INFO),
        ("2", L::WARN),
        ("3", L::ERROR),
        ("7", L::OFF),
        ("127", L::OFF),
    ] {
        assert_eq!(parse_level(Some(raw)), Ok(want), "{raw}");
    }
    for bad in ["warning", "128", "-129", "verbose"] {
        assert_eq!(parse_level(Some(bad)), Err(bad.to_string()));
    }
    assert_eq!(parse_format(None), Ok(Format::Json));
    assert_eq!(parse_format(Some("JSON")), Ok(Format::Json));
    assert_eq!(parse_format(Some("text")), Ok(Format::Text));
    assert_eq!(parse_format(Some("xml")), Err("xml".to_string()));
    assert_eq!(rfc3339_seconds(fixed_clock()), "2026-11-24T14:34:27Z");
}

/// Starts the real binary with `env`, and returns its first `n` stdout lines.
async fn server_lines(env: &[(&str, &str)], config: &str, n: usize) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("toxi-logging-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("config-{n}-{}.json", env.len()));
    std::fs::write(&file, config).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_toxi-server"));
    cmd.args(["-host", "127.0.0.1", "-port", "0", "-config"])
        .arg(&file)
        .env_remove("LOG_LEVEL")
        .env_remove("LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("toxi-server starts");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    while lines.len() < n {
        match within("a log line", out.next_line()).await.unwrap() {
            Some(l) => lines.push(l),
            None => break,
        }
    }
    let _ = child.kill().await;
    let _ = std::fs::remove_file(&file);
    lines
}

#[tokio::test]
async fn binary_logs_json_lines_on_stdout() {
    let upstream = echo_upstream().await;
    let config = format!(r#"[{{"name":"echo","listen":"127.0.0.1:0","upstream":"{upstream}"}}]"#);
    let lines = server_lines(&[("LOG_LEVEL", "info")], &config, 4).await;
    let messages: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["message"].to_string())
        .collect();
    assert_eq!(
        messages,
        [
            "\"Starting Toxiproxy\"",
            "\"Started proxy\"",
            "\"Populated proxies from file\"",
            "\"Starting Toxiproxy HTTP server\""
        ],
        "{lines:#?}"
    );
    assert_eq!(
        keys(&lines[1]),
        ["level", "name", "listen", "upstream", "caller", "time", "message"]
    );
    assert!(lines[1].contains(&format!("\"upstream\":\"{upstream}\"")));
    assert!(lines[2].starts_with("{\"level\":\"info\",\"proxies\":1,\"caller\":"));
    let time = serde_json::from_str::<serde_json::Value>(&lines[0]).unwrap()["time"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(time.len(), 20, "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T');
}

#[tokio::test]
async fn binary_rejects_warning_and_keeps_logging_everything() {
    let lines = server_lines(&[("LOG_LEVEL", "warning")], "[]", 2).await;
    assert!(
        lines[0].starts_with(
            "{\"level\":\"error\",\"error\":\"Unknown Level String: 'warning', defaulting to NoLevel\",\"caller\":"
        ),
        "{lines:#?}"
    );
    assert!(lines[0].ends_with(r#","message":"unknown LOG_LEVEL value: \"warning\""}"#));
    assert!(lines[1].contains("\"message\":\"Starting Toxiproxy\""));
}

#[tokio::test]
async fn binary_text_format() {
    let lines = server_lines(&[("LOG_FORMAT", "text")], "[]", 1).await;
    assert!(!lines[0].starts_with('{'), "{lines:?}");
    assert!(lines[0].contains("INFO") && lines[0].contains("Starting Toxiproxy"));
}
