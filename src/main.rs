//! `toxi-server`: parse Go-style flags, set up logging, run the server until SIGINT or
//! SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use toxi::gocompat::flag::{self, FlagError, FlagSpec, Mode, Value};
use toxi::gocompat::parse_duration;
use toxi::server::{Config, Server, StartError};

/// The flags, with the reference's defaults. A new flag is a field here, a row in
/// [`FLAGS`] and an arm in [`Flags::set`].
#[derive(Debug)]
struct Flags {
    host: String,
    port: String,
    config: Option<String>,
    config_watch: Option<bool>,
    seed: Option<i64>,
    proxy_metrics: bool,
    runtime_metrics: bool,
    version: bool,
    dial_timeout: Duration,
    dial_retry: Duration,
    shutdown_grace: Duration,
    toxic_buffer_bytes: usize,
    api_token: Option<String>,
    ui_allowed_hosts: Option<String>,
    max_toxic_duration: Option<Duration>,
}

impl Default for Flags {
    fn default() -> Flags {
        Flags {
            host: "localhost".into(),
            port: "8474".into(),
            config: None,
            seed: None,
            proxy_metrics: false,
            runtime_metrics: false,
            version: false,
            dial_timeout: Duration::from_secs(10),
            dial_retry: toxi::proxy::DEFAULT_DIAL_RETRY,
            shutdown_grace: toxi::server::DEFAULT_SHUTDOWN_GRACE,
            toxic_buffer_bytes: toxi::proxy::TOXIC_BUFFER_BYTES,
            api_token: None,
            ui_allowed_hosts: None,
            config_watch: None,
            max_toxic_duration: None,
        }
    }
}

