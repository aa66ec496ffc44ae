//! `toxi-server`: parse Go-style flags, set up logging, run the server until SIGINT or
//! SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use toxi::server::{Config, Server, StartError};

/// The flags, parsed by clap after `normalise` turned Go's `-flag` forms into `--flag`.
#[derive(Parser, Debug)]
#[command(disable_help_flag = true, disable_version_flag = true)]
struct Flags {
    #[arg(long, default_value = "localhost")]
    host: String,
    #[arg(long, default_value = "8474")]
    port: String,
    #[arg(long)]
    config: Option<String>,
    #[arg(long = "config-watch", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    config_watch: Option<bool>,
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<i64>,
    #[arg(long = "proxy-metrics", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    proxy_metrics: Option<bool>,
    #[arg(long = "runtime-metrics", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    runtime_metrics: Option<bool>,
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    version: Option<bool>,
    #[arg(long = "dial-timeout", value_parser = parse_go_duration)]
    dial_timeout: Option<Duration>,
    #[arg(long = "api-token")]
    api_token: Option<String>,
    #[arg(long = "toxic-buffer-bytes")]
    toxic_buffer_bytes: Option<usize>,
    #[arg(long = "max-toxic-duration", value_parser = parse_go_duration)]
    max_toxic_duration: Option<Duration>,
    /// Positional arguments are ignored, as in the reference.
    #[arg(hide = true)]
    rest: Vec<String>,
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("parse error".into()),
    }
}

/// A subset of Go's `time.ParseDuration`: a number with a unit (`ns`, `us`, `ms`, `s`, `m`,
/// `h`), possibly repeated (`1m30s`).
fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {s:?}");
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| err())?;
        let unit_end = rest[num_end..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .map_or(rest.len(), |i| num_end + i);
        let scale = match &rest[num_end..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| err())
}

const USAGE_FLAGS: &[(&str, &str, &str)] = &[
    ("api-token", " string", "\tRequire 'Authorization: Bearer <token>' on every API route but /version (also TOXI_API_TOKEN)"),
    ("config", " string", "\tJSON file containing proxies to create on startup"),
    ("config-watch", "", "\tRe-apply the -config file when it changes and on SIGHUP (also TOXI_CONFIG_WATCH=1) (default \"false\")"),
    ("dial-timeout", " duration", "\tHow long a connection waits for its upstream dial (default 10s)"),
    ("host", " string", "\tHost for toxiproxy's API to listen on (default \"localhost\")"),
    ("max-toxic-duration", " duration", "\tToxics added through the API without a schedule duration get this one; longer ones are refused (default none)"),
    ("port", " string", "\tPort for toxiproxy's API to listen on (default \"8474\")"),
    ("proxy-metrics", "", "\tenable toxiproxy-specific prometheus metrics (default \"false\")"),
    ("runtime-metrics", "", "\tenable runtime-related prometheus metrics (default \"false\")"),
    ("seed", " int", "\tSeed for randomizing toxics with (default random)"),
    ("toxic-buffer-bytes", " int", "\tMost data bytes the toxics of one connection direction hold before reading pauses (default 4194304)"),
    ("version", "", "\tprint the version (default \"false\")"),
];

fn usage(argv0: &str) -> String {
    let mut out = format!("Usage of {argv0}:\n");
    for (name, kind, help) in USAGE_FLAGS {
        out.push_str(&format!("  -{name}{kind}\n    {help}\n"));
    }
    out
}

/// Turns Go flag syntax into clap's: `-flag` and `-flag=v` become `--flag`/`--flag=v`.
/// Parsing stops at the first non-flag argument or `--`, as Go's `flag` package does.
/// Returns `Err(name)` for `-h`/`-help`/`--help`.
fn normalise(args: &[String]) -> Result<Vec<String>, ()> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" || !arg.starts_with('-') || arg == "-" {
            out.push("--".into());
            out.extend(iter.cloned());
            break;
        }
        let name = arg.trim_start_matches('-');
        let bare = name.split('=').next().unwrap_or_default();
        if bare == "h" || bare == "help" {
            return Err(());
        }
        out.push(format!("--{name}"));
        // A separate value belongs to non-boolean flags.
        if !name.contains('=') && !matches!(bare, "proxy-metrics" | "runtime-metrics" | "version") {
            if let Some(value) = iter.next() {
                out.push(value.clone());
            }
        }
    }
    Ok(out)
}

