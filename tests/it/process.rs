//! The `toxi-server` binary as a process: flags, API bind failure, SIGTERM under traffic,
//! and running out of file descriptors.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const SERVER: &str = env!("CARGO_BIN_EXE_toxi-server");

/// A server process whose API address was read from its startup log line.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) api: SocketAddr,
    /// Every stdout line so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` (which runs toxi-server with `-port 0`) and waits for the API line.
pub(crate) fn spawn(mut command: Command) -> Proc {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env("LOG_LEVEL", "info");
    let mut child = command.spawn().expect("server spawns");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line.clone());
            if !sent && line.contains("Starting Toxiproxy HTTP server") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let addr: SocketAddr = v["address"].as_str().unwrap().parse().unwrap();
                let _ = tx.send(addr);
                sent = true;
            }
        }
    });
    let api = rx
        .recv_timeout(patience())
        .expect("server logs its API address");
    Proc { child, api, log }
}

pub(crate) fn server_command() -> Command {
    let mut c = Command::new(SERVER);
    c.args(["-host=127.0.0.1", "-port=0"]);
    c
}

#[test]
fn version_help_and_unknown_flags() {
    let out = Command::new(SERVER).arg("-version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!("toxiproxy-server version {}\n", toxi::VERSION)
    );
    let out = Command::new(SERVER).arg("--help").output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with(&format!("Usage of {SERVER}:\n")), "{err}");
    assert!(err.contains(
        "  -host string\n    \tHost for toxiproxy's API to listen on (default \"localhost\")\n"
    ));
    let out = Command::new(SERVER).arg("-bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .starts_with("flag provided but not defined: -bogus\n"));
}

/// DECISIONS §2.8: a failed API bind exits non-zero with a one-line reason.
#[test]
fn api_bind_failure_exits() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = Command::new(SERVER)
        .args(["-host", "127.0.0.1", "-port", &port.to_string()])
        .env("LOG_LEVEL", "disabled")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("address already in use"), "{err}");
}

