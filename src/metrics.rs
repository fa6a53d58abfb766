//! Prometheus metrics: the families of the surface page, in the daemon's own [`Registry`].
//!
//! Owns: the registry, every `floorwatch_*` family, and the bookkeeping that keeps label
//! cardinality bounded. The engine owner task updates the floor families from engine effects
//! and published views; ingest connections update the ingest counters; `/metrics` encodes.
//! Must not: read the engine or the wall clock.
//!
//! # Cardinality
//!
//! - `floorwatch_agent_state{agent,team,state}` has one series per logged-in agent (value 1
//!   for its current effective state); the series is removed when the agent logs out, and the
//!   old one when its state or team changes.
//! - Per-agent counters (`floorwatch_violations_total{rule,kind,team,agent}`,
//!   `floorwatch_demerit_points_total{team,agent}`) are retired at the first local day
//!   rollover (engine clock, `appraisal.timezone`) at which the agent is not logged in. An agent
//!   who logs back in later starts new series from zero, which `rate()`/`increase()` treat as
//!   a counter reset. So the per-agent series are bounded by the agents active on a day.
//! - Everything else is labelled by team, queue, rule, kind, event type or rejection reason.
//! - `floorwatch_source_connected` is the number of open ingest connections (0 or 1 in connect
//!   mode).
//! - `floorwatch_event_lag_seconds` observes receive time minus `ts`; negative lags (source
//!   clock ahead) are observed as 0 (and show in `floorwatch_source_clock_ahead_seconds`).
//! - `floorwatch_events_future_total{source}` and `floorwatch_source_clock_ahead_seconds{source}`
//!   have one series per source name, for the first [`MAX_SOURCE_LABELS`] names seen since
//!   the start; later names share `source="other"` (listen-mode sources choose their names).

use std::collections::{HashMap, HashSet};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::engine::{AgentView, EffectiveState, QueueView, Violation};
use crate::event::{DecodeError, Id, EVENT_TYPES};
use crate::time::{Millis, Timestamp};

/// `floorwatch_agent_state{agent,team,state}`, made at scrape time from a map of the
/// logged-in agents' current state.
///
/// A state change only writes the map: with an `IntGaugeVec` each change removed one series
/// and created another (label hashing, a new descriptor, several allocations), which was a
/// fifth of the engine task's time under a fast source. The map is also what the owner task
/// reads to know an agent's previous series ([`SeriesBook`] keeps no copy of it).
#[derive(Clone)]
pub struct AgentStates {
    desc: prometheus::core::Desc,
    /// Agent label → (team, effective state).
    series: std::sync::Arc<std::sync::Mutex<HashMap<Id, (Id, EffectiveState)>>>,
}

impl AgentStates {
    const NAME: &'static str = "floorwatch_agent_state";
    const HELP: &'static str = "1 for each logged-in agent's current effective state";