fn parse(argv0: &str, args: &[String]) -> Result<Flags, ExitCode> {
    let Ok(normalised) = normalise(args) else {
        eprint!("{}", usage(argv0));
        return Err(ExitCode::SUCCESS);
    };
    let mut clap_args = vec![argv0.to_string()];
    clap_args.extend(normalised);
    Flags::try_parse_from(clap_args).map_err(|e| {
        use clap::error::{ContextKind, ErrorKind};
        let arg = e
            .get(ContextKind::InvalidArg)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let flag = arg
            .split(['=', ' '])
            .next()
            .unwrap_or_default()
            .trim_start_matches('-')
            .to_string();
        match e.kind() {
            ErrorKind::UnknownArgument => eprintln!("flag provided but not defined: -{flag}"),
            ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
                let value = e
                    .get(ContextKind::InvalidValue)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                eprintln!("invalid value {value:?} for flag -{flag}: parse error");
            }
            _ => eprintln!(
                "{}",
                e.to_string().lines().next().unwrap_or("invalid arguments")
            ),
        }
        eprint!("{}", usage(argv0));
        ExitCode::from(2)
    })
}

/// Sets up logging from `LOG_LEVEL` and `LOG_FORMAT` (see `toxi::logging`).
fn init_logging() {
    toxi::logging::init();
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
    if flags.version == Some(true) {
        println!("toxiproxy-server version {}", toxi::VERSION);
        return ExitCode::SUCCESS;
    }
    init_logging();
    let config = Config {
        host: flags.host,
        port: flags.port,
        config_file: flags.config.filter(|c| !c.is_empty()).map(Into::into),
        config_watch: flags.config_watch.unwrap_or_else(|| {
            std::env::var("TOXI_CONFIG_WATCH").is_ok_and(|v| parse_go_bool(&v) == Ok(true))
        }),
        seed: flags.seed,
        proxy_metrics: flags.proxy_metrics.unwrap_or(false),
        runtime_metrics: flags.runtime_metrics.unwrap_or(false),
        dial_timeout: flags.dial_timeout.unwrap_or(Duration::from_secs(10)),
        toxic_buffer_bytes: flags
            .toxic_buffer_bytes
            .unwrap_or(toxi::proxy::TOXIC_BUFFER_BYTES),
        api_token: flags
            .api_token
            .or_else(|| std::env::var("TOXI_API_TOKEN").ok())
            .filter(|t| !t.is_empty()),
        proxy_runtime: None,
        max_toxic_duration: flags.max_toxic_duration,
    };
    // Two runtimes: the data path (listeners and connections) on a multi-threaded one,
    // the control API on a thread of its own, so that busy connections never delay it.
    let runtimes = tokio::runtime::Builder::new_multi_thread()
        .thread_name("toxi-proxy")
        .enable_all()
        .build()
        .and_then(|proxy| {
            let api = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok((proxy, api))
        });
    let (proxy_runtime, api_runtime) = match runtimes {
        Ok(rts) => rts,
        Err(e) => {
            eprintln!("toxi-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = Config {
        proxy_runtime: Some(proxy_runtime.handle().clone()),
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
        server.shutdown().await;
        ExitCode::SUCCESS
    });
    proxy_runtime.shutdown_timeout(Duration::from_secs(2));
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
        let f = parse(
            "x",
            &strings(&[
                "-host=0.0.0.0",
                "--port",
                "9",
                "-proxy-metrics",
                "-seed",
                "-5",
            ]),
        )
        .unwrap();
        assert_eq!(f.host, "0.0.0.0");
        assert_eq!(f.port, "9");
        assert_eq!(f.proxy_metrics, Some(true));
        assert_eq!(f.seed, Some(-5));
        let f = parse(
            "x",
            &strings(&["-runtime-metrics=false", "-dial-timeout=1m30s", "pos", "-x"]),
        )
        .unwrap();
        assert_eq!(f.runtime_metrics, Some(false));
        assert_eq!(f.dial_timeout, Some(Duration::from_secs(90)));
        assert!(parse("x", &strings(&["-bogus"])).is_err());
        assert!(parse("x", &strings(&["-h"])).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("2s").unwrap(), Duration::from_secs(2));
        assert!(parse_go_duration("2").is_err());
        assert!(parse_go_duration("").is_err());
    }
}
