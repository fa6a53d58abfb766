//! The rulebook: the part of the config that judges (rules, reasons, the discipline catalog,
//! dispositions, service level, appraisal, team membership and sales targets), as canonical
//! JSON with its SHA-256. The daemon journals it whenever the one in force changes, so that
//! reports and replays judge every instant by the rules in force then, never by today's file.
//!
//! Canonical: keys sorted, durations in whole milliseconds, lists sorted, no whitespace; the
//! same rulebook always gives the same bytes and digest. `[limits]` is not part of it: limits
//! bound memory, they do not judge.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{
    AttendancePoints, AttendanceRule, BreakOverrunRule, DisciplineItem, Disposition, EngineLimits,
    ItemPoints, ReasonRule, RingAnswerRule, RulesConfig, ServiceLevelConfig, UnauthorizedPauseRule,
};
use crate::time::Millis;

/// Format of the rulebook document; a reader refuses any other.
pub const RULEBOOK_FORMAT: u32 = 1;

/// A rulebook that cannot be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum RulebookError {
    #[error("the rulebook does not decode: {0}")]
    Decode(String),
    #[error("rulebook format {0} is not supported (this build reads {RULEBOOK_FORMAT})")]
    Format(u32),
    #[error("unknown time zone {0:?} in the rulebook")]
    TimeZone(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    format: u32,
    appraisal: DocAppraisal,
    dispositions: BTreeMap<String, DocDisposition>,
    discipline: BTreeMap<String, DocItem>,
    reasons: BTreeMap<String, DocReason>,
    rules: DocRules,
    service_level: DocServiceLevel,
    /// Team id → its configured members (sorted) and sales target.
    teams: BTreeMap<String, DocTeam>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocAppraisal {
    currency: String,
    money_per_point: f64,
    timezone: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocDisposition {
    name: String,
    sale: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocItem {
    name: String,
    /// `[n]` for a fixed item, `[min, max]` for a ranged one.
    points: Vec<u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocReason {
    allowance: bool,
    approval: bool,
    max_ms: Option<Millis>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocRules {
    attendance: DocAttendance,
    break_overrun: DocBreakOverrun,
    ring_answer: DocRingAnswer,
    unauthorized_pause: DocUnauthorizedPause,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocAttendance {
    handover_window_ms: Millis,
    login_grace_ms: Millis,
    logout_grace_ms: Millis,
    points_late_login: u32,
    points_left_before_relief: u32,
    points_not_logged_out: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocBreakOverrun {
    daily_allowance_ms: Millis,
    points: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocRingAnswer {
    points: u32,
    ring_cycle_ms: Millis,
    rings: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocUnauthorizedPause {
    acw_link_ms: Millis,
    acw_max_ms: Millis,
    grace_ms: Millis,
    points: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocServiceLevel {
    short_abandon_ms: Millis,
    threshold_ms: Millis,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DocTeam {
    members: Vec<String>,
    sales_target: Option<u32>,
}

impl RulesConfig {
    /// The rulebook as canonical JSON.
    pub fn rulebook_json(&self) -> String {
        let mut teams: BTreeMap<String, DocTeam> = BTreeMap::new();
        for (agent, team) in &self.team_of {
            teams
                .entry(team.clone())
                .or_default()
                .members
                .push(agent.clone());
        }
        for (team, target) in &self.sales_target {
            teams.entry(team.clone()).or_default().sales_target = Some(*target);
        }
        for t in teams.values_mut() {
            t.members.sort_unstable();
        }
        let a = &self.attendance;
        let doc = Doc {
            format: RULEBOOK_FORMAT,
            appraisal: DocAppraisal {
                currency: self.currency.clone(),
                money_per_point: self.money_per_point,
                timezone: self.timezone_name.clone(),
            },
            dispositions: self
                .dispositions
                .iter()
                .map(|(k, d)| {
                    (
                        k.clone(),
                        DocDisposition {
                            name: d.name.clone(),
                            sale: d.sale,
                        },
                    )
                })
                .collect(),
            discipline: self
                .discipline
                .iter()
                .map(|(k, i)| {
                    let points = match i.points {
                        ItemPoints::Fixed(n) => vec![n],
                        ItemPoints::Range(lo, hi) => vec![lo, hi],
                    };
                    (
                        k.clone(),
                        DocItem {
                            name: i.name.clone(),
                            points,
                        },
                    )
                })
                .collect(),
            reasons: self
                .reasons
                .iter()
                .map(|(k, r)| {
                    (
                        k.clone(),
                        DocReason {
                            allowance: r.allowance,
                            approval: r.approval,
                            max_ms: r.max,
                        },
                    )
                })
                .collect(),
            rules: DocRules {
                attendance: DocAttendance {
                    handover_window_ms: a.handover_window,
                    login_grace_ms: a.login_grace,
                    logout_grace_ms: a.logout_grace,
                    points_late_login: a.points.late_login,
                    points_left_before_relief: a.points.left_before_relief,
                    points_not_logged_out: a.points.not_logged_out,
                },
                break_overrun: DocBreakOverrun {
                    daily_allowance_ms: self.break_overrun.daily_allowance,
                    points: self.break_overrun.points,
                },
                ring_answer: DocRingAnswer {
                    points: self.ring_answer.points,
                    ring_cycle_ms: self.ring_answer.ring_cycle,
                    rings: self.ring_answer.rings,
                },
                unauthorized_pause: DocUnauthorizedPause {
                    acw_link_ms: self.unauthorized_pause.acw_link,
                    acw_max_ms: self.unauthorized_pause.acw_max,
                    grace_ms: self.unauthorized_pause.grace,
                    points: self.unauthorized_pause.points,
                },
            },
            service_level: DocServiceLevel {
                short_abandon_ms: self.service_level.short_abandon,
                threshold_ms: self.service_level.threshold,
            },
            teams,
        };
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// The SHA-256 of [`RulesConfig::rulebook_json`], as 64 lowercase hex digits.
    pub fn rulebook_digest(&self) -> String {
        digest_of(&self.rulebook_json())
    }

    /// The rules of a journaled rulebook, with the engine `limits` of this process.
    pub fn from_rulebook_json(
        json: &str,
        limits: EngineLimits,
    ) -> Result<RulesConfig, RulebookError> {
        let doc: Doc =
            serde_json::from_str(json).map_err(|e| RulebookError::Decode(e.to_string()))?;
        if doc.format != RULEBOOK_FORMAT {
            return Err(RulebookError::Format(doc.format));
        }
        let timezone = jiff::tz::TimeZone::get(&doc.appraisal.timezone)
            .map_err(|_| RulebookError::TimeZone(doc.appraisal.timezone.clone()))?;
        let bad = |what: &str| Err(RulebookError::Decode(what.to_string()));
        let mut team_of = HashMap::new();
        let mut sales_target = BTreeMap::new();
        for (team, t) in doc.teams {
            for m in t.members {
                team_of.insert(m, team.clone());
            }
            if let Some(n) = t.sales_target {
                sales_target.insert(team, n);
            }
        }
        let mut discipline = BTreeMap::new();
        for (k, i) in doc.discipline {
            let points = match i.points.as_slice() {
                [n] => ItemPoints::Fixed(*n),
                [lo, hi] if lo < hi => ItemPoints::Range(*lo, *hi),
                _ => return bad("a discipline item's points must be [n] or [min, max]"),
            };
            discipline.insert(
                k,
                DisciplineItem {
                    name: i.name,
                    points,
                },
            );
        }
        let r = doc.rules;
        Ok(RulesConfig {
            ring_answer: RingAnswerRule {
                rings: r.ring_answer.rings,
                ring_cycle: r.ring_answer.ring_cycle_ms,
                points: r.ring_answer.points,
            },
            break_overrun: BreakOverrunRule {
                points: r.break_overrun.points,
                daily_allowance: r.break_overrun.daily_allowance_ms,
            },
            unauthorized_pause: UnauthorizedPauseRule {
                points: r.unauthorized_pause.points,
                grace: r.unauthorized_pause.grace_ms,
                acw_max: r.unauthorized_pause.acw_max_ms,
                acw_link: r.unauthorized_pause.acw_link_ms,
            },
            attendance: AttendanceRule {
                login_grace: r.attendance.login_grace_ms,
                logout_grace: r.attendance.logout_grace_ms,
                handover_window: r.attendance.handover_window_ms,
                points: AttendancePoints {
                    late_login: r.attendance.points_late_login,
                    left_before_relief: r.attendance.points_left_before_relief,
                    not_logged_out: r.attendance.points_not_logged_out,
                },
            },
            reasons: doc
                .reasons
                .into_iter()
                .map(|(k, r)| {
                    (
                        k,
                        ReasonRule {
                            max: r.max_ms,
                            allowance: r.allowance,
                            approval: r.approval,
                        },
                    )
                })
                .collect(),
            discipline,
            dispositions: doc
                .dispositions
                .into_iter()
                .map(|(k, d)| {
                    (
                        k,
                        Disposition {
                            name: d.name,
                            sale: d.sale,
                        },
                    )
                })
                .collect(),
            sales_target,
            service_level: ServiceLevelConfig {
                threshold: doc.service_level.threshold_ms,
                short_abandon: doc.service_level.short_abandon_ms,
            },
            timezone,
            timezone_name: doc.appraisal.timezone,
            money_per_point: doc.appraisal.money_per_point,
            currency: doc.appraisal.currency,
            team_of,
            limits,
        })
    }
}

/// SHA-256 of `text` as 64 lowercase hex digits.
pub fn digest_of(text: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rulebook_reads_back_as_the_same_rules_and_bytes() {
        let text = r#"
[rules.ring_answer]
rings = 4
[rules.attendance]
login_grace = "2m"
[rules.attendance.points]
not_logged_out = 3
[reasons.break]
max = "20m"
allowance = true
[discipline.eating]
name = "吃东西"
points = 2
[discipline.equipment_damage]
points = [1, 5]
[dispositions.sale]
sale = true
[[teams]]
id = "t1"
members = ["b", "a"]
sales_target = 40
[appraisal]
timezone = "UTC"
money_per_point = 12.5
"#;
        let c = crate::config::Config::from_toml_str(text).expect("valid");
        let json = c.rules.rulebook_json();
        let back = RulesConfig::from_rulebook_json(&json, EngineLimits::default()).expect("reads");
        assert_eq!(back.rulebook_json(), json);
        assert_eq!(back.rulebook_digest(), c.rules.rulebook_digest());
        assert_eq!(back.ring_answer.rings, 4);
        assert_eq!(back.attendance.login_grace, 120_000);
        assert_eq!(back.attendance.points.not_logged_out, 3);
        assert_eq!(back.discipline.len(), 2);
        assert_eq!(
            back.discipline["equipment_damage"].points,
            ItemPoints::Range(1, 5)
        );
        assert_eq!(back.team_of.get("a").map(String::as_str), Some("t1"));
        assert_eq!(back.sales_target.get("t1"), Some(&40));
        assert_eq!(back.money_per_point, 12.5);
        assert_eq!(back.timezone_name, "UTC");
        // Any judging change gives another digest.
        let mut other = c.rules.clone();
        other.attendance.logout_grace += 1;
        assert_ne!(other.rulebook_digest(), c.rules.rulebook_digest());
        // Limits do not judge.
        let mut limits = c.rules.clone();
        limits.limits.max_agents = 7;
        assert_eq!(limits.rulebook_digest(), c.rules.rulebook_digest());
    }

    #[test]
    fn a_broken_or_newer_rulebook_is_refused() {
        let json = RulesConfig::default().rulebook_json();
        let newer = json.replacen("\"format\":1", "\"format\":2", 1);
        assert_eq!(
            RulesConfig::from_rulebook_json(&newer, EngineLimits::default()).err(),
            Some(RulebookError::Format(2))
        );
        let zone = json.replacen("Asia/Shanghai", "Mars/Olympus", 1);
        assert!(matches!(
            RulesConfig::from_rulebook_json(&zone, EngineLimits::default()),
            Err(RulebookError::TimeZone(_))
        ));
        assert!(matches!(
            RulesConfig::from_rulebook_json("{}", EngineLimits::default()),
            Err(RulebookError::Decode(_))
        ));
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest_of("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
