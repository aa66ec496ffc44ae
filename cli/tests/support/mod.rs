//! Test support: an in-process toxi server on `127.0.0.1:0`, an echo upstream, and helpers
//! to run the built `toxi` binary with stdout (and optionally stderr) on a pseudo-terminal.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use toxi::server::{Config, Server};

/// The built CLI.
pub fn toxi_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_toxi"))
}

/// A toxi server running in-process on its own runtime; stopped on drop.
pub struct TestServer {
    runtime: Runtime,
    server: Option<Server>,
    url: String,
}

impl TestServer {
    /// Starts a server with the test defaults (API on `127.0.0.1`, port picked by the OS).
    pub fn start() -> TestServer {
        TestServer::start_with(Config::for_tests())
    }

    /// The one place where tests start a server.
    pub fn start_with(config: Config) -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime");
        let server = runtime
            .block_on(Server::start(config))
            .expect("start the toxi server");
        let url = server.url();
        TestServer {
            runtime,
            server: Some(server),
            url,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:<port>`, without the scheme.
    pub fn hostport(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Runs a future on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Starts a TCP echo server on `127.0.0.1:0` on this runtime; returns its address.
    pub fn echo_upstream(&self) -> SocketAddr {
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind echo upstream");
        let addr = listener.local_addr().expect("echo address");
        self.runtime.spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if socket.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// A CLI invocation against this server: `toxi -h <url> <args...>`.
    pub fn cli(&self, args: &[&str]) -> Cli {
        let mut all = vec!["-h".to_string(), self.url.clone()];
        all.extend(args.iter().map(|s| s.to_string()));
        Cli::new(all)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

/// A port that was free a moment ago (the listener is closed before returning).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// What a run printed and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts exit 0 with empty stderr, and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            (self.code, self.stderr.as_str()),
            (0, ""),
            "expected success; stdout: {}",
            self.stdout
        );
        &self.stdout
    }
}

/// One run of the CLI, with a clean environment.
pub struct Cli {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Cli {
    pub fn new(args: Vec<String>) -> Cli {
        Cli {
            program: toxi_bin(),
            args,
            env: Vec::new(),
        }
    }

    pub fn args(args: &[&str]) -> Cli {
        Cli::new(args.iter().map(|s| s.to_string()).collect())
    }

    /// Runs another path to the binary (for example a link named `toxiproxy-cli`).
    pub fn program(mut self, path: &Path) -> Cli {
        self.program = path.to_path_buf();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Cli {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_else(|_| "/".into()))
            .env("LANG", "C.UTF-8")
            .env("TERM", "xterm")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs with stdout and stderr on pipes (what scripts see).
    pub fn run(&self) -> Output {
        let out = self.command().output().expect("run the toxi binary");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs with stdout on a pseudo-terminal (raw mode, 80x24); stderr on a pipe, or on a
    /// second pseudo-terminal with `stderr_tty`.
    pub fn run_tty(&self, stderr_tty: bool) -> Output {
        let (out_master, out_slave) = pty::open();
        let mut cmd = self.command();
        cmd.stdout(Stdio::from(out_slave));
        let err_pty = if stderr_tty {
            let (m, s) = pty::open();
            cmd.stderr(Stdio::from(s));
            Some(m)
        } else {
            cmd.stderr(Stdio::piped());
            None
        };
        let mut child = cmd.spawn().expect("run the toxi binary");
        // `cmd` still holds the slave ends; drop it so EOF (EIO) arrives when the child exits.
        drop(cmd);
        let stdout = pty::read_all(out_master);
        let stderr = match err_pty {
            Some(m) => pty::read_all(m),
            None => {
                let mut s = Vec::new();
                child
                    .stderr
                    .take()
                    .expect("stderr pipe")
                    .read_to_end(&mut s)
                    .expect("read stderr");
                s
            }
        };
        let status = child.wait().expect("wait for toxi");
        Output {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// Pseudo-terminals through libc (the only unsafe code of the tests).
mod pty {
    use super::*;

    /// Opens a pty pair in raw mode (bytes arrive as written, no `\r\n` translation).
    pub fn open() -> (OwnedFd, OwnedFd) {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        let mut size = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two fds into the given pointers; the name and termios
        // pointers may be null; `size` lives for the call.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                // `as _`: the pointer types differ by platform (const on Linux).
                std::ptr::null_mut::<libc::termios>() as _,
                &mut size as *mut libc::winsize as _,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both fds were just opened by openpty and are owned by nobody else.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // SAFETY: termios is plain data; tcgetattr fills it from a valid fd, cfmakeraw and
        // tcsetattr only read and write that struct and the fd.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut t), 0);
            libc::cfmakeraw(&mut t);
            assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t), 0);
        }
        (master, slave)
    }

    /// Reads a pty master until the other side is closed (Linux reports EIO then).
    pub fn read_all(master: OwnedFd) -> Vec<u8> {
        let mut file = std::fs::File::from(master);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        buf
    }
}

/// Sends `payload` through `addr` and returns (echo, elapsed).
pub fn roundtrip(addr: &str, payload: &[u8]) -> (Vec<u8>, Duration) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let start = std::time::Instant::now();
    stream.write_all(payload).expect("write through the proxy");
    let mut got = vec![0u8; payload.len()];
    stream.read_exact(&mut got).expect("read the echo");
    (got, start.elapsed())
}
