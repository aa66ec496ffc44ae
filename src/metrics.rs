//! Prometheus metrics for `/metrics`.

use std::sync::Arc;

use crate::registry::Registry;

/// A function that renders the metrics text, or `None` when neither metrics flag is set
/// (then `/metrics` is not routed, as in the reference).
pub type Renderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Builds the `/metrics` renderer for the flags given.
pub fn renderer(
    _registry: &Arc<Registry>,
    proxy_metrics: bool,
    runtime_metrics: bool,
) -> Option<Renderer> {
    if !proxy_metrics && !runtime_metrics {
        return None;
    }
    Some(Arc::new(String::new))
}