/// One flag as `-help` lists it: name, value type (`""` for a bool flag) and usage line.
struct ServerFlag {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

impl FlagSpec for ServerFlag {
    fn names(&self) -> &[&str] {
        std::slice::from_ref(&self.name)
    }
    fn is_bool(&self) -> bool {
        self.kind.is_empty()
    }
}

/// In the order Go's `PrintDefaults` lists them (by name).
const FLAGS: &[ServerFlag] = &[
    ServerFlag { name: "api-token", kind: "string", help: "Require 'Authorization: Bearer <token>' on every API route but /version (also TOXI_API_TOKEN)" },
    ServerFlag { name: "config", kind: "string", help: "JSON file containing proxies to create on startup" },
    ServerFlag { name: "config-watch", kind: "", help: "Re-apply the -config file when it changes and on SIGHUP (also TOXI_CONFIG_WATCH=1) (default \"false\")" },
    ServerFlag { name: "dial-retry", kind: "duration", help: "How long a refused upstream dial is retried before the client is closed; 0 closes at once (default 100ms)" },
    ServerFlag { name: "dial-timeout", kind: "duration", help: "How long a connection waits for its upstream dial (default 10s)" },
    ServerFlag { name: "host", kind: "string", help: "Host for toxiproxy's API to listen on (default \"localhost\")" },
    ServerFlag { name: "max-toxic-duration", kind: "duration", help: "Toxics added through the API without a schedule duration get this one; longer ones are refused (default none)" },
    ServerFlag { name: "port", kind: "string", help: "Port for toxiproxy's API to listen on (default \"8474\")" },
    ServerFlag { name: "proxy-metrics", kind: "", help: "enable toxiproxy-specific prometheus metrics (default \"false\")" },
    ServerFlag { name: "runtime-metrics", kind: "", help: "enable runtime-related prometheus metrics (default \"false\")" },
    ServerFlag { name: "seed", kind: "int", help: "Seed for randomizing toxics with (default random)" },
    ServerFlag { name: "shutdown-grace", kind: "duration", help: "On SIGTERM or SIGINT, how long open connections may finish before they are closed; 0 closes at once (default 5s)" },
    ServerFlag { name: "toxic-buffer-bytes", kind: "int", help: "Most data bytes the toxics of one connection direction hold before reading pauses (default 4194304)" },
    ServerFlag { name: "ui-allowed-hosts", kind: "string", help: "Comma-separated host names the dashboard (/ui/) may be reached by, beyond IP literals and localhost" },
    ServerFlag { name: "version", kind: "", help: "print the version (default \"false\")" },
];

impl Flags {
    /// Stores one given flag; `Err(())` when its value does not parse as its type.
    fn set(&mut self, name: &str, value: Value) -> Result<(), ()> {
        match (name, value) {
            ("host", Value::Text(v)) => self.host = v,
            ("port", Value::Text(v)) => self.port = v,
            ("config", Value::Text(v)) => self.config = Some(v),
            ("seed", Value::Text(v)) => self.seed = Some(v.parse().map_err(|_| ())?),
            ("proxy-metrics", Value::Bool(v)) => self.proxy_metrics = v,
            ("runtime-metrics", Value::Bool(v)) => self.runtime_metrics = v,
            ("version", Value::Bool(v)) => self.version = v,
            ("dial-timeout", Value::Text(v)) => self.dial_timeout = parse_duration(&v).ok_or(())?,
            ("dial-retry", Value::Text(v)) => self.dial_retry = parse_duration(&v).ok_or(())?,
            ("shutdown-grace", Value::Text(v)) => {
                self.shutdown_grace = parse_duration(&v).ok_or(())?
            }
            ("toxic-buffer-bytes", Value::Text(v)) => {
                self.toxic_buffer_bytes = v.parse().map_err(|_| ())?
            }
            ("api-token", Value::Text(v)) => self.api_token = Some(v),
            ("ui-allowed-hosts", Value::Text(v)) => self.ui_allowed_hosts = Some(v),
            ("config-watch", Value::Bool(v)) => self.config_watch = Some(v),
            ("max-toxic-duration", Value::Text(v)) => {
                self.max_toxic_duration = Some(parse_duration(&v).ok_or(())?)
            }
            _ => return Err(()),
        }
        Ok(())
    }
}

fn usage(argv0: &str) -> String {
    let mut out = format!("Usage of {argv0}:\n");
    for f in FLAGS {
        let kind = if f.kind.is_empty() {
            String::new()
        } else {
            format!(" {}", f.kind)
        };
        out.push_str(&format!("  -{}{kind}\n    \t{}\n", f.name, f.help));
    }
    out
}

/// Parses the arguments as Go's `flag` package does; positional arguments are ignored, as
/// in the reference.
fn parse_flags(args: &[String]) -> Result<Flags, FlagError> {
    let mut flags = Flags::default();
    for given in flag::parse(FLAGS, args, Mode::Stop)?.flags {
        let text = match &given.value {
            Value::Text(t) => t.clone(),
            Value::Bool(_) => String::new(),
        };
        flags
            .set(given.spec.name, given.value)
            .map_err(|()| FlagError::InvalidValue {
                name: given.name,
                value: text,
            })?;
    }
    Ok(flags)
}

/// Go's `flag.ExitOnError`: a help request prints the usage and exits 0, any other error
/// prints the error and the usage and exits 2.
fn parse(argv0: &str, args: &[String]) -> Result<Flags, ExitCode> {
    parse_flags(args).map_err(|e| {
        if e != FlagError::HelpRequested {
            eprintln!("{e}");
        }
        eprint!("{}", usage(argv0));
        if e == FlagError::HelpRequested {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        }
    })
}

/// Sets up logging from `LOG_LEVEL` and `LOG_FORMAT` (see `toxi::logging`).
fn init_logging() -> toxi::logging::LogGuard {
    toxi::logging::init()
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let mut argv = std::env::args();
    let argv0 = argv.next().unwrap_or_else(|| "toxi-server".into());
    let args: Vec<String> = argv.collect();
    let flags = match parse(&argv0, &args) {
        Ok(f) => f,
        Err(code) => return code,
    };
    if flags.version {
        println!("toxiproxy-server version {}", toxi::VERSION);
        return ExitCode::SUCCESS;
    }
    let _log = init_logging();
    let config = Config {
        host: flags.host,
        port: flags.port,
        config_file: flags.config.filter(|c| !c.is_empty()).map(Into::into),
        config_watch: flags.config_watch.unwrap_or_else(|| {
            std::env::var("TOXI_CONFIG_WATCH")
                .is_ok_and(|v| toxi::gocompat::parse_bool(&v) == Some(true))
        }),
        seed: flags.seed,
        proxy_metrics: flags.proxy_metrics,
        runtime_metrics: flags.runtime_metrics,
        dial_timeout: flags.dial_timeout,
        toxic_buffer_bytes: flags.toxic_buffer_bytes,
        dial_retry: flags.dial_retry,
        shutdown_grace: flags.shutdown_grace,
        api_token: flags
            .api_token
            .or_else(|| std::env::var("TOXI_API_TOKEN").ok())
            .filter(|t| !t.is_empty()),
        ui_allowed_hosts: flags
            .ui_allowed_hosts
            .iter()
            .flat_map(|h| h.split(','))
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect(),
        data_path: toxi::proxy::DataPath::caller(),
        max_toxic_duration: flags.max_toxic_duration,
    };
    // The data path (listeners and connections) on one worker thread per core, the
    // control API on a thread of its own, so that busy connections never delay it.
    let runtimes = toxi::proxy::Workers::per_core("toxi-proxy").and_then(|workers| {
        let api = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok((workers, api))
    });
    let (workers, api_runtime) = match runtimes {
        Ok(rts) => rts,
        Err(e) => {
            eprintln!("toxi-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = Config {
        data_path: workers.data_path(),
        ..config
    };
    let code = api_runtime.block_on(async {
        let server = match Server::start(config).await {
            Ok(s) => s,
            Err(e @ StartError::ApiBind(_)) => {
                tracing::error!(error = %e, "Server finished with error");
                eprintln!("toxi-server: cannot listen for the API: {e}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                tracing::error!(error = %e, "Server finished with error");
                eprintln!("toxi-server: {e}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        // A second signal cuts the drain short.
        tokio::select! {
            _ = server.shutdown() => {}
            _ = wait_for_signal() => tracing::warn!("Second signal: closing connections now"),
        }
        ExitCode::SUCCESS
    });
    workers.shutdown(Duration::from_secs(2));
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_style_flags() {
        let f = parse_flags(&strings(&[
            "-host=0.0.0.0",
            "--port",
            "9",
            "-proxy-metrics",
            "-seed",
            "-5",
        ]))
        .unwrap();
        assert_eq!(f.host, "0.0.0.0");
        assert_eq!(f.port, "9");
        assert!(f.proxy_metrics);
        assert_eq!(f.seed, Some(-5));
        let f = parse_flags(&strings(&[
            "-runtime-metrics=false",
            "-dial-timeout=1m30s",
            "pos",
            "-x",
        ]))
        .unwrap();
        assert!(!f.runtime_metrics);
        assert_eq!(f.dial_timeout, Duration::from_secs(90));
        let err = |a: &[&str]| parse_flags(&strings(a)).unwrap_err().to_string();
        assert_eq!(err(&["-bogus"]), "flag provided but not defined: -bogus");
        assert_eq!(err(&["-h"]), "flag: help requested");
        assert_eq!(
            err(&["-seed", "x"]),
            "invalid value \"x\" for flag -seed: parse error"
        );
        assert_eq!(
            err(&["-dial-timeout=5"]),
            "invalid value \"5\" for flag -dial-timeout: parse error"
        );
        assert_eq!(
            err(&["-version=maybe"]),
            "invalid boolean value \"maybe\" for -version: parse error"
        );
        assert_eq!(err(&["-port"]), "flag needs an argument: -port");
    }

    #[test]
    fn usage_lists_every_flag() {
        let u = usage("toxi-server");
        assert!(u.starts_with("Usage of toxi-server:\n  -api-token string\n    \tRequire"));
        assert!(u.contains("\n  -version\n    \tprint the version"));
        assert_eq!(u.lines().count(), 1 + 2 * FLAGS.len());
    }
}