    fn new() -> Result<AgentStates, prometheus::Error> {
        Ok(AgentStates {
            desc: prometheus::core::Desc::new(
                Self::NAME.into(),
                Self::HELP.into(),
                vec!["agent".into(), "team".into(), "state".into()],
                HashMap::new(),
            )?,
            series: Default::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Id, (Id, EffectiveState)>> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The series of the agent labelled `agent`, if it has one.
    fn get(&self, agent: &str) -> Option<(Id, EffectiveState)> {
        self.lock().get(agent).cloned()
    }

    /// The agent's one series is now `{team, state}`.
    pub fn set(&self, agent: &str, team: &Id, state: EffectiveState) {
        let mut map = self.lock();
        match map.get_mut(agent) {
            Some(v) => *v = (team.clone(), state),
            None => {
                map.insert(Id::from(agent), (team.clone(), state));
            }
        }
    }

    /// The agent logged out: its series goes.
    pub fn remove(&self, agent: &str) {
        self.lock().remove(agent);
    }

    fn contains(&self, agent: &str) -> bool {
        self.lock().contains_key(agent)
    }
}

impl prometheus::core::Collector for AgentStates {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
        let label = |name: &str, value: &str| {
            let mut l = LabelPair::default();
            l.set_name(name.to_string());
            l.set_value(value.to_string());
            l
        };
        let mut rows: Vec<(Id, Id, &'static str)> = self
            .lock()
            .iter()
            .map(|(a, (t, s))| (a.clone(), t.clone(), s.as_str()))
            .collect();
        // In label order, as the registry's own families are.
        rows.sort_unstable();
        let mut family = MetricFamily::default();
        family.set_name(Self::NAME.to_string());
        family.set_help(Self::HELP.to_string());
        family.set_field_type(MetricType::GAUGE);
        let metrics = family.mut_metric();
        metrics.reserve(rows.len());
        for (agent, team, state) in rows {
            let mut m = Metric::default();
            // Label pairs sorted by name, as the text encoder expects.
            m.set_label(vec![
                label("agent", &agent),
                label("state", state),
                label("team", &team),
            ]);
            let mut g = Gauge::default();
            g.set_value(1.0);
            m.set_gauge(g);
            metrics.push(m);
        }
        vec![family]
    }
}

/// Content type of the text exposition (Prometheus 3 refuses anything else by default).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rejection label for binary WebSocket frames (the protocol is text frames only).
pub const REJECT_BINARY: &str = "binary_frame";

/// Rejection label for an event whose `ts` lies more than `max_future` ahead of the daemon's
/// clock.
pub const REJECT_IN_FUTURE: &str = "ts_in_future";

/// Rejection labels of live events the owner task refuses before the engine (the owner's
/// `Refused::LABELS`; the metrics stand below the owner task and cannot name it).
pub const REFUSED_LIVE: [&str; 3] = [REJECT_IN_FUTURE, "snapshot_too_old", "rulebook_from_source"];

/// The most `source` label values of the per-source ingest families (then `"other"`).
pub const MAX_SOURCE_LABELS: usize = 64;

/// Every `limit` label of `floorwatch_limit_hits_total`: the `[limits]` key, or
/// `source.max_frame`'s `max_frame`.
pub const LIMIT_LABELS: [&str; 11] = [
    "max_frame",
    "max_future",
    "max_batch",
    "max_agents",
    "max_calls",
    "max_queues",
    "max_shifts",
    "max_sources",
    "max_ingest_connections",
    "max_floor_connections",
    "max_events_per_second",
];

/// Every `outcome` label of `floorwatch_rulebook_reloads_total`.
pub const RELOAD_OUTCOMES: [&str; 4] = ["adopted", "unchanged", "invalid", "refused"];

/// Every family of the surface page, plus `floorwatch_source_reconnects_total`.
pub struct Metrics {
    registry: Registry,
    /// The `floorwatch_events_total` series of each type in `EVENT_TYPES` order, resolved
    /// once: a label lookup per applied event was measurable on the engine task.
    events_by_type: Vec<IntCounter>,
    pub agents: IntGaugeVec,
    pub agent_state: AgentStates,
    pub calls_waiting: IntGaugeVec,
    pub longest_wait_seconds: prometheus::GaugeVec,
    pub calls_offered: IntCounterVec,
    pub calls_answered: IntCounterVec,
    pub calls_abandoned: IntCounterVec,
    pub answer_wait_seconds: HistogramVec,
    pub ring_seconds: HistogramVec,
    pub violations: IntCounterVec,
    pub active_violations: IntGaugeVec,
    pub demerit_points: IntCounterVec,
    pub events: IntCounterVec,
    pub events_rejected: IntCounterVec,
    /// `floorwatch_limit_hits_total{limit}`: a `[limits]` bound (or `source.max_frame`)
    /// reached; see [`LIMIT_LABELS`].
    pub limit_hits: IntCounterVec,
    /// `floorwatch_rulebook_reloads_total{outcome}`: SIGHUP reloads of the rulebook; see
    /// [`RELOAD_OUTCOMES`].
    pub rulebook_reloads: IntCounterVec,
    pub events_late: IntCounter,
    pub events_duplicate: IntCounter,
    pub event_lag_seconds: Histogram,
    /// `floorwatch_events_future_total{source}`: events refused because their `ts` lay more
    /// than `max_future` ahead of the daemon's clock (see [`Metrics::count_future`]).
    pub events_future: IntCounterVec,
    /// `floorwatch_source_clock_ahead_seconds{source}`: how far the latest batch's newest
    /// event lay ahead of the daemon's clock when received (0 when not ahead).
    pub source_clock_ahead: prometheus::GaugeVec,
    /// `floorwatch_engine_clock_lag_seconds`: the daemon's clock minus the engine clock.
    pub engine_clock_lag: prometheus::Gauge,
    /// The `source` label values given out so far (at most [`MAX_SOURCE_LABELS`]).
    source_labels: std::sync::Mutex<HashSet<Id>>,
    pub source_connected: IntGauge,
    pub source_reconnects: IntCounter,
    /// `floorwatch_adapter_messages_total{source,outcome}`: native messages read by a
    /// phone-system adapter; outcome `mapped` (gave protocol events), `ignored` (nothing to
    /// map) or `malformed` (could not be read; logged and skipped).
    pub adapter_messages: IntCounterVec,
    /// `floorwatch_adapter_connected{source}`: 1 while an adapter holds its platform
    /// connection (logged in) or its file open.
    pub adapter_connected: IntGaugeVec,
    /// `floorwatch_adapter_reconnects_total{source}`.
    pub adapter_reconnects: IntCounterVec,
    pub service_level: prometheus::GaugeVec,
    pub service_level_calls: IntGaugeVec,
    pub answer_rate: prometheus::GaugeVec,
    pub appraisal: AppraisalSeries,
    pub alert_deliveries: IntCounterVec,
    pub alert_delivery_lag_seconds: HistogramVec,
    pub alerts_pending: IntGaugeVec,
    pub alerts_dropped: IntCounter,
    pub alerts_outbox: IntGauge,
    /// `floorwatch_agents_scheduled{team}`: agents a shift covers now.
    pub agents_scheduled: IntGaugeVec,
    /// `floorwatch_agents_absent{team}`: of those, not logged in.
    pub agents_absent: IntGaugeVec,
    /// `floorwatch_outbound_attempts_total{team}`: (call, agent) pairs dialed.
    pub outbound_attempts: IntCounterVec,
    /// `floorwatch_outbound_connected_total{team}`: dialed pairs answered.
    pub outbound_connected: IntCounterVec,
    /// `floorwatch_sales_total{team}`: dispositions that made a pair a sale (a counter: a
    /// sale later changed to another code is not subtracted; the floor's today count is).
    pub sales: IntCounterVec,
    /// `floorwatch_sales_target{team}`: the team's daily sales target.
    pub sales_target: IntGaugeVec,
    /// The nats-jetstream source and the relay (docs/scale-out.md).
    pub stream: StreamMetrics,
    /// What an `agent` label shows: the id, or its pseudonym.
    agent_names: AgentNames,
}

/// The families of a shared stream: the nats-jetstream source of a daemon
/// (`floorwatch_stream_*{source}`; its connection and messages are in the `adapter_*`
/// families like any source's) and `floorwatch relay` (`floorwatch_relay_*`).
pub struct StreamMetrics {
    /// `floorwatch_stream_pending{source}`: messages of the stream this daemon's consumer has
    /// not been delivered yet (how far behind the stream it is).
    pub pending: IntGaugeVec,
    /// `floorwatch_stream_catching_up{source}`: 1 from a (re)connect until the consumer has
    /// caught up with the stream once (`/readyz` answers 503 meanwhile).
    pub catching_up: IntGaugeVec,
    /// `floorwatch_stream_redelivered_total{source}`: messages delivered again that this
    /// daemon had already applied (skipped as duplicates).
    pub redelivered: IntCounterVec,
    /// `floorwatch_stream_resyncs_total{source}`: times the consumer was made anew at the
    /// daemon's position (after a gap in the deliveries, a lost connection, a restart).
    pub resyncs: IntCounterVec,
    /// `floorwatch_relay_published_total{source}`: events the relay published and JetStream
    /// acknowledged.
    pub relay_published: IntCounterVec,
    /// `floorwatch_relay_publish_retries_total`: publishes the relay tried again.
    pub relay_retries: IntCounter,
    /// `floorwatch_relay_stream_connected`: 1 while the relay is connected to NATS.
    pub relay_connected: IntGauge,
}

impl StreamMetrics {
    fn new() -> Result<StreamMetrics, prometheus::Error> {
        let by_source =
            |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["source"]);
        let counted =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["source"]);
        Ok(StreamMetrics {
            pending: by_source(
                "floorwatch_stream_pending",
                "Messages of the shared stream not yet delivered to this daemon's consumer",
            )?,
            catching_up: by_source(
                "floorwatch_stream_catching_up",
                "1 from a (re)connect until the consumer caught up with the stream",
            )?,
            redelivered: counted(
                "floorwatch_stream_redelivered_total",
                "Stream messages delivered again after this daemon had applied them (skipped)",
            )?,
            resyncs: counted(
                "floorwatch_stream_resyncs_total",
                "Times the consumer was made anew at this daemon's position in the stream",
            )?,
            relay_published: counted(
                "floorwatch_relay_published_total",
                "Relay: events published to the stream and acknowledged by it",
            )?,
            relay_retries: IntCounter::new(
                "floorwatch_relay_publish_retries_total",
                "Relay: publishes tried again after a failure",
            )?,
            relay_connected: IntGauge::new(
                "floorwatch_relay_stream_connected",
                "Relay: 1 while connected to NATS",
            )?,
        })
    }

    fn register(&self, r: &Registry) -> Result<(), prometheus::Error> {
        r.register(Box::new(self.pending.clone()))?;
        r.register(Box::new(self.catching_up.clone()))?;
        r.register(Box::new(self.redelivered.clone()))?;
        r.register(Box::new(self.resyncs.clone()))?;
        r.register(Box::new(self.relay_published.clone()))?;
        r.register(Box::new(self.relay_retries.clone()))?;
        r.register(Box::new(self.relay_connected.clone()))?;
        Ok(())
    }
}

/// How agent ids become `agent` label values.
enum AgentNames {
    Raw,
    /// HMAC-SHA256 under the site's key: stable across restarts, not reversible without it.
    Pseudonyms(ring::hmac::Key),
}

#[derive(Debug, thiserror::Error)]
#[error("cannot register metric family: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Sets the month-to-date appraisal gauges to `rows`; agents no longer in them (a new
    /// month, a team change) lose their series. The set is replaced whole, so that a scrape
    /// never sees a floor without them.
    pub(crate) fn set_appraisal(&self, mut rows: Vec<crate::engine::AppraisalRow>) {
        if let AgentNames::Pseudonyms(_) = self.agent_names {
            for r in &mut rows {
                r.agent = Id::from(self.agent_label(&r.agent));
            }
        }
        self.appraisal.set(rows);
    }

