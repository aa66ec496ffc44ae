//! The schedule timer: one task for the whole registry that flips scheduled toxics on and
//! off and removes expired ones when they are due (beyond.md §1.1).
//!
//! The timer sleeps until the earliest due transition of any toxic ([`Registry::tick`]
//! computes it) or until a schedule is set, changed or cleared. A transition reaches live
//! connections through the published chain, like any toxic change: links never keep
//! timers of their own for schedules.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::registry::{Registry, ScheduleChange, ScheduleEvent};

/// Runs the schedule timer of `registry` until `stop` is cancelled.
pub async fn run(registry: Arc<Registry>, stop: CancellationToken) {
    let wake = registry.schedule_wake();
    loop {
        let (events, next) = registry.tick(Instant::now());
        for event in &events {
            publish(event);
        }
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
            _ = sleep => {}
        }
    }
}

/// Hands one schedule change to the event stream (beyond.md §3.2).
fn publish(event: &ScheduleEvent) {
    match event.change {
        ScheduleChange::Activated => toxic_activated(&event.proxy, &event.toxic),
        ScheduleChange::Deactivated => toxic_deactivated(&event.proxy, &event.toxic),
        ScheduleChange::Expired => toxic_expired(&event.proxy, &event.toxic),
    }
}

/// The `toxic.activated` event. `/events` is not built yet: the change is logged.
pub fn toxic_activated(proxy: &str, toxic: &str) {
    tracing::info!(name = %proxy, toxic = %toxic, "Toxic activated by its schedule");
}

/// The `toxic.deactivated` event. `/events` is not built yet: the change is logged.
pub fn toxic_deactivated(proxy: &str, toxic: &str) {
    tracing::info!(name = %proxy, toxic = %toxic, "Toxic deactivated by its schedule");
}

/// The `toxic.expired` event (the registry has already logged the removal).
pub fn toxic_expired(proxy: &str, toxic: &str) {
    tracing::debug!(name = %proxy, toxic = %toxic, "Toxic expired event");
}
