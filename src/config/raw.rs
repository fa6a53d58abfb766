//! The config file as written.
//!
//! Owns: the raw serde structs, every key optional. Leaves that need checking after parsing
//! keep their span so that the error can point at them; durations and sizes are parsed while
//! deserializing for the same reason. Must not: be seen outside `config` (the daemon reads
//! only the validated types).

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{SourceClock, SourceKind, SourceMode};
use crate::time::{parse_duration, Millis};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: Option<RawServer>,
    pub(super) source: Option<RawSource>,
    pub(super) store: Option<RawStore>,
    pub(super) rules: Option<RawRules>,
    pub(super) reasons: Option<BTreeMap<Spanned<String>, RawReason>>,
    pub(super) discipline: Option<BTreeMap<Spanned<String>, RawDisciplineItem>>,
    pub(super) dispositions: Option<BTreeMap<Spanned<String>, RawDisposition>>,
    pub(super) service_level: Option<RawServiceLevel>,
    pub(super) appraisal: Option<RawAppraisal>,
    pub(super) teams: Option<Vec<Spanned<RawTeam>>>,
    pub(super) alerts: Option<RawAlerts>,
    pub(super) ui: Option<RawUi>,
    pub(super) metrics: Option<RawMetrics>,
    pub(super) sources: Option<Vec<Spanned<RawSource>>>,
    pub(super) limits: Option<RawLimits>,
    pub(super) users: Option<Vec<Spanned<RawUser>>>,
    pub(super) relay: Option<Spanned<RawRelay>>,
}

/// `url`: one string, or a list (of NATS servers).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawUrl {
    One(String),
    Many(Vec<String>),
}

/// `[relay]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    pub(super) url: Option<Spanned<RawUrl>>,
    pub(super) stream: Option<Spanned<String>>,
    pub(super) subject: Option<Spanned<String>>,
    pub(super) username: Option<Spanned<String>>,
    pub(super) password: Option<Spanned<String>>,
    pub(super) token: Option<Spanned<String>>,
    pub(super) ca: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) name: Option<Spanned<String>>,
    pub(super) role: Option<Spanned<String>>,
    pub(super) teams: Option<Vec<Spanned<String>>>,
    pub(super) agent: Option<Spanned<String>>,
    pub(super) token_sha256: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthProxy {
    pub(super) header: Option<Spanned<String>>,
    pub(super) trusted: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_batch: Option<Spanned<i64>>,
    pub(super) max_agents: Option<Spanned<i64>>,
    pub(super) max_calls: Option<Spanned<i64>>,
    pub(super) max_queues: Option<Spanned<i64>>,
    pub(super) max_shifts: Option<Spanned<i64>>,
    pub(super) max_sources: Option<Spanned<i64>>,
    pub(super) max_ingest_connections: Option<Spanned<i64>>,
    pub(super) max_floor_connections: Option<Spanned<i64>>,
    pub(super) max_events_per_second: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) tokens: Option<RawTokens>,
    pub(super) shutdown_grace: Option<Spanned<Duration>>,
    pub(super) tls: Option<Spanned<RawTls>>,
    pub(super) auth_proxy: Option<Spanned<RawAuthProxy>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: Option<Spanned<String>>,
    pub(super) key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokens {
    pub(super) ingest: Option<Vec<Spanned<String>>>,
    pub(super) viewer: Option<Vec<Spanned<String>>>,
    pub(super) lead: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) kind: Option<Spanned<SourceKind>>,
    pub(super) mode: Option<Spanned<SourceMode>>,
    pub(super) url: Option<Spanned<RawUrl>>,
    pub(super) headers: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub(super) name: Option<Spanned<String>>,
    pub(super) max_frame: Option<Spanned<ByteSize>>,
    pub(super) clock: Option<SourceClock>,
    pub(super) delay: Option<Duration>,
    pub(super) max_lag: Option<Duration>,
    pub(super) idle: Option<Duration>,
    pub(super) max_future: Option<Spanned<Duration>>,
    pub(super) max_future_of: Option<BTreeMap<Spanned<String>, Spanned<Duration>>>,
    pub(super) ping_every: Option<Spanned<Duration>>,
    pub(super) ping_timeout: Option<Spanned<Duration>>,
    pub(super) ca: Option<Spanned<String>>,
    // Adapter keys (kinds other than "floorwatch").
    pub(super) address: Option<Spanned<String>>,
    pub(super) username: Option<Spanned<String>>,
    pub(super) secret: Option<Spanned<String>>,
    pub(super) password: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) agent_id: Option<Spanned<String>>,
    pub(super) members: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub(super) acw_reasons: Option<Vec<Spanned<String>>>,
    pub(super) auto_pause_reason: Option<Spanned<String>>,
    pub(super) break_reason: Option<Spanned<String>>,
    pub(super) reorder_window: Option<Spanned<Duration>>,
    // Keys of kind "nats-jetstream" (with `url`, `name`, `username`, `password`, `ca`).
    pub(super) stream: Option<Spanned<String>>,
    pub(super) subject: Option<Spanned<String>>,
    pub(super) durable: Option<Spanned<String>>,
    pub(super) api_subject: Option<Spanned<String>>,
    pub(super) token: Option<Spanned<String>>,
}