    /// Counts one applied event of type `type_name` in `floorwatch_events_total`.
    pub fn count_event(&self, type_name: &str) {
        match EVENT_TYPES.iter().position(|t| *t == type_name) {
            Some(i) => self.events_by_type[i].inc(),
            None => self.events.with_label_values(&[type_name]).inc(),
        }
    }

    /// From then on every `agent` label is a pseudonym (see [`Metrics::agent_label`]). Call
    /// before the first series is set.
    pub fn pseudonymize_agents(mut self, key: &[u8]) -> Metrics {
        self.agent_names =
            AgentNames::Pseudonyms(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key));
        self
    }

    /// The `agent` label value of `agent`: the id itself, or `a_` and the first 12 hex digits
    /// of HMAC-SHA256(key, id) when pseudonymizing.
    pub fn agent_label<'a>(&self, agent: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.agent_names {
            AgentNames::Raw => std::borrow::Cow::Borrowed(agent),
            AgentNames::Pseudonyms(key) => {
                let tag = ring::hmac::sign(key, agent.as_bytes());
                let mut out = String::with_capacity(14);
                out.push_str("a_");
                for b in &tag.as_ref()[..6] {
                    out.push_str(&format!("{b:02x}"));
                }
                std::borrow::Cow::Owned(out)
            }
        }
    }

    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels)
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let mut m = Metrics {
            agents: gauge_vec(
                "floorwatch_agents",
                "Logged-in agents by team and effective state",
                &["team", "state"],
            )?,
            agent_state: AgentStates::new()?,
            calls_waiting: gauge_vec(
                "floorwatch_calls_waiting",
                "Calls waiting in the queue now",
                &["queue"],
            )?,
            longest_wait_seconds: prometheus::GaugeVec::new(
                Opts::new(
                    "floorwatch_longest_wait_seconds",
                    "Wait of the longest-waiting call in the queue (engine clock)",
                ),
                &["queue"],
            )?,
            calls_offered: counter_vec(
                "floorwatch_calls_offered_total",
                "Calls offered to the queue (call.queued)",
                &["queue"],
            )?,
            calls_answered: counter_vec(
                "floorwatch_calls_answered_total",
                "Queue calls answered",
                &["queue"],
            )?,
            calls_abandoned: counter_vec(
                "floorwatch_calls_abandoned_total",
                "Queue calls abandoned by the caller",
                &["queue"],
            )?,
            answer_wait_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "floorwatch_answer_wait_seconds",
                    "Queue wait of answered calls",
                )
                .buckets(vec![
                    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0,
                ]),
                &["queue"],
            )?,
            ring_seconds: HistogramVec::new(
                HistogramOpts::new("floorwatch_ring_seconds", "Length of ended ring episodes")
                    .buckets(vec![1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0]),
                &["team"],
            )?,
            violations: counter_vec(
                "floorwatch_violations_total",
                "Violations raised",
                &["rule", "kind", "team", "agent"],
            )?,
            active_violations: gauge_vec(
                "floorwatch_active_violations",
                "Violations whose condition has not cleared",
                &["rule", "team"],
            )?,
            demerit_points: counter_vec(
                "floorwatch_demerit_points_total",
                "Demerit points of raised violations",
                &["team", "agent"],
            )?,
            events: counter_vec(
                "floorwatch_events_total",
                "Events applied to the engine (duplicates excluded)",
                &["type"],
            )?,
            events_rejected: counter_vec(
                "floorwatch_events_rejected_total",
                "Events rejected at decoding",
                &["reason"],
            )?,
            limit_hits: counter_vec(
                "floorwatch_limit_hits_total",
                "Times a configured limit was reached (frame, batch, tracked state, connections, rate)",
                &["limit"],
            )?,
            rulebook_reloads: counter_vec(
                "floorwatch_rulebook_reloads_total",
                "Rulebook reloads (SIGHUP) by outcome: adopted, unchanged, invalid (file kept out), refused (timezone change)",
                &["outcome"],
            )?,
            events_late: IntCounter::new(
                "floorwatch_events_late_total",
                "Events older than the engine clock, applied at the clock's time",
            )?,
            events_duplicate: IntCounter::new(
                "floorwatch_events_duplicate_total",
                "Events ignored because their seq was already processed",
            )?,
            event_lag_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "floorwatch_event_lag_seconds",
                    "Receive time minus event ts (source to daemon lag)",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0,
                ]),
            )?,
            events_future: counter_vec(
                "floorwatch_events_future_total",
                "Events refused because their ts lay more than max_future ahead of the daemon's clock, by source",
                &["source"],
            )?,
            source_clock_ahead: prometheus::GaugeVec::new(
                Opts::new(
                    "floorwatch_source_clock_ahead_seconds",
                    "How far the newest event of the source's latest batch lay ahead of the daemon's clock when received (0 when not ahead)",
                ),
                &["source"],
            )?,
            engine_clock_lag: prometheus::Gauge::new(
                "floorwatch_engine_clock_lag_seconds",
                "The daemon's clock minus the engine clock (how far judging trails the wall clock)",
            )?,
            source_labels: std::sync::Mutex::new(HashSet::new()),
            source_connected: IntGauge::new(
                "floorwatch_source_connected",
                "Open ingest connections",
            )?,
            source_reconnects: IntCounter::new(
                "floorwatch_source_reconnects_total",
                "Connect mode: redials after a dropped or failed connection",
            )?,
            adapter_messages: IntCounterVec::new(
                Opts::new(
                    "floorwatch_adapter_messages_total",
                    "Native messages read by a phone-system adapter, by outcome (mapped, ignored, malformed)",
                ),
                &["source", "outcome"],
            )?,
            adapter_connected: IntGaugeVec::new(
                Opts::new(
                    "floorwatch_adapter_connected",
                    "1 while a phone-system adapter is logged in to its platform (or has its file open)",
                ),
                &["source"],
            )?,
            adapter_reconnects: IntCounterVec::new(
                Opts::new(
                    "floorwatch_adapter_reconnects_total",
                    "Phone-system adapter: reconnects (or file reopenings) after a failure",
                ),
                &["source"],
            )?,
            service_level: prometheus::GaugeVec::new(
                Opts::new(
                    "floorwatch_service_level",
                    "Service level as the wallboard shows it: answered within service_level.threshold / offered, short abandons left out of both (window: 15m or today); absent while no call counts",
                ),
                &["queue", "window"],
            )?,
            service_level_calls: gauge_vec(
                "floorwatch_service_level_calls",
                "Calls the service level counts: offered minus short abandons (window: 15m or today)",
                &["queue", "window"],
            )?,
            answer_rate: prometheus::GaugeVec::new(
                Opts::new(
                    "floorwatch_answer_rate",
                    "Answer rate (接通率): answered / offered (window: 15m or today); absent while nothing was offered",
                ),
                &["queue", "window"],
            )?,
            appraisal: AppraisalSeries::default(),
            alert_deliveries: counter_vec(
                "floorwatch_alert_deliveries_total",
                "Alert requests to each target by outcome (delivered, failed: retried, rejected: refused for good)",
                &["target", "outcome"],
            )?,
            alert_delivery_lag_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "floorwatch_alert_delivery_lag_seconds",
                    "From an alert's change (raise, escalation, resolution) to the target's acceptance",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0,
                ]),
                &["target"],
            )?,
            alerts_pending: gauge_vec(
                "floorwatch_alerts_pending",
                "Alerts the target is due (new, changed or up for re-send)",
                &["target"],
            )?,
            alerts_dropped: IntCounter::new(
                "floorwatch_alerts_dropped_total",
                "Violations not alerted because the outbox was full of firing alerts",
            )?,
            alerts_outbox: IntGauge::new(
                "floorwatch_alerts_outbox",
                "Alerts held in the outbox (firing, or resolved and not yet delivered everywhere)",
            )?,
            agents_scheduled: gauge_vec(
                "floorwatch_agents_scheduled",
                "Agents a shift covers now, by team",
                &["team"],
            )?,
            agents_absent: gauge_vec(
                "floorwatch_agents_absent",
                "Agents a shift covers now who are not logged in, by team",
                &["team"],
            )?,
            outbound_attempts: counter_vec(
                "floorwatch_outbound_attempts_total",
                "Outbound (call, agent) pairs dialed, by team",
                &["team"],
            )?,
            outbound_connected: counter_vec(
                "floorwatch_outbound_connected_total",
                "Dialed (call, agent) pairs the agent answered, by team",
                &["team"],
            )?,
            sales: counter_vec(
                "floorwatch_sales_total",
                "Dispositions that made a (call, agent) pair a sale, by team",
                &["team"],
            )?,
            sales_target: gauge_vec(
                "floorwatch_sales_target",
                "Daily sales target of the team ([[teams]] sales_target)",
                &["team"],
            )?,
            stream: StreamMetrics::new()?,
            registry,
            agent_names: AgentNames::Raw,
            events_by_type: Vec::new(),
        };
        m.register()?;
        m.events_by_type = EVENT_TYPES
            .iter()
            .map(|t| m.events.with_label_values(&[t]))
            .collect();
        for r in DecodeError::LABELS
            .iter()
            .copied()
            .chain([REJECT_BINARY])
            .chain(crate::engine::Limit::ALL.map(|l| l.reason_label()))
            .chain(crate::engine::Refusal::LABELS)
            .chain(REFUSED_LIVE)
        {
            m.events_rejected.with_label_values(&[r]);
        }
        for l in LIMIT_LABELS {
            m.limit_hits.with_label_values(&[l]);
        }
        for o in RELOAD_OUTCOMES {
            m.rulebook_reloads.with_label_values(&[o]);
        }
        Ok(m)
    }

    fn register(&self) -> Result<(), prometheus::Error> {
        let r = &self.registry;
        r.register(Box::new(self.agents.clone()))?;
        r.register(Box::new(self.agent_state.clone()))?;
        r.register(Box::new(self.calls_waiting.clone()))?;
        r.register(Box::new(self.longest_wait_seconds.clone()))?;
        r.register(Box::new(self.calls_offered.clone()))?;
        r.register(Box::new(self.calls_answered.clone()))?;
        r.register(Box::new(self.calls_abandoned.clone()))?;
        r.register(Box::new(self.answer_wait_seconds.clone()))?;
        r.register(Box::new(self.ring_seconds.clone()))?;
        r.register(Box::new(self.violations.clone()))?;
        r.register(Box::new(self.active_violations.clone()))?;
        r.register(Box::new(self.demerit_points.clone()))?;
        r.register(Box::new(self.events.clone()))?;
        r.register(Box::new(self.events_rejected.clone()))?;
        r.register(Box::new(self.limit_hits.clone()))?;
        r.register(Box::new(self.rulebook_reloads.clone()))?;
        r.register(Box::new(self.events_late.clone()))?;
        r.register(Box::new(self.events_duplicate.clone()))?;
        r.register(Box::new(self.event_lag_seconds.clone()))?;
        r.register(Box::new(self.events_future.clone()))?;
        r.register(Box::new(self.source_clock_ahead.clone()))?;
        r.register(Box::new(self.engine_clock_lag.clone()))?;
        r.register(Box::new(self.source_connected.clone()))?;
        r.register(Box::new(self.source_reconnects.clone()))?;
        r.register(Box::new(self.adapter_messages.clone()))?;
        r.register(Box::new(self.adapter_connected.clone()))?;
        r.register(Box::new(self.adapter_reconnects.clone()))?;
        r.register(Box::new(self.service_level.clone()))?;
        r.register(Box::new(self.service_level_calls.clone()))?;
        r.register(Box::new(self.answer_rate.clone()))?;
        r.register(Box::new(self.alert_deliveries.clone()))?;
        r.register(Box::new(self.alert_delivery_lag_seconds.clone()))?;
        r.register(Box::new(self.alerts_pending.clone()))?;
        r.register(Box::new(self.alerts_dropped.clone()))?;
        r.register(Box::new(self.alerts_outbox.clone()))?;
        r.register(Box::new(self.agents_scheduled.clone()))?;
        r.register(Box::new(self.agents_absent.clone()))?;
        r.register(Box::new(self.outbound_attempts.clone()))?;
        r.register(Box::new(self.outbound_connected.clone()))?;
        r.register(Box::new(self.sales.clone()))?;
        r.register(Box::new(self.sales_target.clone()))?;
        self.stream.register(r)?;
        Ok(())
    }

    /// The text exposition of every family.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        self.appraisal.write_text(&mut buf);
        buf
    }

    pub fn observe_rejected(&self, reason: &'static str) {
        self.events_rejected.with_label_values(&[reason]).inc();
    }

    pub fn observe_lag(&self, lag: Millis) {
        self.event_lag_seconds.observe(lag.max(0) as f64 / 1000.0);
    }

    /// The `source` label of `source`: itself for the first [`MAX_SOURCE_LABELS`] names,
    /// then `"other"`.
    fn source_label<'a>(&self, source: &'a str) -> &'a str {
        let mut seen = self.source_labels.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(source) {
            return source;
        }
        if seen.len() < MAX_SOURCE_LABELS {
            seen.insert(Id::from(source));
            return source;
        }
        "other"
    }

    /// Counts an event of `source` refused for a `ts` too far ahead (`ts_in_future`).
    pub fn count_future(&self, source: &str) {
        self.observe_rejected(REJECT_IN_FUTURE);
        self.events_future
            .with_label_values(&[self.source_label(source)])
            .inc();
    }

    /// Sets how far the newest event of `source`'s latest batch lay ahead of the daemon's
    /// clock (`ahead` ms; 0 or less: not ahead).
    pub fn set_clock_ahead(&self, source: &str, ahead: Millis) {
        self.source_clock_ahead
            .with_label_values(&[self.source_label(source)])
            .set(ahead.max(0) as f64 / 1000.0);
    }
}

