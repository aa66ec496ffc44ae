//! CPU time of this process's threads by name, from /proc/self/task/*/schedstat
//! (nanoseconds on CPU), so a figure can say where the time went.

use std::time::Duration;

/// Total CPU time of the threads whose name starts with `prefix`.
pub fn threads(prefix: &str) -> Duration {
    threads_any(&[prefix])
}

/// Name prefixes of the proxy's threads: the multi-thread runtime's `toxi-proxy` workers,
/// or per-core runtimes' `toxi-worker-N` threads. Edit here if the names change.
pub const PROXY_THREADS: &[&str] = &["toxi-proxy", "toxi-worker"];

/// Total CPU time of the threads whose name starts with any of `prefixes`.
pub fn threads_any(prefixes: &[&str]) -> Duration {
    tasks("/proc/self/task", |path| {
        std::fs::read_to_string(path.join("comm")).is_ok_and(|c| {
            let name = c.trim_end();
            prefixes.iter().any(|p| name.starts_with(p))
        })
    })
}

/// Total CPU time of every thread of process `pid` (a reference proxy).
pub fn process(pid: u32) -> Duration {
    tasks(&format!("/proc/{pid}/task"), |_| true)
}

fn tasks(dir: &str, keep: impl Fn(&std::path::Path) -> bool) -> Duration {
    let mut total = 0u64;
    let Ok(dir) = std::fs::read_dir(dir) else {
        return Duration::ZERO;
    };
    for task in dir.flatten() {
        let path = task.path();
        if !keep(&path) {
            continue;
        }
        if let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
            })
        {
            total += ns;
        }
    }
    Duration::from_nanos(total)
}

/// CPU time of the proxy runtime and of the load generator, read together.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    pub proxy: Duration,
    pub loadgen: Duration,
}

pub fn split() -> Split {
    Split {
        proxy: threads_any(PROXY_THREADS),
        loadgen: threads("loadgen"),
    }
}

impl std::ops::Sub for Split {
    type Output = Split;
    fn sub(self, o: Split) -> Split {
        Split {
            proxy: self.proxy.saturating_sub(o.proxy),
            loadgen: self.loadgen.saturating_sub(o.loadgen),
        }
    }
}

impl std::ops::Add for Split {
    type Output = Split;
    fn add(self, o: Split) -> Split {
        Split {
            proxy: self.proxy + o.proxy,
            loadgen: self.loadgen + o.loadgen,
        }
    }
}

impl Split {
    pub const ZERO: Split = Split {
        proxy: Duration::ZERO,
        loadgen: Duration::ZERO,
    };
}