/// The adapter keys of a `[source]` or `[[sources]]` table, taken out of [`RawSource`].
pub(super) struct RawAdapter {
    pub(super) kind: Spanned<SourceKind>,
    pub(super) name: Option<Spanned<String>>,
    pub(super) max_frame: Option<Spanned<ByteSize>>,
    pub(super) address: Option<Spanned<String>>,
    pub(super) username: Option<Spanned<String>>,
    pub(super) secret: Option<Spanned<String>>,
    pub(super) password: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) agent_id: Option<Spanned<String>>,
    pub(super) members: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub(super) acw_reasons: Option<Vec<Spanned<String>>>,
    pub(super) auto_pause_reason: Option<Spanned<String>>,
    pub(super) break_reason: Option<Spanned<String>>,
    pub(super) reorder_window: Option<Spanned<Duration>>,
}

impl RawSource {
    /// Splits off the adapter keys; `None` for the floorwatch protocol (the default kind).
    pub(super) fn take_adapter(&mut self) -> Option<RawAdapter> {
        let kind = self.kind.take()?;
        if *kind.get_ref() == SourceKind::Floorwatch {
            self.kind = Some(kind);
            return None;
        }
        Some(RawAdapter {
            kind,
            name: self.name.take(),
            max_frame: self.max_frame.take(),
            address: self.address.take(),
            username: self.username.take(),
            secret: self.secret.take(),
            password: self.password.take(),
            path: self.path.take(),
            agent_id: self.agent_id.take(),
            members: self.members.take(),
            acw_reasons: self.acw_reasons.take(),
            auto_pause_reason: self.auto_pause_reason.take(),
            break_reason: self.break_reason.take(),
            reorder_window: self.reorder_window.take(),
        })
    }

    /// The first adapter key present, with its span (for "not for this kind" errors).
    pub(super) fn first_adapter_key(&self) -> Option<(&'static str, Range<usize>)> {
        let s = |name: &'static str, span: Option<Range<usize>>| span.map(|sp| (name, sp));
        s("address", self.address.as_ref().map(|v| v.span()))
            .or_else(|| s("username", self.username.as_ref().map(|v| v.span())))
            .or_else(|| s("secret", self.secret.as_ref().map(|v| v.span())))
            .or_else(|| s("password", self.password.as_ref().map(|v| v.span())))
            .or_else(|| s("path", self.path.as_ref().map(|v| v.span())))
            .or_else(|| s("agent_id", self.agent_id.as_ref().map(|v| v.span())))
            .or_else(|| {
                s(
                    "members",
                    self.members
                        .as_ref()
                        .and_then(|m| m.keys().next().map(|k| k.span())),
                )
            })
            .or_else(|| {
                s(
                    "acw_reasons",
                    self.acw_reasons
                        .as_ref()
                        .and_then(|v| v.first().map(|x| x.span())),
                )
            })
            .or_else(|| {
                s(
                    "auto_pause_reason",
                    self.auto_pause_reason.as_ref().map(|v| v.span()),
                )
            })
            .or_else(|| s("break_reason", self.break_reason.as_ref().map(|v| v.span())))
            .or_else(|| {
                s(
                    "reorder_window",
                    self.reorder_window.as_ref().map(|v| v.span()),
                )
            })
    }

    /// The first key of kind `"nats-jetstream"` only, with its span.
    pub(super) fn first_nats_key(&self) -> Option<(&'static str, Range<usize>)> {
        [
            ("stream", &self.stream),
            ("subject", &self.subject),
            ("durable", &self.durable),
            ("api_subject", &self.api_subject),
            ("token", &self.token),
        ]
        .into_iter()
        .find_map(|(k, v)| v.as_ref().map(|v| (k, v.span())))
    }

