//! The alert book's durable copy: the rows of the store's `alert_outbox` table (one JSON
//! [`Alert`] per id) and their way in and out.
//!
//! Owns: the encoding of an alert as an outbox row, the changes waiting to be written
//! ([`OutboxChanges`]), and the decoding of the rows read back at start ([`decode_rows`]).
//! Must not: write or read the store itself (the engine task writes the changes with the
//! violations, before the checkpoint that covers them) or change the book's state.

use std::collections::BTreeMap;

use super::{Alert, Alerts};

/// Outbox changes not yet in the store, by alert id: the alert as JSON, or `None` to delete
/// its row. The latest state of each alert wins; a failed write leaves them here for the
/// next one.
#[derive(Debug, Default)]
pub struct OutboxChanges {
    rows: BTreeMap<u64, Option<String>>,
}

impl OutboxChanges {
    /// Moves the alert book's changes in.
    pub fn collect(&mut self, alerts: &Alerts) {
        let (put, removed) = alerts.book().take_changes();
        for a in put {
            match serde_json::to_string(&a) {
                Ok(json) => {
                    self.rows.insert(a.id(), Some(json));
                }
                Err(e) => {
                    tracing::error!(id = a.id(), error = %e, "cannot encode an alert for the outbox")
                }
            }
        }
        for id in removed {
            self.rows.insert(id, None);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows to write (id, JSON) and the ids whose rows to delete.
    pub fn rows(&self) -> (Vec<(u64, String)>, Vec<u64>) {
        let mut put = Vec::new();
        let mut delete = Vec::new();
        for (id, row) in &self.rows {
            match row {
                Some(json) => put.push((*id, json.clone())),
                None => delete.push(*id),
            }
        }
        (put, delete)
    }

    /// Forgets the changes once they are written.
    pub fn clear(&mut self) {
        self.rows.clear();
    }
}

/// The alerts of the outbox rows read at start; a row that does not decode is logged and
/// skipped.
pub fn decode_rows(rows: Vec<(u64, String)>) -> Vec<Alert> {
    let mut loaded = Vec::with_capacity(rows.len());
    for (id, json) in rows {
        match serde_json::from_str::<Alert>(&json) {
            Ok(a) => loaded.push(a),
            Err(e) => {
                tracing::warn!(id, error = %e, "alert outbox row does not decode; skipped")
            }
        }
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{sample_violation, AlertBook, Language, Settings, TargetKind};
    use crate::engine::Kind;
    use crate::time::Timestamp;

    fn alerts() -> Alerts {
        let settings = Settings {
            escalate_after: 300_000,
            resolve_hold: 60_000,
            resend_every: 60_000,
            max_alerts: 10,
            language: Language::En,
            external_url: "http://floor:8080".into(),
        };
        let book = AlertBook::new(settings, vec![TargetKind::Alertmanager], Default::default());
        Alerts::new(book, Vec::new())
    }

    #[test]
    fn a_raised_alert_is_a_row_that_decodes_back_and_a_removed_one_is_a_delete() {
        let at = Timestamp(1_764_321_317_000);
        let a = alerts();
        let mut changes = OutboxChanges::default();
        a.raise(&sample_violation(7, Kind::Late, at), 0);
        changes.collect(&a);
        let (put, delete) = changes.rows();
        assert_eq!(put.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [7]);
        assert!(delete.is_empty());
        let back = decode_rows(put);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].id(), 7);
        // Nothing new in the book: nothing new to write, and the unwritten row stays.
        changes.collect(&a);
        assert_eq!(changes.rows().0.len(), 1);
        changes.clear();
        assert!(changes.is_empty());
        assert!(decode_rows(vec![(8, "not json".into())]).is_empty());
    }
}
