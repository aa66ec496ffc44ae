//! The `-config` file: proxies (and their toxics) applied before the API listens, and with
//! `-config-watch` re-applied declaratively whenever the file changes or on `SIGHUP`
//! (beyond.md §1.3, §1.4).
//!
//! The file has the `/populate` body's shape: a JSON array of proxies, each of which may
//! carry `"toxics"`. Loading follows the reference where it can (an unreadable file, bad
//! JSON or a missing field is logged and the server starts without it); an invalid toxic
//! refuses the start, since the file was meant to set up exactly those faults.
//!
//! Watching: a `notify` watcher on the file's directory (which sees Kubernetes' `..data`
//! symlink swap as well as in-place writes and renames) plus a re-check every
//! [`RECHECK`], both comparing the file's bytes with the last version seen, so a change is
//! applied once, within about a second, even where file events are not delivered. A reload
//! validates the whole file first: an invalid one changes nothing, is logged at `error`
//! and counted in `toxi_config_reloads_total{result="error"}`. A valid one creates,
//! updates and reconciles the proxies it lists and deletes the proxies that came from the
//! file and are gone from it; proxies created through the API are never touched.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::events::{Kind, Value as EventValue};
use crate::registry::{decode_declared, Declared, Error, Registry, Source};

/// How often a watched file is re-read in case no file event arrived.
pub const RECHECK: Duration = Duration::from_millis(1000);

/// How long a file event waits for the rest of its burst before the file is read.
const SETTLE: Duration = Duration::from_millis(50);

/// Why the config file refused to start the server.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("config file {path}: {reason}")]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

/// Applies the file at startup and returns the bytes it read (`None`: unreadable). Errors
/// the reference also meets (unreadable file, bad JSON, a missing field, a failed bind) are
/// logged and the server starts anyway; an invalid toxic is an error.
pub async fn load(registry: &Registry, path: &Path) -> Result<Option<Vec<u8>>, ConfigError> {
    let shown = path.display().to_string();
    let bytes = match tokio::fs::read(path).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(config = %shown, error = %e, "Error reading config file");
            return Ok(None);
        }
    };
    if let Err(e) = crate::model::json::decode_populate(&bytes) {
        tracing::error!(config = %shown, error = %e, "Failed to populate proxies from file");
        return Ok(Some(bytes));
    }
    let fatal = |e: Error| ConfigError {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let entries = decode_declared(&bytes, None).map_err(fatal)?;
    match registry.populate_declared(entries, Source::File).await {
        (done, None) => {
            tracing::info!(
                proxies = done.map_or(0, |d| d.len()),
                "Populated proxies from file"
            );
        }
        (_, Some(e @ Error::BadRequest(_))) => return Err(fatal(e)),
        (_, Some(e)) => tracing::error!(error = %e, "Failed to populate proxies from file"),
    }
    Ok(Some(bytes))
}

/// Re-applies the file declaratively (see the module doc). Counts the result.
pub async fn reload(registry: &Registry, path: &Path) -> Result<(), String> {
    let result = apply(registry, path).await;
    registry.metrics().config_reload(result.is_ok());
    match &result {
        Ok(()) => {
            tracing::info!(config = %path.display(), "Reloaded config file");
            let file = path.display().to_string();
            registry.events().publish(
                Kind::ConfigReloaded,
                None,
                &[("file", EventValue::Str(&file))],
            );
        }
        Err(reason) => {
            tracing::error!(config = %path.display(), error = %reason,
                "Config file not reloaded");
            let file = path.display().to_string();
            registry.events().publish(
                Kind::ConfigFailed,
                None,
                &[
                    ("file", EventValue::Str(&file)),
                    ("reason", EventValue::Str(reason)),
                ],
            );
        }
    }
    result
}

async fn apply(registry: &Registry, path: &Path) -> Result<(), String> {
    let bytes = tokio::fs::read(path).await.map_err(|e| e.to_string())?;
    let entries: Vec<Declared> = decode_declared(&bytes, None).map_err(|e| e.to_string())?;
    let keep: Vec<String> = entries.iter().map(|d| d.proxy.name.clone()).collect();
    if let (_, Some(e)) = registry.populate_declared(entries, Source::File).await {
        return Err(e.to_string());
    }
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    registry.delete_file_proxies_except(&keep).await;
    Ok(())
}

/// Watches `path` until `stop` is cancelled: reloads when its bytes differ from the last
/// version seen (`seen`: what [`load`] read) and on every `SIGHUP`.
pub fn spawn_watch(
    registry: Arc<Registry>,
    path: PathBuf,
    mut seen: Option<Vec<u8>>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    registry.metrics().config_watched();
    tokio::spawn(async move {
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<()>();
        let watcher = file_events(&path, tx);
        let mut hangup = hangups();
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = stop.cancelled() => break,
                _ = recheck.tick() => false,
                Some(()) = events.recv() => {
                    // Let a burst of events (a write in several steps) settle first.
                    tokio::time::sleep(SETTLE).await;
                    while events.try_recv().is_ok() {}
                    false
                }
                Some(()) = async { match &mut hangup { Some(s) => s.recv().await, None => None } } => {
                    tracing::info!("SIGHUP: reloading the config file");
                    true
                }
            };
            let now = std::fs::read(&path).ok();
            if forced || now != seen {
                seen = now;
                let _ = reload(&registry, &path).await;
            }
        }
        drop(watcher);
    })
}

/// A watcher on the directory holding `path` (non-recursive): every event there, such as
/// Kubernetes replacing the `..data` symlink, sends one wake-up. `None` when the platform
/// gives none; the periodic re-check still applies changes.
fn file_events(
    path: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reads (ours included) are not changes.
        if !event.is_ok_and(|e| e.kind.is_access()) {
            let _ = tx.send(());
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "Cannot watch the config file; re-checking it"))
    .ok()?;
    if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, dir = %dir.display(),
            "Cannot watch the config file's directory; re-checking it");
        return None;
    }
    Some(watcher)
}

/// `SIGHUP`, which asks for a reload (only while the config file is watched; otherwise the
/// signal keeps its default action).
fn hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup())
        .map_err(|e| tracing::warn!(error = %e, "Cannot handle SIGHUP"))
        .ok()
}