#[tokio::test]
async fn config_file_populates_before_the_api_listens() {
    let upstream = echo_upstream().await;
    let dir = std::env::temp_dir().join(format!("toxi-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxies.json");
    std::fs::write(
        &file,
        format!(r#"[{{"name":"from_file","listen":"127.0.0.1:0","upstream":"{upstream}"}}]"#),
    )
    .unwrap();
    let mut cmd = server_command();
    cmd.arg(format!("-config={}", file.display()));
    let server = spawn(cmd);
    // The API answers only after populating, so the proxy is there on the first request.
    let (status, body) = http(server.api, "GET", "/proxies", "").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let listen = v["from_file"]["listen"]
        .as_str()
        .expect("proxy from file")
        .to_string();
    let mut c = TcpStream::connect(listen.as_str()).await.unwrap();
    c.write_all(b"hi").await.unwrap();
    assert_eq!(read_n(&mut c, 2).await, b"hi");
    let _ = std::fs::remove_dir_all(dir);
}

/// Connections that never end are cut when `-shutdown-grace` runs out, and the server
/// exits 0.
#[tokio::test]
async fn sigterm_during_traffic_exits_promptly() {
    let mut command = server_command();
    command.arg("-shutdown-grace=300ms");
    let mut server = spawn(command);
    let listen = create_proxy_http(server.api, "busy", echo_upstream().await).await;
    let mut streams = Vec::new();
    for _ in 0..8 {
        let c = TcpStream::connect(listen.as_str()).await.unwrap();
        let (mut r, mut w) = c.into_split();
        streams.push(tokio::spawn(async move {
            let block = vec![7u8; 64 * 1024];
            loop {
                if w.write_all(&block).await.is_err() {
                    return;
                }
            }
        }));
        streams.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigterm(&server);
    let status = wait_exit(&mut server, Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    for s in streams {
        within("streams end", s).await.unwrap();
    }
}

/// Waits for the server process to exit, for at most `limit`.
async fn wait_exit(server: &mut Proc, limit: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "server did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sigterm(server: &Proc) {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

/// SIGTERM drains: the listener closes at once (new clients are refused), the 20 open
/// streaming connections finish their work undisturbed, and the server exits 0 as soon
/// as the last one ends, long before the grace runs out.
#[tokio::test]
async fn sigterm_lets_open_connections_finish() {
    let mut command = server_command();
    command.arg("-shutdown-grace=60s");
    let mut server = spawn(command);
    let listen = create_proxy_http(server.api, "drain", echo_upstream().await).await;
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut c = TcpStream::connect(listen.as_str()).await.unwrap();
        c.write_all(&[1u8; 4096]).await.unwrap();
        assert_eq!(read_n(&mut c, 4096).await, [1u8; 4096]);
        conns.push(c);
    }
    sigterm(&server);
    within("the drain starts", async {
        while !server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Draining connections"))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        TcpStream::connect(listen.as_str()).await.is_err(),
        "the listener closed at once"
    );
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for mut c in conns {
        tasks.push(tokio::spawn(async move {
            let block = pattern(256 * 1024, 5);
            c.write_all(&block).await.unwrap();
            c.shutdown().await.unwrap();
            let (echoed, _) = read_to_end(&mut c).await;
            assert!(echoed == block, "a draining connection lost bytes");
        }));
    }
    for t in tasks {
        within("every connection finishes", t).await.unwrap();
    }
    let status = wait_exit(
        &mut server,
        Duration::from_secs(30).saturating_sub(start.elapsed()),
    )
    .await;
    assert!(status.success(), "{status:?}");
}

/// DECISIONS §2.4: with descriptors exhausted, accept backs off and recovers; the proxy
/// never goes silently dead.
#[tokio::test]
async fn accept_recovers_after_fd_exhaustion() {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!("ulimit -n 64 && exec {SERVER} -host=127.0.0.1 -port=0"),
    ]);
    let server = spawn(cmd);
    let listen = create_proxy_http(server.api, "fds", echo_upstream().await).await;
    // Each proxied connection costs the server two descriptors: 60 clients exhaust 64.
    let mut clients = Vec::new();
    for _ in 0..60 {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(listen.as_str()))
            .await
        {
            Ok(Ok(c)) => clients.push(c),
            _ => break,
        }
    }
    assert!(
        clients.len() > 40,
        "connections are queued by the kernel: {}",
        clients.len()
    );
    let exhausted = || {
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Error while accepting client"))
    };
    within("the server to run out of descriptors", async {
        while !exhausted() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    drop(clients);
    // Once descriptors are free again, new clients are served. While the server still
    // closes the queued clients of before, a new one may find no descriptor for its
    // upstream dial and be closed: try again until one is echoed.
    eventually("a client served after exhaustion", || async {
        let mut c = TcpStream::connect(listen.as_str())
            .await
            .map_err(|e| e.to_string())?;
        c.write_all(b"alive").await.map_err(|e| e.to_string())?;
        let mut got = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut got))
            .await
            .map_err(|_| "no echo".to_string())?
            .map_err(|e| e.to_string())?;
        if &got == b"alive" {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    let (status, _) = http(server.api, "GET", "/proxies/fds", "").await;
    assert_eq!(status, 200);
}

/// `-api-token` / `TOXI_API_TOKEN`: every route but `/version` needs the bearer token.
#[tokio::test]
async fn api_token_from_flag_or_environment() {
    for by_env in [false, true] {
        let mut cmd = server_command();
        if by_env {
            cmd.env("TOXI_API_TOKEN", "s3cret");
        } else {
            cmd.arg("-api-token=s3cret");
        }
        let server = spawn(cmd);
        let (status, _) = http(server.api, "GET", "/version", "").await;
        assert_eq!(status, 200, "/version stays open");
        let (status, body) = http(server.api, "GET", "/proxies", "").await;
        assert_eq!(status, 401, "{body}");
        assert!(body.starts_with(r#"{"error":"unauthorized","status":401}"#));
        let (status, _, _) = http_raw(
            server.api,
            "GET",
            "/proxies",
            &[("Authorization", "Bearer wrong")],
            b"",
        )
        .await;
        assert_eq!(status, 401);
        let (status, _, _) = http_raw(
            server.api,
            "GET",
            "/proxies",
            &[("Authorization", "Bearer s3cret")],
            b"",
        )
        .await;
        assert_eq!(status, 200);
    }
}

/// A stalled stdout (a pipe nobody reads) never blocks the data path: log lines go
/// through a non-blocking writer and are dropped while it is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_stdout_does_not_block_connections() {
    struct KillOnDrop(Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = server_command()
        .env("LOG_LEVEL", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let _child = KillOnDrop(child);
    let api: SocketAddr = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "server exited");
        if line.contains("Starting Toxiproxy HTTP server") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["address"].as_str().unwrap().parse().unwrap();
        }
    };
    // From here on nobody reads stdout: the pipe (64 KiB) fills after a few hundred lines.
    let listen = create_proxy_http(api, "quiet", echo_upstream().await).await;
    within("1,000 connections with stdout stalled", async {
        for i in 0..1000u32 {
            let mut c = TcpStream::connect(listen.as_str()).await.unwrap();
            c.write_all(&i.to_be_bytes()).await.unwrap();
            assert_eq!(read_n(&mut c, 4).await, i.to_be_bytes());
        }
    })
    .await;
    drop(_child);
    drop(stdout);
}
