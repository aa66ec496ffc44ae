//! HAProxy in TCP mode as a reference proxy, measured in the same run as toxi and the
//! direct connection (`--haproxy`). It runs as a subprocess with one frontend per upstream
//! the figures use, all on 127.0.0.1, and is killed when the run ends.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::load::Res;
use crate::upstream::Upstreams;

/// A running HAProxy and the listen address of each frontend.
pub struct Haproxy {
    child: Child,
    config: PathBuf,
    log: PathBuf,
    /// "HAProxy 2.6.12", for the table.
    pub label: String,
    pub sink: SocketAddr,
    pub echo: SocketAddr,
    pub echo_small: SocketAddr,
    pub oneshot: SocketAddr,
    pub hello: SocketAddr,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Haproxy {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The binary: `TOXI_BENCH_HAPROXY`, else `haproxy` from `PATH` (or /usr/sbin).
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TOXI_BENCH_HAPROXY") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
}

fn version(bin: &PathBuf) -> Res<String> {
    let out = Command::new(bin)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {} -v: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or("?");
    // "2.6.12-1+deb12u4" → "2.6.12"
    Ok(format!("HAProxy {}", v.split('-').next().unwrap_or(v)))
}

/// Starts HAProxy with `threads` threads in plain TCP mode (its defaults otherwise: no
/// splicing), and waits until every frontend accepts. `nofile` is the open-files limit
/// the subprocess inherits.
pub async fn start(bin: PathBuf, threads: usize, nofile: u64, up: &Upstreams) -> Res<Haproxy> {
    // Two descriptors per connection, inside the open-files limit it inherits.
    let maxconn = (nofile.saturating_sub(200) / 2).clamp(100, 40_000);
    let label = version(&bin)?;
    let fronts = [
        ("sink", up.sink),
        ("echo", up.echo),
        ("echo_small", up.echo_small),
        ("oneshot", up.oneshot),
        ("hello", up.hello),
    ];
    let mut config = format!(
        "global\n  nbthread {threads}\n  maxconn {maxconn}\n\
         defaults\n  mode tcp\n  timeout connect 10s\n  timeout client 1h\n  timeout server 1h\n"
    );
    let mut listen = Vec::new();
    for (name, upstream) in fronts {
        // HAProxy cannot report the port it bound, so the bench picks one; a clash makes
        // HAProxy fail to start, which is reported.
        let addr: SocketAddr = ([127, 0, 0, 1], crate::memory::free_port()?).into();
        config.push_str(&format!(
            "listen {name}\n  bind {addr}\n  server {name} {upstream}\n"
        ));
        listen.push(addr);
    }
    let path = std::env::temp_dir().join(format!("toxi-bench-haproxy-{}.cfg", std::process::id()));
    std::fs::write(&path, config).map_err(|e| e.to_string())?;
    // Its messages go to a file (a pipe nobody reads could fill up and stall it).
    let log_path = path.with_extension("log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let child = Command::new(&bin)
        .args(["-db", "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let mut h = Haproxy {
        child,
        config: path,
        log: log_path,
        label,
        sink: listen[0],
        echo: listen[1],
        echo_small: listen[2],
        oneshot: listen[3],
        hello: listen[4],
    };
    let t0 = Instant::now();
    for addr in listen {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = h.child.try_wait() {
                let err = std::fs::read_to_string(&h.log).unwrap_or_default();
                return Err(format!("haproxy exited ({status}): {}", err.trim()));
            }
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(format!("haproxy did not listen on {addr} within 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(h)
}
