//! The month-to-date appraisal gauges, computed on a thread of their own.
//!
//! Once a minute the daemon sets `floorwatch_appraisal_*` for every agent. Summing a month
//! of accumulators and making a row per agent takes about 100 ms at 100,000 agents; on the
//! engine task that was 100 ms in which no event was applied and no deadline fired. The
//! engine task now hands this thread a snapshot (an [`engine::Checkpoint`], cheap to take:
//! it shares the state until the engine changes it) and goes on; the thread computes the
//! rows from the snapshot (waivers are events the engine has applied) and replaces the
//! gauges.
//!
//! The rows are those of [`engine::Engine::appraisal`] at the snapshot's instant (a test
//! in the engine checks that the two agree).
//!
//! The same refresh computes today's rows too, and publishes both as the floor's
//! [`Standing`](crate::floor::Standing), which the console pages (`/lead`, `/me`) read.
//!
//! Owns: the appraisal thread and what it sets in [`Metrics`] and the floor's standing.
//! Must not: touch the live
//! engine (it reads a snapshot) or write the store (it only reads waivers).
//!
//! [`engine::Checkpoint`]: crate::engine::Checkpoint
//! [`engine::Engine::appraisal`]: crate::engine::Engine::appraisal

use std::sync::Arc;

use crate::config::RulesConfig;
use crate::engine::Checkpoint;
use crate::floor::{Floor, Standing};
use crate::metrics::Metrics;
use crate::time::{Period, Timestamp};
use crate::worker::Worker;

/// One refresh: the state, the month and day, and the instant open items are counted to.
pub struct AppraisalJob {
    pub snapshot: Arc<Checkpoint>,
    pub month: Period,
    pub day: Period,
    pub end: Timestamp,
}

/// The thread and its one-slot queue ([`Worker`]).
pub type Appraiser = Worker<AppraisalJob>;

/// Starts the thread.
pub fn start(
    rules: RulesConfig,
    metrics: Arc<Metrics>,
    floor: Arc<Floor>,
) -> std::io::Result<Appraiser> {
    Worker::start("appraisal", move |job: AppraisalJob| {
        let started = std::time::Instant::now();
        let rows = job.snapshot.appraisal(&rules, job.month, job.end, &[]);
        let today = job.snapshot.appraisal(&rules, job.day, job.end, &[]);
        let agents = rows.len();
        floor.set_standing(Standing::new(job.end, today, rows.clone()));
        metrics.set_appraisal(rows);
        // The snapshot may hold the last copies of changed agents: freed here, not on the
        // engine task.
        drop(job);
        tracing::debug!(
            agents,
            ms = started.elapsed().as_millis() as u64,
            "appraisal gauges refreshed"
        );
    })
}
