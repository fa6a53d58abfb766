//! The published read side of the floor: what HTTP handlers, the wallboard and metrics read.
//!
//! Owns: copies of the engine's views (agents, queues, engine clock), a bounded in-memory log
//! of violations with their status, today's HDR histograms of ring times (per team) and
//! queue waits (per queue), and the [`Standing`]: every agent's appraisal so far today and
//! this month, as the appraisal thread last computed it (the console pages read it).
//!
//! Bounds: the violation log keeps the newest [`VIOLATION_LOG_CAPACITY`] records (the oldest
//! is dropped); agents are every agent the engine knows (logged out ones stay, as in the
//! engine); histograms are one per team and per queue, cleared at local midnight.
//!
//! Only the engine owner task ([`crate::owner`]) writes here, after it has applied events or
//! timeouts; readers never touch the engine. Locks are held for a copy or a short scan, never
//! across an `.await`. Must not: compute rule outcomes (that is the engine's job) or do I/O.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use dashmap::DashMap;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;

use crate::engine::{AgentView, AppraisalRow, EventRef, QueueView, Rule, ScheduledNow, Violation};
use crate::event::Id;
use crate::time::{Calendar, Millis, Timestamp};

/// How many violations the in-memory log keeps; when full, the oldest record is dropped.
pub const VIOLATION_LOG_CAPACITY: usize = 100_000;

/// Status of a violation record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Closed,
    /// On record but counting for nothing (`POST /api/v1/violations/{id}/waive`).
    Waived,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Closed => "closed",
            Status::Waived => "waived",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "open" => Some(Status::Open),
            "closed" => Some(Status::Closed),
            "waived" => Some(Status::Waived),
            _ => None,
        }
    }
}

/// A violation as the API shows it: the surface record's keys plus `id`, `status`,
/// `detected_at`, `cleared_at` and `evidence`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ViolationRecord {
    #[serde(flatten)]
    pub violation: Violation,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<Timestamp>,
    /// Who waived it, why and when (status `waived`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiver: Option<Waiver>,
    /// Every waiver and reversal in the order recorded (one violation's record only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waivers: Vec<WaiverEntry>,
}

/// One step of a violation's waiver chain.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WaiverEntry {
    pub at: Timestamp,
    /// A waiver (`true`) or the reversal of one.
    pub waived: bool,
    pub by: String,
    pub why: String,
}

/// A lead's decision that a violation counts for nothing. Kept forever with the violation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Waiver {
    pub by: String,
    pub reason: String,
    pub at: Timestamp,
}

/// Which records `Floor::violations` returns; `None` fields match everything.
#[derive(Clone, Debug, Default)]
pub struct ViolationFilter {
    /// `at >= from`.
    pub from: Option<Timestamp>,
    /// `at < to`.
    pub to: Option<Timestamp>,
    pub agent: Option<String>,
    pub team: Option<String>,
    pub rule: Option<Rule>,
    pub status: Option<Status>,
}

impl ViolationFilter {
    fn matches(&self, r: &ViolationRecord) -> bool {
        let v = &r.violation;
        self.from.is_none_or(|f| v.at >= f)
            && self.to.is_none_or(|t| v.at < t)
            && self.agent.as_deref().is_none_or(|a| v.agent == a)
            && self.team.as_deref().is_none_or(|t| v.team == t)
            && self.rule.is_none_or(|r| v.rule == r)
            && self.status.is_none_or(|s| r.status == s)
    }
}

/// p50, p90 and p99 of one histogram, in seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// The read side. Shared as `Arc<Floor>`.
pub struct Floor {
    agents: DashMap<Id, AgentView>,
    /// Agents put since the last [`Floor::take_changed_agents`] (for `/ws/floor` deltas);
    /// bounded by the number of agents.
    changed: Mutex<std::collections::HashSet<Id>>,
    queues: RwLock<Arc<Vec<QueueView>>>,
    violations: RwLock<ViolationLog>,
    today: Mutex<TodayHistograms>,
    /// Engine clock in ms; `i64::MIN` while the engine has seen nothing.
    engine_clock: AtomicI64,
    sources_connected: AtomicUsize,
    /// Why the store cannot take events now (journal append failing), for `/readyz`.
    store_fault: RwLock<Option<String>>,
    /// Bumped after every publish that changed something; `/ws/floor` waits on it. A watch
    /// holds one value, so a slow subscriber skips versions instead of queueing them.
    version: watch::Sender<u64>,
    /// Who a shift covers now (logged in or absent), by team then agent.
    schedule: RwLock<Arc<Vec<ScheduledNow>>>,
    /// Today's outbound counters per team, with the team's daily sales target.
    outbound: RwLock<Arc<Vec<TeamOutbound>>>,
    /// Every agent's appraisal so far (one row per agent and period: bounded by the agents).
    standing: RwLock<Arc<Standing>>,
}

