//! Temporary stand-in for the HTTP API (replaced by the real module).
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
/// API state.
#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<crate::registry::Registry>,
    pub metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    pub api_token: Option<String>,
}
/// Serves the API until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    _state: ApiState,
    shutdown: CancellationToken,
) {
    shutdown.cancelled().await;
    drop(listener);
}
