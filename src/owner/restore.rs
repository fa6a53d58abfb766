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
    // A checkpoint of store format 1 holds no ledger of waivable violations.
    let mut from_checkpoint_with_ledger = true;
    let (mut engine, from) = match checkpoint {
        Some(cp) => {
            let parsed: Checkpoint = serde_json::from_str(&cp.json)
                .with_context(|| format!("checkpoint {} does not decode", cp.id))?;
            from_checkpoint_with_ledger = parsed.version >= 2;
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
    adopt_rulebook(&mut store, &mut engine, config, wall)?;
    if !from_checkpoint_with_ledger {
        let stored = store
            .reader()
            .context("cannot read the store")?
            .violations(&Default::default(), usize::MAX >> 1)
            .context("cannot read violations")?;
        let n = engine.seed_ledger(stored.into_iter().map(|r| r.violation).collect());
        if n > 0 {
            tracing::info!(
                violations = n,
                "waivable violations taken from the database"
            );
        }
    }
    journal_legacy_waivers(&mut store, &mut engine)?;
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

/// The config's rulebook takes effect at the engine clock when it is not the one in force
/// (or was never journaled): a `rulebook` event, applied and journaled before anything else
/// happens. A config with another `appraisal.timezone` than the store's is refused.
pub fn adopt_rulebook(
    store: &mut Store,
    engine: &mut Engine,
    config: &Config,
    wall: Micros,
) -> anyhow::Result<()> {
    let (here, given) = (&engine.rules().timezone_name, &config.rules.timezone_name);
    if here != given {
        return Err(anyhow::Error::new(crate::config::ConfigError {
            message: format!(
                "the data directory {} judges days and months in {here}, and the config says {given}: appraisal.timezone cannot change within one store (the days of past statements would move); keep {here}, or start a new data directory",
                config.store.dir.display()
            ),
            key: Some("appraisal.timezone".into()),
            line: None,
            column: None,
        }));
    }
    let digest = config.rules.rulebook_digest();
    if engine.rulebook_journaled() && engine.rulebook_digest() == digest {
        return Ok(());
    }
    if config.jetstream.is_some() {
        // A daemon of a pair judges by what the shared stream says: the config's rulebook
        // is submitted to the stream once the source has caught up (jetstream::adopt).
        return Ok(());
    }
    let ev = rulebook_event(&config.rules, engine.now(), wall);
    journal_own_event(store, engine, &ev)?;
    tracing::info!(digest = %digest, at = ?engine.now(), "rulebook in force from now on");
    Ok(())
}

/// The `rulebook` event of `rules`, at the engine clock (or `wall` before any event).
pub fn rulebook_event(
    rules: &crate::config::RulesConfig,
    now: Option<crate::time::Timestamp>,
    wall: Micros,
) -> crate::event::Event {
    crate::event::Event {
        ts: now.unwrap_or(crate::time::Timestamp(wall / 1000)),
        seq: None,
        id: None,
        body: crate::event::Body::Rulebook {
            rulebook: rules.rulebook_json().into_boxed_str(),
            digest: crate::event::Id::from(rules.rulebook_digest()),
        },
    }
}

/// Applies an event the daemon makes itself (source `api`) and journals it at once.
fn journal_own_event(
    store: &mut Store,
    engine: &mut Engine,
    ev: &crate::event::Event,
) -> anyhow::Result<()> {
    let mut effects = Vec::new();
    let at = match engine.handle_event(crate::config::API_SOURCE, ev, &mut effects) {
        Applied::Applied { at, .. } | Applied::Rejected { at, .. } => at,
        Applied::Duplicate | Applied::Refused(_) => return Ok(()),
    };
    store
        .append(&[crate::store::encode_record(
            at,
            crate::config::API_SOURCE,
            ev,
        )])
        .context("cannot journal")?;
    let ops: Vec<ViolationOp> = effects
        .into_iter()
        .filter_map(ViolationOp::from_effect)
        .collect();
    store
        .write_violations(&ops)
        .context("cannot store violations")?;
    Ok(())
}

/// Waivers a store made before waivers were journaled keeps in its database only: each
/// becomes a `violation.waived` event (with its `by` and reason), so that the journal holds
/// the whole record. Violations older than the engine keeps for waivers are left as they are.
fn journal_legacy_waivers(store: &mut Store, engine: &mut Engine) -> anyhow::Result<()> {
    let reader = store.reader().context("cannot read the store")?;
    let filter = crate::floor::ViolationFilter {
        status: Some(crate::floor::Status::Waived),
        ..Default::default()
    };
    let waived = reader
        .violations(&filter, usize::MAX >> 1)
        .context("cannot read waived violations")?;
    let mut n = 0;
    for r in waived {
        if engine.is_waived(r.violation.id) != Some(false) {
            continue;
        }
        let Some(w) = r.waiver else { continue };
        let by = if w.by.trim().is_empty() {
            "unknown".to_string()
        } else {
            w.by
        };
        let why = if w.reason.trim().is_empty() {
            "waived before waivers were journaled".to_string()
        } else {
            w.reason
        };
        let ev = crate::event::Event {
            ts: engine.now().unwrap_or(w.at),
            seq: None,
            id: None,
            body: crate::event::Body::ViolationWaiver {
                violation: r.violation.id,
                waived: true,
                by: crate::event::Id::from(truncate(&by, crate::event::MAX_ID_LEN)),
                why: crate::event::Id::from(truncate(&why, crate::event::MAX_NOTE_LEN)),
            },
        };
        journal_own_event(store, engine, &ev)?;
        n += 1;
    }
    if n > 0 {
        tracing::info!(waivers = n, "waivers of the database journaled");
    }
    Ok(())
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