/// Every agent's appraisal so far today and this month (local calendar of
/// `appraisal.timezone`), counted up to `as_of` on the engine clock, waivers subtracted: the
/// rows of `floorwatch report` for those periods at that instant. Refreshed with the
/// month-to-date gauges (every minute, and soon after a waiver, demerit or approval).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Standing {
    /// The engine-clock instant the rows count to; `None` before the first computation.
    pub as_of: Option<Timestamp>,
    /// Today's rows, sorted by agent.
    pub today: Vec<AppraisalRow>,
    /// This month's rows, sorted by agent.
    pub month: Vec<AppraisalRow>,
}

impl Standing {
    /// Sorts the rows by agent (for [`Standing::today_of`] and [`Standing::month_of`]).
    pub fn new(
        as_of: Timestamp,
        mut today: Vec<AppraisalRow>,
        mut month: Vec<AppraisalRow>,
    ) -> Standing {
        today.sort_by(|a, b| a.agent.cmp(&b.agent));
        month.sort_by(|a, b| a.agent.cmp(&b.agent));
        Standing {
            as_of: Some(as_of),
            today,
            month,
        }
    }

    pub fn today_of(&self, agent: &str) -> Option<&AppraisalRow> {
        find_row(&self.today, agent)
    }

    pub fn month_of(&self, agent: &str) -> Option<&AppraisalRow> {
        find_row(&self.month, agent)
    }
}

fn find_row<'a>(rows: &'a [AppraisalRow], agent: &str) -> Option<&'a AppraisalRow> {
    rows.binary_search_by(|r| r.agent.as_str().cmp(agent))
        .ok()
        .map(|i| &rows[i])
}

/// A team's outbound today (外呼), as the floor shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TeamOutbound {
    pub team: Id,
    pub attempts: u64,
    pub connected: u64,
    /// 外呼接通率: connected / attempts (absent without attempts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_rate: Option<f64>,
    pub sales: u64,
    /// The team's daily target (`[[teams]] sales_target`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
    /// sales / target (absent without a target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
}

impl Floor {
    pub fn new(calendar: Calendar) -> Floor {
        Floor::with_capacity(calendar, VIOLATION_LOG_CAPACITY)
    }

    pub fn with_capacity(calendar: Calendar, violation_capacity: usize) -> Floor {
        Floor {
            agents: DashMap::new(),
            changed: Mutex::new(std::collections::HashSet::new()),
            queues: RwLock::new(Arc::new(Vec::new())),
            violations: RwLock::new(ViolationLog::new(violation_capacity)),
            store_fault: RwLock::new(None),
            today: Mutex::new(TodayHistograms::new(calendar)),
            engine_clock: AtomicI64::new(i64::MIN),
            sources_connected: AtomicUsize::new(0),
            version: watch::Sender::new(0),
            schedule: RwLock::new(Arc::new(Vec::new())),
            outbound: RwLock::new(Arc::new(Vec::new())),
            standing: RwLock::new(Arc::new(Standing::default())),
        }
    }