    /// The first floorwatch-protocol key present (not allowed in `[[sources]]`).
    pub(super) fn first_protocol_key(&self) -> Option<(&'static str, Range<usize>)> {
        let s = |name: &'static str, span: Option<Range<usize>>| span.map(|sp| (name, sp));
        s("mode", self.mode.as_ref().map(|v| v.span()))
            .or_else(|| s("url", self.url.as_ref().map(|v| v.span())))
            .or_else(|| {
                s(
                    "headers",
                    self.headers
                        .as_ref()
                        .and_then(|h| h.keys().next().map(|k| k.span())),
                )
            })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) dir: Option<Spanned<String>>,
    pub(super) checkpoint_every: Option<Spanned<Duration>>,
    /// A duration, or whole days as `"400d"`.
    pub(super) retention: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRules {
    pub(super) ring_answer: Option<RawRingAnswer>,
    pub(super) break_overrun: Option<RawBreakOverrun>,
    pub(super) unauthorized_pause: Option<RawUnauthorizedPause>,
    pub(super) attendance: Option<RawAttendance>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttendance {
    pub(super) login_grace: Option<Duration>,
    pub(super) logout_grace: Option<Duration>,
    pub(super) handover_window: Option<Duration>,
    pub(super) points: Option<RawAttendancePoints>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttendancePoints {
    pub(super) late_login: Option<u32>,
    pub(super) left_before_relief: Option<u32>,
    pub(super) not_logged_out: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDisciplineItem {
    pub(super) name: Option<Spanned<String>>,
    pub(super) points: Option<Spanned<RawItemPoints>>,
}

/// `points = 3` or `points = [1, 5]`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawItemPoints {
    Fixed(i64),
    Range(Vec<i64>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDisposition {
    pub(super) name: Option<Spanned<String>>,
    pub(super) sale: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRingAnswer {
    pub(super) rings: Option<Spanned<i64>>,
    pub(super) ring_cycle: Option<Spanned<Duration>>,
    pub(super) points: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBreakOverrun {
    pub(super) points: Option<u32>,
    pub(super) daily_allowance: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUnauthorizedPause {
    pub(super) points: Option<u32>,
    pub(super) grace: Option<Duration>,
    pub(super) acw_max: Option<Spanned<Duration>>,
    pub(super) acw_link: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReason {
    pub(super) max: Option<Spanned<Duration>>,
    pub(super) allowance: Option<bool>,
    pub(super) approval: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServiceLevel {
    pub(super) threshold: Option<Spanned<Duration>>,
    pub(super) short_abandon: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAppraisal {
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) money_per_point: Option<Spanned<f64>>,
    pub(super) currency: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTeam {
    pub(super) id: Option<Spanned<String>>,
    pub(super) lead: Option<Spanned<String>>,
    pub(super) supervisor: Option<Spanned<String>>,
    pub(super) members: Option<Vec<Spanned<String>>>,
    pub(super) sales_target: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    pub(super) alertmanager: Option<RawAlertmanager>,
    pub(super) webhook: Option<RawWebhook>,
    pub(super) escalate_after: Option<Spanned<Duration>>,
    pub(super) resolve_hold: Option<Spanned<Duration>>,
    pub(super) resend_every: Option<Spanned<Duration>>,
    pub(super) max_pending: Option<Spanned<i64>>,
    pub(super) timeout: Option<Spanned<Duration>>,
    pub(super) retry_max: Option<Spanned<Duration>>,
    pub(super) external_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertmanager {
    pub(super) url: Option<Spanned<String>>,
    pub(super) urls: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub(super) url: Spanned<String>,
    pub(super) secret: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) pseudonymize_agents: Option<Spanned<bool>>,
    pub(super) pseudonym_key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUi {
    pub(super) language: Option<Spanned<String>>,
}

/// A config duration string, parsed while deserializing so that toml attaches the span.
pub(super) struct Duration(pub(super) Millis);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration string such as \"15s\" or \"1h30m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map(Duration).map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// A size in bytes: an integer, or a string such as `"65536"`, `"512KiB"`, `"1MiB"`.
pub(super) struct ByteSize(pub(super) usize);

impl ByteSize {
    fn parse(s: &str) -> Option<usize> {
        let t = s.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits);
        let number: usize = number.parse().ok()?;
        let unit = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return None,
        };
        number.checked_mul(unit)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as \"1MiB\", \"512KiB\" or 65536 (bytes)")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                usize::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("not a size: {v} (want a byte count ≥ 1)")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                usize::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("not a size: {v} (too large)")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map(ByteSize).ok_or_else(|| {
                    E::custom(format!(
                        "not a size: {v:?} (want e.g. \"1MiB\", \"512KiB\" or \"65536\" bytes)"
                    ))
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}
