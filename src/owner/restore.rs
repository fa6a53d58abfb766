//! Start-up from the store: the newest engine checkpoint, then the journal after it, before
//! the owner task takes the engine over.
//!
//! Owns: [`restore`] (store opening, checkpoint decoding, journal replay, the violations and
//! alerts the replayed tail raises). Must not: serve anything or read the wall clock (the
//! caller passes the start time).

use anyhow::Context;

use super::KPI_DAYS;
use crate::alert::{outbox, Alerts, Micros};
use crate::config::Config;
use crate::engine::{Applied, Checkpoint, Effect, Engine, KpiRetention};
use crate::store::{read_records, Store, ViolationOp};

/// A store opened and an engine brought up to its journal's end.
pub struct Restored {
    pub store: Store,
    pub engine: Engine,
    /// Journal records replayed after the checkpoint.
    pub replayed: u64,
    /// Whether a checkpoint was restored.
    pub from_checkpoint: bool,
}

/// Opens the store in `store.dir` (a torn journal tail is truncated and logged), restores the
/// newest checkpoint (or starts a fresh engine) and replays the journal after it, upserting
/// the violations raised. Blocks on file I/O; runs before anything is served.
///
/// With `alerts`, the store's alert outbox is loaded into the book first, and the violations
/// the tail raises and clears go to the book as well (`wall`: the time of the start).
pub fn restore(config: &Config, alerts: Option<&Alerts>, wall: Micros) -> anyhow::Result<Restored> {
    let started = std::time::Instant::now();
    let dir = &config.store.dir;
    let (mut store, recovery) =
        Store::open(dir).with_context(|| format!("cannot open the store in {}", dir.display()))?;
    if recovery.truncated_bytes > 0 {
        tracing::warn!(
            bytes = recovery.truncated_bytes,
            segment = recovery.end.segment,
            offset = recovery.end.offset,
            "journal had a torn tail; truncated to the last good record (the cut bytes are kept in a quarantine file)"
        );
    }
    let retention = KpiRetention::LastDays(KPI_DAYS);
    let checkpoint = store
        .latest_checkpoint()
        .context("cannot read checkpoints")?;
    let from_checkpoint = checkpoint.is_some();
    let (mut engine, from) = match checkpoint {
        Some(cp) => {
            let parsed: Checkpoint = serde_json::from_str(&cp.json)
                .with_context(|| format!("checkpoint {} does not decode", cp.id))?;
            let engine = Engine::restore(config.rules.clone(), retention, parsed)
                .with_context(|| format!("checkpoint {}", cp.id))?;
            (engine, Some(cp.position))
        }
        None => (
            Engine::with_retention(config.rules.clone(), retention),
            None,
        ),
    };
    if let Some(alerts) = alerts {
        let rows = store
            .alert_outbox()
            .context("cannot read the alert outbox")?;
        alerts.book().restore(outbox::decode_rows(rows));
    }
    let mut effects = Vec::new();
    let mut ops = Vec::new();
    let mut replayed = 0u64;
    let mut refused = 0u64;
    let reader = store
        .read_journal(from)
        .context("cannot read the journal")?;
    for r in read_records(reader) {
        let (_, rec) = r.context("cannot replay the journal")?;
        if let Applied::Refused(limit) =
            engine.handle_event(&rec.source, &rec.applied_event(), &mut effects)
        {
            // Only when [limits] was lowered since the record was journaled.
            refused += 1;
            if refused == 1 {
                tracing::warn!(
                    limit = limit.key(),
                    "journal record refused on restore: {}",
                    limit.message()
                );
            }
        }
        replayed += 1;
        if let Some(alerts) = alerts {
            for e in &effects {
                match e {
                    Effect::Violation(v) => {
                        alerts.raise(v, wall);
                    }
                    Effect::Cleared { id, at, .. } => alerts.cleared(*id, *at, wall),
                    _ => {}
                }
            }
        }
        ops.extend(effects.drain(..).filter_map(ViolationOp::from_effect));
        if ops.len() >= 10_000 {
            store
                .write_violations(&ops)
                .context("cannot store violations")?;
            ops.clear();
        }
    }
    store
        .write_violations(&ops)
        .context("cannot store violations")?;
    if let (Some(alerts), Some(now)) = (alerts, engine.now()) {
        alerts.tick(now, wall);
    }
    tracing::info!(
        dir = %dir.display(),
        from_checkpoint,
        replayed,
        engine_clock = ?engine.now(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "store restored"
    );
    Ok(Restored {
        store,
        engine,
        replayed,
        from_checkpoint,
    })
}
