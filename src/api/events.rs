//! `GET /events`: the event bus (`crate::events`) as Server-Sent Events.
//!
//! Each event is one `data:` line holding one JSON object, then a blank line. A comment
//! line (`: keepalive`) every 15 s keeps idle streams open through intermediaries and
//! notices readers that went away. Every reader has its own task that moves events from
//! the bus into the response: a reader that stops reading stalls only that task, and the
//! bus drops what it cannot keep for it (it then gets a `lagged` event).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::channel::Channel;
use http_body_util::BodyExt;
use hyper::header;
use tokio_util::sync::CancellationToken;

use super::handlers::Reply;
use super::{ApiState, Body};

/// How often an idle stream gets a comment line.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The response head and its streaming body. The stream ends at server shutdown.
pub fn open(state: &ApiState, shutdown: CancellationToken) -> (Reply, Body) {
    let mut reader = state.registry.events().subscribe();
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(8);
    tokio::spawn(async move {
        let mut frame = Bytes::from_static(b": connected\n\n");
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                sent = tx.send_data(frame) => if sent.is_err() { return },
            }
            frame = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                ev = reader.next() => match ev {
                    Some(ev) => Bytes::from(format!("data: {ev}\n\n")),
                    None => return,
                },
                _ = beat.tick() => Bytes::from_static(b": keepalive\n\n"),
            };
        }
    });
    let reply = Reply::new(200, Some("text/event-stream"), Bytes::new())
        .with_header(header::CACHE_CONTROL, "no-cache")
        .with_header(header::HeaderName::from_static("x-accel-buffering"), "no");
    (reply, body.boxed())
}