/// Month-to-date appraisal per agent (`floorwatch_appraisal_*{agent,team}`): the columns of
/// the appraisal CSV, for the local month of the engine clock, waivers subtracted.
///
/// Kept as the latest rows (sorted, agent already as its label) and written as exposition
/// text at scrape time. As a dozen gauge vectors they were a dozen series objects per agent:
/// about 6 KiB per agent, a refresh that set 1.4 million series at 100,000 agents and held
/// up the owner task (and so the deadlines) for a second, and most of a `/metrics` render.
#[derive(Default)]
pub struct AppraisalSeries {
    rows: std::sync::RwLock<std::sync::Arc<Vec<crate::engine::AppraisalRow>>>,
}

type Column = fn(&crate::engine::AppraisalRow) -> Option<f64>;

/// Name, help and value of each per-agent appraisal gauge (`None`: no series for that row).
const APPRAISAL_GAUGES: [(&str, &str, Column); 18] = [
    ("floorwatch_appraisal_acw_seconds", "Month to date: wrap-up time", |r| Some(r.acw_seconds)),
    ("floorwatch_appraisal_adherence", "Month to date: logged-in time inside shifts / scheduled time (absent without shifts)", |r| r.adherence),
    ("floorwatch_appraisal_aht_seconds", "Month to date: average handle time, (talk + wrap-up) / calls answered (absent without calls)", |r| r.aht_seconds),
    ("floorwatch_appraisal_answered_within_rings", "Month to date: rings answered within the ring limit", |r| Some(r.answered_within_rings as f64)),
    ("floorwatch_appraisal_break_seconds", "Month to date: time on reasons that count against the daily allowance", |r| Some(r.break_seconds)),
    ("floorwatch_appraisal_calls_answered", "Month to date: calls answered", |r| Some(r.calls_answered as f64)),
    ("floorwatch_appraisal_deduction", "Month to date: points x appraisal.money_per_point", |r| Some(r.deduction)),
    ("floorwatch_appraisal_logged_in_scheduled_seconds", "Month to date: logged-in time inside shifts (absent without shifts)", |r| (r.shifts > 0).then_some(r.logged_in_scheduled_seconds)),
    ("floorwatch_appraisal_outbound_attempts", "Month to date: outbound calls dialed (absent without outbound)", |r| (r.outbound_attempts > 0 || r.sales > 0).then_some(r.outbound_attempts as f64)),
    ("floorwatch_appraisal_outbound_connected", "Month to date: outbound calls answered (absent without outbound)", |r| (r.outbound_attempts > 0 || r.sales > 0).then_some(r.outbound_connected as f64)),
    ("floorwatch_appraisal_pause_seconds", "Month to date: paused (not_ready) time", |r| Some(r.pause_seconds)),
    ("floorwatch_appraisal_points", "Month to date: demerit points, waivers subtracted", |r| Some(r.points as f64)),
    ("floorwatch_appraisal_ring_compliance", "Month to date: answered within the ring limit / ring episodes (absent without rings)", |r| r.ring_compliance),
    ("floorwatch_appraisal_ring_episodes", "Month to date: ring episodes", |r| Some(r.ring_episodes as f64)),
    ("floorwatch_appraisal_sales", "Month to date: sales by the latest disposition (absent without outbound or sales)", |r| (r.outbound_attempts > 0 || r.sales > 0).then_some(r.sales as f64)),
    ("floorwatch_appraisal_scheduled_seconds", "Month to date: scheduled shift time (absent without shifts)", |r| (r.shifts > 0).then_some(r.scheduled_seconds)),
    ("floorwatch_appraisal_shifts", "Month to date: shifts (absent without shifts)", |r| (r.shifts > 0).then_some(r.shifts as f64)),
    ("floorwatch_appraisal_talk_seconds", "Month to date: talk time", |r| Some(r.talk_seconds)),
];