    /// Every agent's appraisal so far today and this month.
    pub fn standing(&self) -> Arc<Standing> {
        self.standing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes the appraisal so far (the appraisal thread does, after each refresh).
    pub fn set_standing(&self, s: Standing) {
        *self.standing.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
    }

    /// Who a shift covers now, by team then agent.
    pub fn schedule(&self) -> Arc<Vec<ScheduledNow>> {
        self.schedule
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Today's outbound per team.
    pub fn outbound(&self) -> Arc<Vec<TeamOutbound>> {
        self.outbound
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes who a shift covers now; returns whether it changed.
    pub(crate) fn set_schedule(&self, v: Vec<ScheduledNow>) -> bool {
        let mut w = self.schedule.write().unwrap_or_else(|e| e.into_inner());
        if **w == v {
            return false;
        }
        *w = Arc::new(v);
        true
    }

    /// Publishes today's outbound per team; returns whether it changed.
    pub(crate) fn set_outbound(&self, v: Vec<TeamOutbound>) -> bool {
        let mut w = self.outbound.write().unwrap_or_else(|e| e.into_inner());
        if **w == v {
            return false;
        }
        *w = Arc::new(v);
        true
    }

    // ---- readers ----

    /// Every known agent (logged in or not), sorted by id.
    pub fn agents(&self) -> Vec<AgentView> {
        let mut v: Vec<AgentView> = self.agents.iter().map(|e| e.value().clone()).collect();
        v.sort_by(|a, b| a.agent.cmp(&b.agent));
        v
    }

    pub fn agent(&self, agent: &str) -> Option<AgentView> {
        self.agents.get(agent).map(|e| e.value().clone())
    }

    /// Every known queue, sorted by id, as of the last publish.
    pub fn queues(&self) -> Arc<Vec<QueueView>> {
        self.queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The engine clock as last published.
    pub fn engine_clock(&self) -> Option<Timestamp> {
        match self.engine_clock.load(Ordering::Acquire) {
            i64::MIN => None,
            ms => Some(Timestamp(ms)),
        }
    }

    /// How many ingest connections are open now.
    pub fn sources_connected(&self) -> usize {
        self.sources_connected.load(Ordering::Acquire)
    }

    /// Matching records in the order raised, at most `limit` (the newest ones).
    pub fn violations(&self, filter: &ViolationFilter, limit: usize) -> Vec<ViolationRecord> {
        let log = self.violations.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<ViolationRecord> = log
            .records
            .iter()
            .rev()
            .filter(|r| filter.matches(r))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// Open records in the order raised.
    pub fn open_violations(&self) -> Vec<ViolationRecord> {
        let filter = ViolationFilter {
            status: Some(Status::Open),
            ..ViolationFilter::default()
        };
        self.violations(&filter, usize::MAX)
    }

    /// Today's ring-time percentiles per team.
    pub fn ring_percentiles(&self) -> BTreeMap<Id, Percentiles> {
        let t = self.today.lock().unwrap_or_else(|e| e.into_inner());
        percentiles_of(&t.ring_by_team)
    }

    /// Today's queue-wait percentiles (answered calls) per queue.
    pub fn wait_percentiles(&self) -> BTreeMap<Id, Percentiles> {
        let t = self.today.lock().unwrap_or_else(|e| e.into_inner());
        percentiles_of(&t.wait_by_queue)
    }

    /// Changes to the floor: the value is a version number, bumped at most once per publish.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    // ---- writers: the engine owner task only ----

    pub(crate) fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn put_agent(&self, view: AgentView) {
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(view.agent.clone());
        self.agents.insert(view.agent.clone(), view);
    }

    /// The agents put since the last call, with their current views, in id order.
    /// Forgets which agents changed (nobody is watching the feed).
    pub fn discard_changed_agents(&self) {
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn take_changed_agents(&self) -> Vec<AgentView> {
        let ids = std::mem::take(&mut *self.changed.lock().unwrap_or_else(|e| e.into_inner()));
        let mut views: Vec<AgentView> = ids.iter().filter_map(|id| self.agent(id)).collect();
        views.sort_by(|a, b| a.agent.cmp(&b.agent));
        views
    }

    pub(crate) fn set_queues(&self, queues: Vec<QueueView>) {
        *self.queues.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(queues);
    }

    pub(crate) fn set_engine_clock(&self, now: Option<Timestamp>) {
        self.engine_clock
            .store(now.map_or(i64::MIN, |t| t.0), Ordering::Release);
    }

    /// Why the store is failing, if it is.
    pub fn store_fault(&self) -> Option<String> {
        self.store_fault
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_store_fault(&self, fault: Option<String>) {
        *self.store_fault.write().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    pub(crate) fn set_sources_connected(&self, n: usize) {
        self.sources_connected.store(n, Ordering::Release);
    }

    pub(crate) fn push_violation(&self, v: Violation) {
        self.violations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(v);
    }

    /// Marks violation `id` closed at `at` after an episode of `lasted_ms`; returns its
    /// rule, team and agent if it was open.
    pub(crate) fn close_violation(
        &self,
        id: u64,
        at: Timestamp,
        ended_by: EventRef,
        lasted_ms: Millis,
    ) -> Option<(Rule, Id, Id)> {
        self.violations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .close(id, at, ended_by, lasted_ms)
    }

    /// Records the latest waiver (`waived`) or reversal of violation `id`.
    pub(crate) fn waive_violation(&self, id: u64, waiver: Option<Waiver>) {
        self.violations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .waive(id, waiver);
    }

    /// Starts a new local day when `now` has left the current one; returns whether it did.
    pub(crate) fn roll_day(&self, now: Timestamp) -> bool {
        self.today
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .roll(now)
    }

    pub(crate) fn record_ring(&self, now: Timestamp, team: &Id, ring: Millis) {
        let mut t = self.today.lock().unwrap_or_else(|e| e.into_inner());
        t.roll(now);
        TodayHistograms::record(&mut t.ring_by_team, team, ring);
    }

    pub(crate) fn record_wait(&self, now: Timestamp, queue: &Id, wait: Millis) {
        let mut t = self.today.lock().unwrap_or_else(|e| e.into_inner());
        t.roll(now);
        TodayHistograms::record(&mut t.wait_by_queue, queue, wait);
    }
}

/// Violations in the order raised (ids increase), bounded.
struct ViolationLog {
    records: VecDeque<ViolationRecord>,
    capacity: usize,
}

impl ViolationLog {
    fn new(capacity: usize) -> ViolationLog {
        ViolationLog {
            records: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn push(&mut self, v: Violation) {
        if self.records.len() >= self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(ViolationRecord {
            violation: v,
            status: Status::Open,
            cleared_at: None,
            waiver: None,
            waivers: Vec::new(),
        });
    }

    fn waive(&mut self, id: u64, waiver: Option<Waiver>) {
        let Ok(i) = self.records.binary_search_by_key(&id, |r| r.violation.id) else {
            return;
        };
        let r = &mut self.records[i];
        r.status = match (&waiver, r.cleared_at) {
            (Some(_), _) => Status::Waived,
            (None, None) => Status::Open,
            (None, Some(_)) => Status::Closed,
        };
        r.waiver = waiver;
    }

    fn close(
        &mut self,
        id: u64,
        at: Timestamp,
        ended_by: EventRef,
        lasted_ms: Millis,
    ) -> Option<(Rule, Id, Id)> {
        // Ids are raised in increasing order, so the log is sorted by id.
        let i = self
            .records
            .binary_search_by_key(&id, |r| r.violation.id)
            .ok()?;
        let r = self.records.get_mut(i)?;
        if r.cleared_at.is_some() {
            return None;
        }
        // A waived violation stays waived; its episode ends all the same.
        if r.status == Status::Open {
            r.status = Status::Closed;
        }
        r.cleared_at = Some(at);
        r.violation.evidence.lasted_ms = Some(lasted_ms);
        if r.violation.evidence.ended_by.is_none() {
            r.violation.evidence.ended_by = Some(ended_by);
        }
        Some((
            r.violation.rule,
            r.violation.team.clone(),
            r.violation.agent.clone(),
        ))
    }
}

/// Ring times and queue waits of the current local day, in tenths of a second.
///
/// Memory is what decides the shape: one histogram per team and per queue, so at 100,000
/// agents there are some 12,000 of them. Two significant digits over 0.1 s .. 1 day with
/// `u32` counts is about 7 KiB each (three digits in milliseconds was 74 KiB), and exact to
/// the tenth of a second up to 25.5 s, where ring times and most waits fall; above that
/// within 1 %. At midnight the histograms are reset in place, not dropped, so a new day
/// allocates nothing (dropping them all at once and growing them again from other threads
/// left the allocator with tens of MiB it never gave back: the soak run's RSS steps).
struct TodayHistograms {
    calendar: Calendar,
    /// End of the current day; `None` before the first record.
    day_end: Option<Timestamp>,
    ring_by_team: BTreeMap<Id, Histogram<u32>>,
    wait_by_queue: BTreeMap<Id, Histogram<u32>>,
}

/// Values are in tenths of a second, clamped to [0, 1 day]; 2 significant digits.
const HIST_UNIT_MS: Millis = 100;
const HIST_MAX: u64 = 24 * 36_000;
const HIST_DIGITS: u8 = 2;

impl TodayHistograms {
    fn new(calendar: Calendar) -> TodayHistograms {
        TodayHistograms {
            calendar,
            day_end: None,
            ring_by_team: BTreeMap::new(),
            wait_by_queue: BTreeMap::new(),
        }
    }

    fn roll(&mut self, now: Timestamp) -> bool {
        match self.day_end {
            Some(end) if now < end => false,
            _ => {
                let day = self.calendar.day(now);
                let rolled = self.day_end.is_some();
                self.day_end = Some(day.end);
                if rolled {
                    for h in self
                        .ring_by_team
                        .values_mut()
                        .chain(self.wait_by_queue.values_mut())
                    {
                        h.reset();
                    }
                }
                rolled
            }
        }
    }

    fn record(map: &mut BTreeMap<Id, Histogram<u32>>, key: &Id, ms: Millis) {
        if !map.contains_key(key) {
            match Histogram::<u32>::new_with_bounds(1, HIST_MAX, HIST_DIGITS) {
                Ok(h) => {
                    map.insert(key.clone(), h);
                }
                Err(_) => return,
            }
        }
        if let Some(h) = map.get_mut(key) {
            h.saturating_record(((ms.max(0) / HIST_UNIT_MS) as u64).min(HIST_MAX));
        }
    }
}

fn percentiles_of(map: &BTreeMap<Id, Histogram<u32>>) -> BTreeMap<Id, Percentiles> {
    map.iter()
        // A team or queue with nothing today (since the last midnight reset) is left out.
        .filter(|(_, h)| !h.is_empty())
        .map(|(k, h)| {
            // The lowest value of the quantile's bucket, so values the histogram holds
            // exactly (tenths of a second up to 25.5 s) come out exactly.
            let q = |x: f64| {
                (h.lowest_equivalent(h.value_at_quantile(x)) as i64 * HIST_UNIT_MS) as f64 / 1000.0
            };
            (
                k.clone(),
                Percentiles {
                    count: h.len(),
                    p50: q(0.5),
                    p90: q(0.9),
                    p99: q(0.99),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).expect("timestamp")
    }

    fn floor() -> Floor {
        Floor::new(Calendar::new(jiff::tz::TimeZone::fixed(jiff::tz::offset(
            8,
        ))))
    }

    #[test]
    fn ring_percentiles_are_exact_to_the_tenth_of_a_second_up_to_25_s() {
        let f = floor();
        let now = ts("2026-11-28T02:00:00Z");
        let t = Id::from("t1");
        // 100 rings: 50 of 4.2 s, 40 of 7.9 s, 9 of 25.5 s, one of 600 s (a clamp-free long
        // ring, within 1 %). 4.25 s counts as 4.2 s (tenths are cut, not rounded).
        for _ in 0..49 {
            f.record_ring(now, &t, 4_200);
        }
        f.record_ring(now, &t, 4_259);
        for _ in 0..40 {
            f.record_ring(now, &t, 7_900);
        }
        for _ in 0..9 {
            f.record_ring(now, &t, 25_500);
        }
        f.record_ring(now, &t, 600_000);
        let p = &f.ring_percentiles()[&t];
        assert_eq!((p.count, p.p50, p.p90), (100, 4.2, 7.9));
        assert_eq!(p.p99, 25.5);
        f.record_ring(now, &t, 600_000);
        f.record_ring(now, &t, 600_000);
        let p = &f.ring_percentiles()[&t];
        assert!((p.p99 - 600.0).abs() <= 6.0, "{p:?}");
        // A negative ring (clock skew) counts as 0; one over a day as a day.
        f.record_wait(now, &Id::from("q"), -5);
        f.record_wait(now, &Id::from("q"), 90_000_000);
        let w = &f.wait_percentiles()[&Id::from("q")];
        assert_eq!((w.count, w.p50), (2, 0.0));
        assert!((w.p99 - 86_400.0).abs() <= 864.0, "{w:?}");
    }

    #[test]
    fn midnight_empties_the_histograms_in_place() {
        let f = floor();
        let (a, b) = (Id::from("a"), Id::from("b"));
        // 23:30 and 23:50 local (UTC+8), then 00:10 the next day.
        f.record_ring(ts("2026-11-28T15:30:00Z"), &a, 3_000);
        f.record_ring(ts("2026-11-28T15:50:00Z"), &b, 5_000);
        assert_eq!(f.ring_percentiles().len(), 2);
        let size = |f: &Floor| {
            let t = f.today.lock().expect("lock");
            t.ring_by_team
                .values()
                .map(|h| h.distinct_values())
                .sum::<usize>()
        };
        let before = size(&f);
        // Small enough for a team per 8 agents at 100,000 agents (the 1 KiB per agent
        // budget): under 8 KiB of counters each.
        assert!(before * 4 / 2 < 8 * 1024, "{before} counters");
        assert!(f.roll_day(ts("2026-11-28T16:10:00Z")));
        assert!(
            f.ring_percentiles().is_empty(),
            "yesterday's rings are gone"
        );
        f.record_ring(ts("2026-11-28T16:20:00Z"), &b, 6_000);
        let p = f.ring_percentiles();
        assert_eq!(p.keys().collect::<Vec<_>>(), vec![&b]);
        assert_eq!((p[&b].count, p[&b].p50), (1, 6.0));
        assert_eq!(size(&f), before, "the new day reuses the histograms");
    }
}
