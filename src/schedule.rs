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

use crate::events::{Kind, Value as EventValue};
use crate::registry::{Registry, ScheduleChange, ScheduleEvent};

/// Runs the schedule timer of `registry` until `stop` is cancelled.
pub async fn run(registry: Arc<Registry>, stop: CancellationToken) {
    let wake = registry.schedule_wake();
    loop {
        let (events, next) = registry.tick(Instant::now());
        for event in &events {
            publish(&registry, event);
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

/// Hands one schedule change to the event stream (beyond.md §3.2) and the log.
fn publish(registry: &Registry, event: &ScheduleEvent) {
    let (kind, what) = match event.change {
        ScheduleChange::Activated => (Kind::ToxicActivated, "Toxic activated by its schedule"),
        ScheduleChange::Deactivated => {
            (Kind::ToxicDeactivated, "Toxic deactivated by its schedule")
        }
        ScheduleChange::Expired => (Kind::ToxicExpired, "Toxic expired"),
    };
    tracing::info!(name = %event.proxy, toxic = %event.toxic, "{what}");
    registry.events().publish(
        kind,
        Some(&event.proxy),
        &[("toxic", EventValue::Str(&event.toxic))],
    );
}