impl AppraisalSeries {
    /// Replaces every row (a scrape sees the old set or the new one, never none).
    fn set(&self, mut rows: Vec<crate::engine::AppraisalRow>) {
        rows.sort_by(|a, b| (&a.agent, &a.team).cmp(&(&b.agent, &b.team)));
        *self.rows.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(rows);
    }

    /// Appends the families in the text exposition format (0.0.4), as the registry's
    /// encoder writes them: labels in name order, values as Rust prints an `f64`.
    fn write_text(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner()).clone();
        if rows.is_empty() {
            return;
        }
        for (name, help, value) in APPRAISAL_GAUGES {
            let mut header = false;
            for r in rows.iter() {
                let Some(v) = value(r) else { continue };
                if !header {
                    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                    header = true;
                }
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"{agent=\"");
                escape_label(&r.agent, out);
                out.extend_from_slice(b"\",team=\"");
                escape_label(&r.team, out);
                let _ = writeln!(out, "\"}} {v}");
            }
        }
        let name = "floorwatch_appraisal_violations";
        let _ = writeln!(
            out,
            "# HELP {name} Month to date: violations by rule, waivers subtracted\n# TYPE {name} gauge"
        );
        for r in rows.iter() {
            for (rule, n) in [
                ("attendance", r.violations_attendance),
                ("break_overrun", r.violations_break_overrun),
                ("discipline", r.violations_discipline),
                ("ring_answer", r.violations_ring_answer),
                ("unauthorized_pause", r.violations_unauthorized_pause),
            ] {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"{agent=\"");
                escape_label(&r.agent, out);
                let _ = write!(out, "\",rule=\"{rule}\",team=\"");
                escape_label(&r.team, out);
                let _ = writeln!(out, "\"}} {n}");
            }
        }
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape_label(v: &str, out: &mut Vec<u8>) {
    for b in v.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// What the owner task remembers about the series it has set, to keep cardinality bounded.
#[derive(Default)]
pub(crate) struct SeriesBook {
    /// Agent → label sets of its per-agent counters: (rule, kind, team) and team.
    agent_counters: HashMap<Id, AgentCounters>,
    /// Queues whose gauges were set.
    queues: HashSet<Id>,
}

#[derive(Default)]
struct AgentCounters {
    violations: HashSet<(&'static str, Id, Id)>,
    points: HashSet<Id>,
}

impl SeriesBook {
    pub(crate) fn agent_changed(&mut self, m: &Metrics, view: &AgentView) {
        let now = match (view.logged_in, view.effective) {
            (true, Some(s)) => Some((view.team.clone(), s)),
            _ => None,
        };
        let agent = m.agent_label(&view.agent);
        let agent = agent.as_ref();
        let before = m.agent_state.get(agent);
        if before == now {
            return;
        }
        if let Some((team, s)) = &before {
            m.agents.with_label_values(&[team, s.as_str()]).dec();
        }
        match now {
            Some((team, s)) => {
                m.agents.with_label_values(&[&team, s.as_str()]).inc();
                m.agent_state.set(agent, &team, s);
            }
            None => m.agent_state.remove(agent),
        }
    }

    pub(crate) fn violation(&mut self, m: &Metrics, v: &Violation) {
        let (rule, kind) = (v.rule.as_str(), v.kind.as_str());
        let kind_id = Id::from(kind);
        let agent = m.agent_label(&v.agent);
        let agent = agent.as_ref();
        m.violations
            .with_label_values(&[rule, kind, &v.team, agent])
            .inc();
        m.demerit_points
            .with_label_values(&[v.team.as_str(), agent])
            .inc_by(u64::from(v.points));
        m.active_violations
            .with_label_values(&[rule, &v.team])
            .inc();
        let c = self.agent_counters.entry(v.agent.clone()).or_default();
        c.violations.insert((rule, kind_id, v.team.clone()));
        c.points.insert(v.team.clone());
    }

    pub(crate) fn cleared(&mut self, m: &Metrics, rule: &'static str, team: &Id) {
        m.active_violations.with_label_values(&[rule, team]).dec();
    }

    /// Retires the per-agent counters of agents not logged in now (at a day rollover).
    pub(crate) fn retire_logged_out(&mut self, m: &Metrics) {
        let gone: Vec<Id> = self
            .agent_counters
            .keys()
            .filter(|a| !m.agent_state.contains(&m.agent_label(a)))
            .cloned()
            .collect();
        for agent in gone {
            if let Some(c) = self.agent_counters.remove(&agent) {
                let agent = m.agent_label(&agent);
                let agent = agent.as_ref();
                for (rule, kind, team) in c.violations {
                    let _ = m
                        .violations
                        .remove_label_values(&[rule, &kind, &team, agent]);
                }
                for team in c.points {
                    let _ = m
                        .demerit_points
                        .remove_label_values(&[team.as_str(), agent]);
                }
            }
        }
    }

    /// Sets the queue gauges from published views; `now` is the engine clock.
    pub(crate) fn queues(&mut self, m: &Metrics, queues: &[QueueView], now: Option<Timestamp>) {
        for q in queues {
            m.calls_waiting
                .with_label_values(&[&q.queue])
                .set(i64::try_from(q.waiting).unwrap_or(i64::MAX));
            let longest = match (q.oldest_since, now) {
                (Some(since), Some(now)) if q.waiting > 0 => {
                    now.since(since).max(0) as f64 / 1000.0
                }
                _ => 0.0,
            };
            m.longest_wait_seconds
                .with_label_values(&[&q.queue])
                .set(longest);
            for (window, counts) in [("15m", &q.last_15m), ("today", &q.today)] {
                let labels = [q.queue.as_str(), window];
                let base = counts.offered.saturating_sub(counts.short_abandons);
                m.service_level_calls
                    .with_label_values(&labels)
                    .set(i64::try_from(base).unwrap_or(i64::MAX));
                // A ratio of nothing is no number: the series goes away rather than read 0.
                match counts.service_level() {
                    Some(v) => m.service_level.with_label_values(&labels).set(v),
                    None => {
                        let _ = m.service_level.remove_label_values(&labels);
                    }
                }
                match counts.answer_rate() {
                    Some(v) => m.answer_rate.with_label_values(&labels).set(v),
                    None => {
                        let _ = m.answer_rate.remove_label_values(&labels);
                    }
                }
            }
            if !self.queues.contains(&q.queue) {
                self.queues.insert(q.queue.clone());
                // Make the counters and histogram visible at zero as soon as a queue is known.
                m.calls_offered.with_label_values(&[&q.queue]);
                m.calls_answered.with_label_values(&[&q.queue]);
                m.calls_abandoned.with_label_values(&[&q.queue]);
                m.answer_wait_seconds.with_label_values(&[&q.queue]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EventRef, Evidence, Kind, QueueCounts, Rule};

    fn text(m: &Metrics) -> String {
        String::from_utf8(m.encode()).expect("utf-8")
    }

    fn view(agent: &str, logged_in: bool, s: Option<EffectiveState>) -> AgentView {
        AgentView {
            agent: agent.into(),
            team: "t1".into(),
            name: None,
            logged_in,
            presence: None,
            reason: Id::default(),
            since: Timestamp(0),
            effective: s,
            effective_since: Timestamp(0),
            call: None,
            open_violations: 0,
        }
    }

    fn violation(agent: &str) -> Violation {
        Violation {
            id: 1,
            rule: Rule::RingAnswer,
            kind: Kind::Late,
            agent: agent.into(),
            team: "t1".into(),
            call: Some("c1".into()),
            reason: None,
            at: Timestamp(15_000),
            points: 1,
            deduction: 10.0,
            detected_at: Timestamp(15_000),
            evidence: Evidence::new(
                EventRef {
                    at: Timestamp(0),
                    source: None,
                    seq: None,
                    id: None,
                    event_type: crate::engine::TypeName("call.ringing"),
                },
                15_000,
                "",
                15_000,
            ),
        }
    }

    #[test]
    fn service_level_and_answer_rate_follow_the_queue_view_and_vanish_without_calls() {
        let m = Metrics::new().expect("metrics");
        let mut book = SeriesBook::default();
        let counts = QueueCounts {
            offered: 10,
            answered: 7,
            abandoned: 3,
            answered_in_threshold: 6,
            short_abandons: 2,
            answer_wait_sum: 0,
        };
        let mut q = QueueView {
            queue: "sales".into(),
            waiting: 0,
            oldest_since: None,
            today: counts.clone(),
            last_15m: counts,
        };
        book.queues(&m, std::slice::from_ref(&q), Some(Timestamp(0)));
        let t = text(&m);
        // 6 within 20 s of 10 offered less 2 short abandons = 0.75; 7 of 10 answered = 0.7.
        assert!(
            t.contains(r#"floorwatch_service_level{queue="sales",window="15m"} 0.75"#),
            "{t}"
        );
        assert!(
            t.contains(r#"floorwatch_service_level_calls{queue="sales",window="15m"} 8"#),
            "{t}"
        );
        assert!(
            t.contains(r#"floorwatch_answer_rate{queue="sales",window="today"} 0.7"#),
            "{t}"
        );
        assert!(
            t.contains(r#"floorwatch_answer_wait_seconds_count{queue="sales"} 0"#),
            "{t}"
        );
        q.last_15m = QueueCounts::default();
        book.queues(&m, std::slice::from_ref(&q), Some(Timestamp(0)));
        let t = text(&m);
        assert!(
            !t.contains(r#"floorwatch_service_level{queue="sales",window="15m"}"#),
            "{t}"
        );
        assert!(
            t.contains(r#"floorwatch_service_level_calls{queue="sales",window="15m"} 0"#),
            "{t}"
        );
        assert!(
            t.contains(r#"floorwatch_service_level{queue="sales",window="today"} 0.75"#),
            "{t}"
        );
    }

    #[test]
    fn per_agent_counters_are_retired_only_for_agents_logged_out() {
        let m = Metrics::new().expect("metrics");
        let mut book = SeriesBook::default();
        book.agent_changed(&m, &view("a1", true, Some(EffectiveState::Ringing)));
        book.agent_changed(&m, &view("a2", true, Some(EffectiveState::Ringing)));
        book.violation(&m, &violation("a1"));
        book.violation(&m, &violation("a2"));
        book.agent_changed(&m, &view("a2", false, None));
        book.retire_logged_out(&m);
        let t = text(&m);
        assert!(
            t.contains(r#"floorwatch_violations_total{agent="a1""#),
            "{t}"
        );
        assert!(
            t.contains(r#"floorwatch_demerit_points_total{agent="a1""#),
            "{t}"
        );
        assert!(!t.contains(r#"agent="a2""#), "{t}");
        assert!(
            t.contains(r#"floorwatch_agents{state="ringing",team="t1"} 1"#),
            "{t}"
        );
    }

    #[test]
    fn pseudonymized_agent_labels_are_truncated_hmacs_everywhere() {
        // Expected values from Python: hmac.new(key, id, sha256).hexdigest()[:12].
        let m = Metrics::new()
            .expect("metrics")
            .pseudonymize_agents(b"0123456789abcdef");
        let mut book = SeriesBook::default();
        book.agent_changed(&m, &view("a1", true, Some(EffectiveState::Ringing)));
        book.agent_changed(&m, &view("a2", true, Some(EffectiveState::Ringing)));
        book.violation(&m, &violation("a1"));
        book.violation(&m, &violation("a2"));
        let row = |agent: &str| crate::engine::AppraisalRow {
            agent: agent.into(),
            team: "t1".into(),
            points: 3,
            ..Default::default()
        };
        m.set_appraisal(vec![row("a1"), row("a-0001")]);
        let t = text(&m);
        for raw in [r#"agent="a1""#, r#"agent="a2""#, r#"agent="a-0001""#] {
            assert!(!t.contains(raw), "{raw} in {t}");
        }
        for series in [
            r#"floorwatch_agent_state{agent="a_476d5bb034da""#,
            r#"floorwatch_violations_total{agent="a_476d5bb034da""#,
            r#"floorwatch_demerit_points_total{agent="a_86214257bc97""#,
            r#"floorwatch_appraisal_points{agent="a_0aedf779cb17""#,
        ] {
            assert!(t.contains(series), "{series} missing from {t}");
        }
        // Retiring and replacing series find them by their pseudonym too.
        book.agent_changed(&m, &view("a2", false, None));
        book.retire_logged_out(&m);
        m.set_appraisal(vec![row("a1")]);
        let t = text(&m);
        assert!(!t.contains("a_86214257bc97"), "{t}");
        assert!(!t.contains("a_0aedf779cb17"), "{t}");
        assert!(t.contains("a_476d5bb034da"), "{t}");
    }

    /// The appraisal text is what the prometheus crate writes for the same values set on
    /// gauge vectors (how they were kept before), escaping and absent values included.
    #[test]
    fn appraisal_text_matches_the_registry_encoding() {
        use crate::engine::AppraisalRow;
        let rows = vec![
            AppraisalRow {
                agent: "b\"2".into(),
                team: "t\\n\nx".into(),
                points: 7,
                deduction: 70.0,
                calls_answered: 12,
                ring_episodes: 13,
                answered_within_rings: 11,
                ring_compliance: Some(11.0 / 13.0),
                aht_seconds: Some(123.456),
                talk_seconds: 1000.5,
                acw_seconds: 481.972,
                pause_seconds: 0.0,
                break_seconds: 900.0,
                violations_ring_answer: 2,
                violations_break_overrun: 1,
                violations_unauthorized_pause: 0,
                violations_discipline: 3,
                shifts: 2,
                scheduled_seconds: 57_600.0,
                logged_in_scheduled_seconds: 55_000.5,
                adherence: Some(55_000.5 / 57_600.0),
                outbound_attempts: 9,
                outbound_connected: 4,
                sales: 1,
                ..Default::default()
            },
            AppraisalRow {
                agent: "a1".into(),
                team: "坐席一组".into(),
                ..Default::default()
            },
        ];
        let reg = Registry::new();
        let g = |name: &str, help: &str| {
            let v =
                prometheus::GaugeVec::new(Opts::new(name, help), &["agent", "team"]).expect("vec");
            reg.register(Box::new(v.clone())).expect("register");
            v
        };
        for (name, help, value) in APPRAISAL_GAUGES {
            let v = g(name, help);
            for r in &rows {
                if let Some(x) = value(r) {
                    v.with_label_values(&[&r.agent, &r.team]).set(x);
                }
            }
        }
        let viol = IntGaugeVec::new(
            Opts::new(
                "floorwatch_appraisal_violations",
                "Month to date: violations by rule, waivers subtracted",
            ),
            &["agent", "team", "rule"],
        )
        .expect("vec");
        reg.register(Box::new(viol.clone())).expect("register");
        for r in &rows {
            for (rule, n) in [
                ("ring_answer", r.violations_ring_answer),
                ("break_overrun", r.violations_break_overrun),
                ("unauthorized_pause", r.violations_unauthorized_pause),
                ("attendance", r.violations_attendance),
                ("discipline", r.violations_discipline),
            ] {
                viol.with_label_values(&[&r.agent, &r.team, rule])
                    .set(n as i64);
            }
        }
        let mut want = Vec::new();
        TextEncoder::new()
            .encode(&reg.gather(), &mut want)
            .expect("encode");
        let series = AppraisalSeries::default();
        series.set(rows);
        let mut got = Vec::new();
        series.write_text(&mut got);
        assert_eq!(
            String::from_utf8(got).expect("utf-8"),
            String::from_utf8(want).expect("utf-8")
        );
    }

    #[test]
    fn agent_labels_are_the_ids_without_pseudonyms() {
        let m = Metrics::new().expect("metrics");
        let mut book = SeriesBook::default();
        book.agent_changed(&m, &view("a1", true, Some(EffectiveState::Ringing)));
        assert!(text(&m).contains(r#"floorwatch_agent_state{agent="a1""#));
    }
}
