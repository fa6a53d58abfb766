//! Configuration: the TOML file of the surface page, parsed from a `&str` into raw serde
//! structs and then validated into [`Config`]. Every key is optional; the defaults are the
//! seed manual's rules. Nothing here binds ports or touches the store.
//!
//! Every error is a [`ConfigError`] that points at the offending key: its dotted path
//! (`rules.ring_answer.ring_cycle`, `teams[1].members`, `source.headers."X Y"`) and the
//! 1-based line and column of the value, or of the key when the key itself is wrong.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::time::{parse_duration, Millis};

/// A fully validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub source: SourceConfig,
    pub store: StoreConfig,
    /// Everything the engine needs: rules, reasons, service level, time zone, teams.
    pub rules: RulesConfig,
    pub teams: Vec<TeamConfig>,
    pub alerts: AlertsConfig,
    pub ui: UiConfig,
    pub metrics: MetricsConfig,
    /// `[limits]` enforced by the I/O shell (the engine's own are in `rules.limits`).
    pub limits: ShellLimits,
    /// Phone-system adapters to run (`[source]` with a `kind` other than `"floorwatch"`, and
    /// every `[[sources]]` table), in file order. Names are unique.
    pub adapters: Vec<AdapterConfig>,
}

/// The source name of events made by the HTTP API (approvals); no configured source may
/// take it.
pub const API_SOURCE: &str = "api";

/// `source.kind`: which protocol a source speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// The floorwatch protocol (protocol.md) over WebSocket, listen or connect mode.
    Floorwatch,
    /// Asterisk Manager Interface (TCP, app_queue events).
    AsteriskAmi,
    /// Asterisk's `queue_log` file, tailed.
    AsteriskQueueLog,
    /// FreeSWITCH mod_callcenter over the event socket.
    FreeswitchEsl,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Floorwatch => "floorwatch",
            SourceKind::AsteriskAmi => "asterisk-ami",
            SourceKind::AsteriskQueueLog => "asterisk-queue-log",
            SourceKind::FreeswitchEsl => "freeswitch-esl",
        }
    }
}

/// `[metrics]`: what `/metrics` shows of people.
#[derive(Clone, Debug, Default)]
pub struct MetricsConfig {
    /// `pseudonymize_agents = true` with its `pseudonym_key`: every `agent` label is
    /// `a_` + the first 12 hex digits of HMAC-SHA256(key, agent id) instead of the id.
    pub pseudonym_key: Option<Secret>,
}

/// A password or secret: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One phone-system adapter: its source name (which scopes `seq` in the journal) and what
/// it connects to.
#[derive(Clone, Debug)]
pub struct AdapterConfig {
    pub name: String,
    pub kind: AdapterKind,
}

#[derive(Clone, Debug)]
pub enum AdapterKind {
    AsteriskAmi(AmiSource),
    AsteriskQueueLog(QueueLogSource),
    FreeswitchEsl(EslSource),
}

impl AdapterKind {
    pub fn kind(&self) -> SourceKind {
        match self {
            AdapterKind::AsteriskAmi(_) => SourceKind::AsteriskAmi,
            AdapterKind::AsteriskQueueLog(_) => SourceKind::AsteriskQueueLog,
            AdapterKind::FreeswitchEsl(_) => SourceKind::FreeswitchEsl,
        }
    }
}

/// `kind = "asterisk-ami"`.
#[derive(Clone, Debug)]
pub struct AmiSource {
    /// `host:port` of the manager interface (default port 5038).
    pub address: String,
    pub username: String,
    pub secret: Secret,
    pub settings: AmiSettings,
    /// Silence after which the client sends `Action: Ping`; a third of it without an
    /// answer drops the connection. [`AmiSource::KEEPALIVE`]; not a key of the file (tests
    /// shorten it).
    pub keepalive: std::time::Duration,
}

impl AmiSource {
    /// The keepalive of every AMI source read from a file.
    pub const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);
}

/// `kind = "asterisk-queue-log"`.
#[derive(Clone, Debug)]
pub struct QueueLogSource {
    pub path: PathBuf,
    /// How long events are held to be put back in time order (the longest ring expected).
    pub reorder_window: Millis,
    pub settings: AmiSettings,
}

/// `kind = "freeswitch-esl"`.
#[derive(Clone, Debug)]
pub struct EslSource {
    /// `host:port` of the event socket (default port 8021).
    pub address: String,
    pub password: Secret,
    pub settings: EslSettings,
}

/// Which member header names the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AmiAgentId {
    /// `MemberName` (`Name` in a `QueueStatus` answer): the name given at `AddQueueMember`.
    #[default]
    MemberName,
    /// `Interface` (`Location` in a `QueueStatus` answer), e.g. `PJSIP/801`.
    Interface,
}

/// The mapping choices of the Asterisk adapters (AMI and `queue_log`).
#[derive(Clone, Debug, PartialEq)]
pub struct AmiSettings {
    pub agent_id: AmiAgentId,
    /// Pause reasons that mean after-call work: mapped to `acw` (exact match).
    pub acw_reasons: Vec<String>,
    /// The reason given to app_queue's own `Auto-Pause` (after ring-no-answer with
    /// `autopause`).
    pub auto_pause_reason: String,
}

impl Default for AmiSettings {
    fn default() -> AmiSettings {
        AmiSettings {
            agent_id: AmiAgentId::MemberName,
            acw_reasons: vec!["ACW".to_string()],
            auto_pause_reason: "auto-pause".to_string(),
        }
    }
}

/// How an agent id is made from mod_callcenter's `CC-Agent` (agent names are often
/// `1000@default`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EslAgentId {
    /// `CC-Agent` as it is.
    #[default]
    Name,
    /// The part of `CC-Agent` before the first `@`.
    BeforeAt,
}

/// The mapping choices of a FreeSWITCH source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EslSettings {
    /// The pause reason given to `On Break` (mod_callcenter has no pause reasons).
    pub break_reason: String,
    pub agent_id: EslAgentId,
    /// Largest accepted frame body in bytes.
    pub max_frame: usize,
}

impl Default for EslSettings {
    fn default() -> EslSettings {
        EslSettings {
            break_reason: "break".to_string(),
            agent_id: EslAgentId::Name,
            max_frame: 1 << 20,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tokens: Tokens,
    /// `server.shutdown_grace` (default 10s): how long a graceful shutdown may take before
    /// the daemon gives up waiting and exits with [`crate::cli::EXIT_GRACE`].
    pub shutdown_grace: Millis,
    /// `[server.tls]`: serve HTTPS and WSS with this certificate chain and key.
    pub tls: Option<TlsFiles>,
}

/// `[server.tls]`: PEM files, read when the daemon starts (relative to its working directory).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl ServerConfig {
    /// Why this server must not start: a listen address other hosts can reach while a role
    /// has no tokens (its surface would be open to loopback only, and the site would find
    /// out from 403s on the floor). `None` when loopback, or when every role has tokens.
    pub fn exposure(&self) -> Option<String> {
        if self.listen.ip().is_loopback() {
            return None;
        }
        let t = &self.tokens;
        let open: Vec<&str> = [
            ("ingest", &t.ingest),
            ("viewer", &t.viewer),
            ("lead", &t.lead),
        ]
        .into_iter()
        .filter(|(_, list)| list.is_empty())
        .map(|(role, _)| role)
        .collect();
        if open.is_empty() {
            return None;
        }
        Some(format!(
            "{} is not a loopback address, and server.tokens has no tokens for {}: \
             set tokens for every role, or listen on 127.0.0.1 behind a proxy",
            self.listen,
            open.join(", ")
        ))
    }
}

/// Bearer tokens by role; an empty list means that surface is open (on loopback only).
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    pub ingest: Vec<String>,
    pub viewer: Vec<String>,
    pub lead: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceMode {
    Listen,
    Connect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceClock {
    /// Judge by the event's own `ts`.
    Event,
    /// Stamp each event with the daemon's receive time.
    Receipt,
}

#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// `source.kind`; anything but `Floorwatch` puts this table in [`Config::adapters`].
    pub kind: SourceKind,
    pub mode: SourceMode,
    /// Connect mode: the `ws://` or `wss://` URL to dial.
    pub url: Option<String>,
    /// Connect mode: extra request headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Connect mode: the source name that scopes `seq` and the resume point.
    pub name: String,
    /// Largest accepted frame in bytes (larger: close code 1009).
    pub max_frame: usize,
    pub clock: SourceClock,
    pub delay: Millis,
    pub max_lag: Millis,
    pub idle: Millis,
    /// Connect mode: a WebSocket ping is sent after this long without a frame from the
    /// source (`source.ping_every`, default 10s).
    pub ping_every: Millis,
    /// Connect mode: with no frame at all (pong or other) from the source for this long, the
    /// connection is taken as dead (half-open) and redialed (`source.ping_timeout`, default
    /// 20s; more than `ping_every`).
    pub ping_timeout: Millis,
    /// Connect mode: a PEM file of CA certificates trusted for `wss://` besides the public
    /// web roots (`source.ca`, a private CA).
    pub ca: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// How often the engine's state is checkpointed (`store.checkpoint_every`, default 1m).
    pub checkpoint_every: Millis,
    /// How long journal segments and checkpoints are kept (`store.retention`, default 400d).
    pub retention: Millis,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RingAnswerRule {
    pub rings: u32,
    pub ring_cycle: Millis,
    pub points: u32,
}

impl RingAnswerRule {
    /// L = rings × ring_cycle.
    pub fn limit(&self) -> Millis {
        self.ring_cycle.saturating_mul(self.rings as i64)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BreakOverrunRule {
    pub points: u32,
    pub daily_allowance: Millis,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UnauthorizedPauseRule {
    pub points: u32,
    pub grace: Millis,
    pub acw_max: Millis,
    pub acw_link: Millis,
}

/// One row of the `reasons` table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReasonRule {
    /// Longest single pause with this reason; `None` = unlimited.
    pub max: Option<Millis>,
    /// Counts toward the daily break allowance.
    pub allowance: bool,
    /// Needs a team lead's approval.
    pub approval: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceLevelConfig {
    pub threshold: Millis,
    pub short_abandon: Millis,
}

/// The part of the config the engine reads.
#[derive(Clone, Debug)]
pub struct RulesConfig {
    pub ring_answer: RingAnswerRule,
    pub break_overrun: BreakOverrunRule,
    pub unauthorized_pause: UnauthorizedPauseRule,
    pub reasons: BTreeMap<String, ReasonRule>,
    pub service_level: ServiceLevelConfig,
    pub timezone: jiff::tz::TimeZone,
    pub timezone_name: String,
    pub money_per_point: f64,
    pub currency: String,
    /// agent id → team id, from `[[teams]]` members.
    pub team_of: HashMap<String, String>,
    /// How much floor state the engine tracks at most (`[limits]`).
    pub limits: EngineLimits,
}

/// `[limits]` the engine enforces: an event that would make it track more agents, open
/// calls or queues than this is refused (reasons `limit_agents`, `limit_calls`,
/// `limit_queues`) and changes nothing. Sized for a 50,000-agent floor with headroom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineLimits {
    /// Agents known to the engine (every agent ever named since the last restart).
    pub max_agents: usize,
    /// Calls tracked at once (queued, ringing, talking or dialing).
    pub max_calls: usize,
    /// Queues known to the engine.
    pub max_queues: usize,
}

impl Default for EngineLimits {
    fn default() -> EngineLimits {
        EngineLimits {
            max_agents: 100_000,
            max_calls: 200_000,
            max_queues: 10_000,
        }
    }
}

/// `[limits]` the I/O shell enforces (frames, connections, rates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShellLimits {
    /// Events in one batch frame; a longer batch is refused as a whole (`batch_too_large`).
    pub max_batch: usize,
    /// Concurrent `/ingest` connections (more: HTTP 503 before the upgrade).
    pub max_ingest_connections: usize,
    /// Concurrent `/ws/floor` connections (more: HTTP 503 before the upgrade).
    pub max_floor_connections: usize,
    /// Events per second per source name; faster sources are read more slowly
    /// (back-pressure: nothing is refused or lost).
    pub max_events_per_second: u32,
}

impl Default for ShellLimits {
    fn default() -> ShellLimits {
        ShellLimits {
            max_batch: 10_000,
            max_ingest_connections: 1_000,
            max_floor_connections: 5_000,
            max_events_per_second: 50_000,
        }
    }
}

impl Default for RulesConfig {
    fn default() -> RulesConfig {
        let mut reasons = BTreeMap::new();
        reasons.insert(
            "break".to_string(),
            ReasonRule {
                max: Some(15 * 60_000),
                allowance: true,
                approval: false,
            },
        );
        reasons.insert(
            "meal".to_string(),
            ReasonRule {
                max: Some(30 * 60_000),
                ..ReasonRule::default()
            },
        );
        reasons.insert("training".to_string(), ReasonRule::default());
        reasons.insert(
            "meeting".to_string(),
            ReasonRule {
                approval: true,
                ..ReasonRule::default()
            },
        );
        reasons.insert("technical".to_string(), ReasonRule::default());
        RulesConfig {
            ring_answer: RingAnswerRule {
                rings: 3,
                ring_cycle: 5_000,
                points: 1,
            },
            break_overrun: BreakOverrunRule {
                points: 2,
                daily_allowance: 60 * 60_000,
            },
            unauthorized_pause: UnauthorizedPauseRule {
                points: 5,
                grace: 5_000,
                acw_max: 60_000,
                acw_link: 10_000,
            },
            reasons,
            service_level: ServiceLevelConfig {
                threshold: 20_000,
                short_abandon: 5_000,
            },
            timezone: jiff::tz::TimeZone::get("Asia/Shanghai")
                .unwrap_or(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))),
            timezone_name: "Asia/Shanghai".to_string(),
            money_per_point: 10.0,
            currency: "CNY".to_string(),
            team_of: HashMap::new(),
            limits: EngineLimits::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TeamConfig {
    pub id: String,
    /// Who gets this team's alerts (组长).
    pub lead: Option<String>,
    /// Who gets escalations (主管).
    pub supervisor: Option<String>,
    pub members: Vec<String>,
}

/// `[alerts]`: where violation alerts go and when they escalate and resolve.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    /// Alertmanager base URLs (`alerts.alertmanager.url` and `.urls`); each one receives every
    /// alert, as Prometheus does with an HA pair. Empty = no Alertmanager.
    pub alertmanager: Vec<String>,
    /// `[alerts.webhook]`: a direct JSON POST target, signed when a secret is set.
    pub webhook: Option<WebhookConfig>,
    /// A violation still open this long after its `at` is re-sent as `severity="critical"`
    /// to the team's supervisor (`alerts.escalate_after`, default 5m).
    pub escalate_after: Millis,
    /// How long the alert of a one-shot kind (raised as its condition ends, e.g. `missed`)
    /// stays firing before it is resolved (`alerts.resolve_hold`, default 1m).
    pub resolve_hold: Millis,
    /// How often open alerts are re-sent to Alertmanager (`alerts.resend_every`, default 1m);
    /// each send is valid for four of these.
    pub resend_every: Millis,
    /// Most alerts held in the outbox (`alerts.max_pending`, default 10000).
    pub max_pending: usize,
    /// Per-request timeout (`alerts.timeout`, default 5s).
    pub timeout: Millis,
    /// Cap of the retry back-off (`alerts.retry_max`, default 30s).
    pub retry_max: Millis,
    /// Base of `generatorURL` (`alerts.external_url`); default `http://` (`https://` with
    /// `[server.tls]`) + `server.listen`.
    pub external_url: Option<String>,
}

/// `[alerts.webhook]`.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    /// HMAC-SHA256 key for the `X-Floorwatch-Signature` header; `None` = unsigned.
    pub secret: Option<String>,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            alertmanager: Vec::new(),
            webhook: None,
            escalate_after: 300_000,
            resolve_hold: 60_000,
            resend_every: 60_000,
            max_pending: 10_000,
            timeout: 5_000,
            retry_max: 30_000,
            external_url: None,
        }
    }
}

impl AlertsConfig {
    /// Whether any alert target is configured.
    pub fn enabled(&self) -> bool {
        !self.alertmanager.is_empty() || self.webhook.is_some()
    }
}

#[derive(Clone, Debug)]
pub struct UiConfig {
    /// `zh-CN` or `en`.
    pub language: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            server: ServerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                tokens: Tokens::default(),
                shutdown_grace: 10_000,
                tls: None,
            },
            source: SourceConfig {
                kind: SourceKind::Floorwatch,
                mode: SourceMode::Listen,
                url: None,
                headers: Vec::new(),
                name: "default".to_string(),
                max_frame: 1 << 20,
                clock: SourceClock::Event,
                delay: 250,
                max_lag: 1_000,
                idle: 2_000,
                ping_every: 10_000,
                ping_timeout: 20_000,
                ca: None,
            },
            store: StoreConfig {
                dir: PathBuf::from("data"),
                checkpoint_every: 60_000,
                retention: 400 * 86_400_000,
            },
            rules: RulesConfig::default(),
            teams: Vec::new(),
            alerts: AlertsConfig::default(),
            ui: UiConfig {
                language: "zh-CN".to_string(),
            },
            metrics: MetricsConfig::default(),
            limits: ShellLimits::default(),
            adapters: Vec::new(),
        }
    }
}

/// A config that could not be parsed or validated. `Display` is one line: where (1-based line
/// and column, columns counted in characters), the dotted key, then what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.key, .line, .column, .message))]
pub struct ConfigError {
    pub message: String,
    pub key: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

fn render(
    key: &Option<String>,
    line: &Option<usize>,
    column: &Option<usize>,
    message: &str,
) -> String {
    let mut out = String::new();
    if let (Some(line), Some(column)) = (line, column) {
        out.push_str(&format!("line {line}, column {column}: "));
    }
    if let Some(key) = key {
        out.push_str(key);
        out.push_str(": ");
    }
    out.push_str(message);
    out
}

impl ConfigError {
    /// An error at byte offset `span.start` of `text`. Without an explicit `key`, the key is
    /// the innermost one whose name or value covers that offset.
    fn at(text: &str, span: Range<usize>, key: Option<String>, message: impl Into<String>) -> Self {
        let (line, column) = position(text, span.start);
        ConfigError {
            // toml's messages are one line today; keep the promise if that ever changes.
            message: message.into().replace('\n', "; "),
            key: key.or_else(|| key_at(text, span.start)),
            line: Some(line),
            column: Some(column),
        }
    }

    fn from_toml(text: &str, e: &toml::de::Error) -> Self {
        let message = plain_words(e.message());
        match e.span() {
            Some(span) => {
                // A duplicate key is left out of the recovered tree: name it from the text.
                let key = (message == "duplicate key")
                    .then(|| bare_key_at(text, span.start))
                    .flatten();
                ConfigError::at(text, span, key, message)
            }
            None => ConfigError {
                message: message.replace('\n', "; "),
                key: None,
                line: None,
                column: None,
            },
        }
    }
}

/// serde's wording in the words of a config file: keys, values, tables, arrays.
fn plain_words(message: &str) -> String {
    let mut m = message.to_string();
    if let Some(rest) = m.strip_prefix("unknown field") {
        m = format!("unknown key{rest}");
    }
    if let Some(rest) = m.strip_prefix("unknown variant") {
        m = format!("unknown value{rest}");
    }
    // Raw struct names mean nothing to the reader.
    if let Some(i) = m.find("expected struct Raw") {
        m.truncate(i);
        m.push_str("expected a table");
    }
    m.replace("expected u32", "expected a whole number ≥ 0")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected a table")
}

/// The bare key starting at byte `offset`, if there is one.
fn bare_key_at(text: &str, offset: usize) -> Option<String> {
    let rest = text.get(offset..)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_string())
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The dotted path of the innermost key whose name or value covers byte `offset`, e.g.
/// `rules.ring_answer.ring_cycle` or `teams[1].members`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    // Recoverable parsing also names the key of a syntax error where the document allows.
    let (root, _) = toml::de::DeTable::parse_recoverable(text);
    let mut best = None;
    walk_table(root.get_ref(), "", offset, &mut best);
    best.map(|(_, path)| path)
}

fn walk_table(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    offset: usize,
    best: &mut Option<(usize, String)>,
) {
    for (key, value) in table.iter() {
        let path = join_key(prefix, key.get_ref());
        consider(key.span(), &path, offset, best);
        consider(value.span(), &path, offset, best);
        match value.get_ref() {
            toml::de::DeValue::Table(t) => walk_table(t, &path, offset, best),
            toml::de::DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::de::DeValue::Table(t) = item.get_ref() {
                        let path = format!("{path}[{i}]");
                        consider(item.span(), &path, offset, best);
                        walk_table(t, &path, offset, best);
                    }
                }
            }
            _ => {}
        }
    }
}

fn consider(span: Range<usize>, path: &str, offset: usize, best: &mut Option<(usize, String)>) {
    let covers = span.start <= offset && offset < span.end.max(span.start + 1);
    // `<=`: on a tie the deeper key (visited later) is the more specific one.
    if covers && best.as_ref().is_none_or(|(len, _)| span.len() <= *len) {
        *best = Some((span.len(), path.to_string()));
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// Longest team id, agent id, lead or source name, in bytes.
const MAX_ID_BYTES: usize = 128;
/// Largest accepted `source.max_frame`.
const MAX_FRAME_LIMIT: usize = 1 << 30;

impl Config {
    /// Parses and validates a config from TOML text. Every key is optional; a missing key
    /// keeps its value from [`Config::default`], except that a `reasons` table replaces the
    /// default reasons as a whole.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::from_toml(text, &e))?;
        Check { text }.config(raw)
    }
}

// ---------------------------------------------------------------------------------------
// Raw serde structs: the file as written. Leaves that need checking after parsing keep
// their span so that the error can point at them.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<RawServer>,
    source: Option<RawSource>,
    store: Option<RawStore>,
    rules: Option<RawRules>,
    reasons: Option<BTreeMap<Spanned<String>, RawReason>>,
    service_level: Option<RawServiceLevel>,
    appraisal: Option<RawAppraisal>,
    teams: Option<Vec<Spanned<RawTeam>>>,
    alerts: Option<RawAlerts>,
    ui: Option<RawUi>,
    metrics: Option<RawMetrics>,
    sources: Option<Vec<Spanned<RawSource>>>,
    limits: Option<RawLimits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_batch: Option<Spanned<i64>>,
    max_agents: Option<Spanned<i64>>,
    max_calls: Option<Spanned<i64>>,
    max_queues: Option<Spanned<i64>>,
    max_ingest_connections: Option<Spanned<i64>>,
    max_floor_connections: Option<Spanned<i64>>,
    max_events_per_second: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    tokens: Option<RawTokens>,
    shutdown_grace: Option<Spanned<Duration>>,
    tls: Option<Spanned<RawTls>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    ingest: Option<Vec<Spanned<String>>>,
    viewer: Option<Vec<Spanned<String>>>,
    lead: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: Option<Spanned<SourceKind>>,
    mode: Option<Spanned<SourceMode>>,
    url: Option<Spanned<String>>,
    headers: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    name: Option<Spanned<String>>,
    max_frame: Option<Spanned<ByteSize>>,
    clock: Option<SourceClock>,
    delay: Option<Duration>,
    max_lag: Option<Duration>,
    idle: Option<Duration>,
    ping_every: Option<Spanned<Duration>>,
    ping_timeout: Option<Spanned<Duration>>,
    ca: Option<Spanned<String>>,
    // Adapter keys (kinds other than "floorwatch").
    address: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    agent_id: Option<Spanned<String>>,
    acw_reasons: Option<Vec<Spanned<String>>>,
    auto_pause_reason: Option<Spanned<String>>,
    break_reason: Option<Spanned<String>>,
    reorder_window: Option<Spanned<Duration>>,
}

/// The adapter keys of a `[source]` or `[[sources]]` table, taken out of [`RawSource`].
struct RawAdapter {
    kind: Spanned<SourceKind>,
    name: Option<Spanned<String>>,
    max_frame: Option<Spanned<ByteSize>>,
    address: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    agent_id: Option<Spanned<String>>,
    acw_reasons: Option<Vec<Spanned<String>>>,
    auto_pause_reason: Option<Spanned<String>>,
    break_reason: Option<Spanned<String>>,
    reorder_window: Option<Spanned<Duration>>,
}

impl RawSource {
    /// Splits off the adapter keys; `None` for the floorwatch protocol (the default kind).
    fn take_adapter(&mut self) -> Option<RawAdapter> {
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
            acw_reasons: self.acw_reasons.take(),
            auto_pause_reason: self.auto_pause_reason.take(),
            break_reason: self.break_reason.take(),
            reorder_window: self.reorder_window.take(),
        })
    }

    /// The first adapter key present, with its span (for "not for this kind" errors).
    fn first_adapter_key(&self) -> Option<(&'static str, Range<usize>)> {
        let s = |name: &'static str, span: Option<Range<usize>>| span.map(|sp| (name, sp));
        s("address", self.address.as_ref().map(|v| v.span()))
            .or_else(|| s("username", self.username.as_ref().map(|v| v.span())))
            .or_else(|| s("secret", self.secret.as_ref().map(|v| v.span())))
            .or_else(|| s("password", self.password.as_ref().map(|v| v.span())))
            .or_else(|| s("path", self.path.as_ref().map(|v| v.span())))
            .or_else(|| s("agent_id", self.agent_id.as_ref().map(|v| v.span())))
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

    /// The first floorwatch-protocol key present (not allowed in `[[sources]]`).
    fn first_protocol_key(&self) -> Option<(&'static str, Range<usize>)> {
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
struct RawStore {
    dir: Option<Spanned<String>>,
    checkpoint_every: Option<Spanned<Duration>>,
    /// A duration, or whole days as `"400d"`.
    retention: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    ring_answer: Option<RawRingAnswer>,
    break_overrun: Option<RawBreakOverrun>,
    unauthorized_pause: Option<RawUnauthorizedPause>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRingAnswer {
    rings: Option<Spanned<u32>>,
    ring_cycle: Option<Spanned<Duration>>,
    points: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreakOverrun {
    points: Option<u32>,
    daily_allowance: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnauthorizedPause {
    points: Option<u32>,
    grace: Option<Duration>,
    acw_max: Option<Spanned<Duration>>,
    acw_link: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReason {
    max: Option<Spanned<Duration>>,
    allowance: Option<bool>,
    approval: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceLevel {
    threshold: Option<Spanned<Duration>>,
    short_abandon: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppraisal {
    timezone: Option<Spanned<String>>,
    money_per_point: Option<Spanned<f64>>,
    currency: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeam {
    id: Option<Spanned<String>>,
    lead: Option<Spanned<String>>,
    supervisor: Option<Spanned<String>>,
    members: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    alertmanager: Option<RawAlertmanager>,
    webhook: Option<RawWebhook>,
    escalate_after: Option<Spanned<Duration>>,
    resolve_hold: Option<Spanned<Duration>>,
    resend_every: Option<Spanned<Duration>>,
    max_pending: Option<Spanned<i64>>,
    timeout: Option<Spanned<Duration>>,
    retry_max: Option<Spanned<Duration>>,
    external_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertmanager {
    url: Option<Spanned<String>>,
    urls: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Spanned<String>,
    secret: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    pseudonymize_agents: Option<Spanned<bool>>,
    pseudonym_key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    language: Option<Spanned<String>>,
}

/// A config duration string, parsed while deserializing so that toml attaches the span.
struct Duration(Millis);

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
struct ByteSize(usize);

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

// ---------------------------------------------------------------------------------------
// Validation: raw structs into `Config`.

struct Check<'a> {
    text: &'a str,
}

impl Check<'_> {
    fn err<T>(&self, span: Range<usize>, message: impl Into<String>) -> Result<T, ConfigError> {
        Err(ConfigError::at(self.text, span, None, message))
    }

    fn err_key<T>(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::at(self.text, span, Some(key.into()), message))
    }

    fn positive(&self, d: Spanned<Duration>) -> Result<Millis, ConfigError> {
        let span = d.span();
        match d.into_inner().0 {
            0 => self.err(span, "must be longer than zero"),
            ms => Ok(ms),
        }
    }

    /// An `http://` or `https://` URL with a host.
    fn http_url(&self, url: Spanned<String>, example: &str) -> Result<String, ConfigError> {
        let u = url.get_ref();
        let ok = u.parse::<axum::http::Uri>().is_ok_and(|p| {
            matches!(p.scheme_str(), Some("http" | "https"))
                && p.host().is_some_and(|h| !h.is_empty())
        });
        if ok
            && u.parse::<axum::http::Uri>()
                .is_ok_and(|p| p.authority().is_some_and(|a| a.as_str().contains('@')))
        {
            return self.err(
                url.span(),
                "credentials in the URL are not supported (put an authenticating proxy in front)",
            );
        }
        if !ok {
            return self.err(
                url.span(),
                format!("not an http:// or https:// url: {u:?} (want e.g. {example:?})"),
            );
        }
        Ok(url.into_inner())
    }

    fn alerts(&self, raw: RawAlerts, target: &mut AlertsConfig) -> Result<(), ConfigError> {
        if let Some(am) = raw.alertmanager {
            for url in am.url.into_iter().chain(am.urls.into_iter().flatten()) {
                let url = self.http_url(url, "http://127.0.0.1:9093")?;
                if !target.alertmanager.contains(&url) {
                    target.alertmanager.push(url);
                }
            }
        }
        if let Some(w) = raw.webhook {
            let url = self.http_url(w.url, "https://hooks.example.com/floorwatch")?;
            let secret = match w.secret {
                Some(s) if s.get_ref().is_empty() => {
                    return self.err(
                        s.span(),
                        "must not be empty (leave it out for no signature)",
                    )
                }
                s => s.map(Spanned::into_inner),
            };
            target.webhook = Some(WebhookConfig { url, secret });
        }
        if let Some(d) = raw.escalate_after {
            target.escalate_after = self.positive(d)?;
        }
        if let Some(d) = raw.resolve_hold {
            target.resolve_hold = self.positive(d)?;
        }
        if let Some(d) = raw.resend_every {
            target.resend_every = self.positive(d)?;
        }
        if let Some(d) = raw.timeout {
            target.timeout = self.positive(d)?;
        }
        if let Some(d) = raw.retry_max {
            target.retry_max = self.positive(d)?;
        }
        if let Some(n) = raw.max_pending {
            match usize::try_from(*n.get_ref()) {
                Ok(v) if (1..=1_000_000).contains(&v) => target.max_pending = v,
                _ => return self.err(n.span(), "must be between 1 and 1000000"),
            }
        }
        if let Some(u) = raw.external_url {
            let u = self.http_url(u, "http://floor.example.com:8080")?;
            target.external_url = Some(u.trim_end_matches('/').to_string());
        }
        Ok(())
    }

    /// A non-empty id of at most [`MAX_ID_BYTES`] bytes.
    fn id(&self, s: Spanned<String>, what: &str) -> Result<Spanned<String>, ConfigError> {
        let v = s.get_ref();
        if v.trim().is_empty() {
            return self.err(s.span(), format!("{what} must not be empty"));
        }
        if v.len() > MAX_ID_BYTES {
            return self.err(
                s.span(),
                format!("{what} is {} bytes long (at most {MAX_ID_BYTES})", v.len()),
            );
        }
        Ok(s)
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(server) = raw.server {
            self.server(server, &mut config.server)?;
        }
        if let Some(mut source) = raw.source {
            if let Some(adapter) = source.take_adapter() {
                if let Some(mode) = &source.mode {
                    if *mode.get_ref() == SourceMode::Connect {
                        return self.err_key(
                            mode.span(),
                            "source.mode",
                            format!(
                                "connect mode is for the floorwatch protocol; kind = {:?} dials its own platform",
                                adapter.kind.get_ref().as_str()
                            ),
                        );
                    }
                }
                if let Some((key, span)) = source.first_protocol_key() {
                    return self.err_key(
                        span,
                        format!("source.{key}"),
                        "only for kind = \"floorwatch\"",
                    );
                }
                config.source.kind = *adapter.kind.get_ref();
                config.adapters.push(self.adapter(adapter, "source")?);
            } else if let Some((key, span)) = source.first_adapter_key() {
                return self.err_key(
                    span,
                    format!("source.{key}"),
                    "only for a phone-system adapter (set source.kind, e.g. \"asterisk-ami\")",
                );
            }
            self.source(source, &mut config.source)?;
        }
        if let Some(sources) = raw.sources {
            for (i, table) in sources.into_iter().enumerate() {
                let key = format!("sources[{i}]");
                let span = table.span();
                let mut table = table.into_inner();
                if let Some((k, span)) = table.first_protocol_key() {
                    return self.err_key(
                        span,
                        format!("{key}.{k}"),
                        "the floorwatch protocol is configured in [source] only",
                    );
                }
                let protocol_only = [
                    ("clock", table.clock.is_some()),
                    ("delay", table.delay.is_some()),
                    ("max_lag", table.max_lag.is_some()),
                    ("idle", table.idle.is_some()),
                    ("ping_every", table.ping_every.is_some()),
                    ("ping_timeout", table.ping_timeout.is_some()),
                    ("ca", table.ca.is_some()),
                ];
                if let Some((k, _)) = protocol_only.iter().find(|(_, set)| *set) {
                    return self.err_key(
                        span,
                        format!("{key}.{k}"),
                        "applies to every source: set it in [source]",
                    );
                }
                match table.take_adapter() {
                    Some(adapter) => config.adapters.push(self.adapter(adapter, &key)?),
                    None => {
                        return self.err_key(
                            table.kind.as_ref().map(|k| k.span()).unwrap_or(span),
                            format!("{key}.kind"),
                            "want \"asterisk-ami\", \"asterisk-queue-log\" or \"freeswitch-esl\" (the floorwatch protocol is configured in [source])",
                        )
                    }
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for a in &config.adapters {
            if a.name == API_SOURCE
                || (config.source.kind == SourceKind::Floorwatch
                    && config.source.mode == SourceMode::Connect
                    && a.name == config.source.name)
                || !names.insert(a.name.as_str())
            {
                return Err(ConfigError {
                    message: format!(
                        "source name {:?} is used twice (or is reserved): give each source its own `name`",
                        a.name
                    ),
                    key: Some("sources".into()),
                    line: None,
                    column: None,
                });
            }
        }
        if let Some(store) = raw.store {
            if let Some(dir) = store.dir {
                if dir.get_ref().trim().is_empty() {
                    return self.err(dir.span(), "must not be empty");
                }
                config.store.dir = PathBuf::from(dir.into_inner());
            }
            if let Some(d) = store.checkpoint_every {
                config.store.checkpoint_every = self.positive(d)?;
            }
            if let Some(d) = store.retention {
                let text = d.get_ref().trim();
                let ms = match text.strip_suffix('d').map(str::parse::<u32>) {
                    Some(Ok(days)) => Some(i64::from(days) * 86_400_000),
                    _ => parse_duration(text).ok(),
                };
                match ms {
                    Some(ms) if ms > 0 => config.store.retention = ms,
                    _ => {
                        return self.err_key(
                            d.span(),
                            "store.retention",
                            format!("not a retention: {text:?} (want e.g. \"400d\" or \"720h\")"),
                        )
                    }
                }
            }
        }
        if let Some(rules) = raw.rules {
            self.rules(rules, &mut config.rules)?;
        }
        if let Some(reasons) = raw.reasons {
            config.rules.reasons = self.reasons(reasons)?;
        }
        if let Some(sl) = raw.service_level {
            let target = &mut config.rules.service_level;
            if let Some(t) = sl.threshold {
                target.threshold = self.positive(t)?;
            }
            if let Some(d) = sl.short_abandon {
                target.short_abandon = d.0;
            }
        }
        if let Some(appraisal) = raw.appraisal {
            self.appraisal(appraisal, &mut config.rules)?;
        }
        if let Some(teams) = raw.teams {
            config.teams = self.teams(teams, &mut config.rules.team_of)?;
        }
        if let Some(alerts) = raw.alerts {
            self.alerts(alerts, &mut config.alerts)?;
        }
        if let Some(m) = raw.metrics {
            self.metrics(m, &mut config.metrics)?;
        }
        if let Some(limits) = raw.limits {
            self.limits(limits, &mut config)?;
        }
        if let Some(language) = raw.ui.and_then(|u| u.language) {
            match language.get_ref().as_str() {
                "zh-CN" | "en" => config.ui.language = language.into_inner(),
                other => {
                    return self.err(
                        language.span(),
                        format!("unknown language {other:?} (want \"zh-CN\" or \"en\")"),
                    )
                }
            }
        }
        Ok(config)
    }

    /// A count between 1 and `max`.
    fn count(&self, v: Spanned<i64>, max: i64) -> Result<usize, ConfigError> {
        let span = v.span();
        match v.into_inner() {
            n if n < 1 => self.err(span, "must be at least 1"),
            n if n > max => self.err(span, format!("must be at most {max}")),
            n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }

    fn limits(&self, raw: RawLimits, config: &mut Config) -> Result<(), ConfigError> {
        const BIG: i64 = 1 << 32;
        let engine = &mut config.rules.limits;
        let shell = &mut config.limits;
        if let Some(v) = raw.max_batch {
            shell.max_batch = self.count(v, BIG)?;
        }
        if let Some(v) = raw.max_agents {
            engine.max_agents = self.count(v, BIG)?;
        }
        if let Some(v) = raw.max_calls {
            engine.max_calls = self.count(v, BIG)?;
        }
        if let Some(v) = raw.max_queues {
            engine.max_queues = self.count(v, BIG)?;
        }
        if let Some(v) = raw.max_ingest_connections {
            shell.max_ingest_connections = self.count(v, 1 << 20)?;
        }
        if let Some(v) = raw.max_floor_connections {
            shell.max_floor_connections = self.count(v, 1 << 20)?;
        }
        if let Some(v) = raw.max_events_per_second {
            let n = self.count(v, i64::from(u32::MAX))?;
            shell.max_events_per_second = u32::try_from(n).unwrap_or(u32::MAX);
        }
        Ok(())
    }

    fn server(&self, raw: RawServer, server: &mut ServerConfig) -> Result<(), ConfigError> {
        let listen_span = raw.listen.as_ref().map(|l| l.span());
        if let Some(listen) = raw.listen {
            server.listen = match listen.get_ref().trim().parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => {
                    return self.err(
                        listen.span(),
                        format!(
                            "not a socket address: {:?} (want e.g. \"127.0.0.1:8080\" or \"[::]:8080\")",
                            listen.get_ref()
                        ),
                    )
                }
            };
        }
        if let Some(grace) = raw.shutdown_grace {
            let span = grace.span();
            match grace.into_inner().0 {
                g if g <= 0 => return self.err(span, "must be more than 0s"),
                g => server.shutdown_grace = g,
            }
        }
        if let Some(tokens) = raw.tokens {
            for (list, target) in [
                (tokens.ingest, &mut server.tokens.ingest),
                (tokens.viewer, &mut server.tokens.viewer),
                (tokens.lead, &mut server.tokens.lead),
            ] {
                for token in list.into_iter().flatten() {
                    let t = token.get_ref();
                    if t.is_empty() {
                        return self.err(token.span(), "a token must not be empty");
                    }
                    // It travels in an `Authorization: Bearer` header.
                    if !t.chars().all(|c| c.is_ascii_graphic()) {
                        return self.err(
                            token.span(),
                            "a token must be printable ascii without spaces",
                        );
                    }
                    target.push(token.into_inner());
                }
            }
        }
        if let Some(tls) = raw.tls {
            let span = tls.span();
            let tls = tls.into_inner();
            let path = |v: Option<Spanned<String>>, key: &str| match v {
                Some(p) if !p.get_ref().trim().is_empty() => Ok(PathBuf::from(p.into_inner())),
                Some(p) => self.err(p.span(), "must not be empty"),
                None => self.err_key(
                    span.clone(),
                    format!("server.tls.{key}"),
                    "required in [server.tls] (a PEM file)",
                ),
            };
            server.tls = Some(TlsFiles {
                cert: path(tls.cert, "cert")?,
                key: path(tls.key, "key")?,
            });
        }
        if let (Some(span), Some(message)) = (listen_span, server.exposure()) {
            return self.err_key(span, "server.listen", message);
        }
        Ok(())
    }

    fn metrics(&self, raw: RawMetrics, metrics: &mut MetricsConfig) -> Result<(), ConfigError> {
        let Some(on) = raw.pseudonymize_agents else {
            return Ok(());
        };
        if !*on.get_ref() {
            return Ok(());
        }
        let Some(key) = raw.pseudonym_key else {
            return self.err(
                on.span(),
                "needs metrics.pseudonym_key (a secret of at least 16 characters)",
            );
        };
        // A short key can be found by trying every agent id against the published hashes.
        if key.get_ref().chars().count() < 16 {
            return self.err(key.span(), "want a secret of at least 16 characters");
        }
        metrics.pseudonym_key = Some(Secret(key.into_inner()));
        Ok(())
    }

    fn source(&self, raw: RawSource, source: &mut SourceConfig) -> Result<(), ConfigError> {
        let mode_span = raw.mode.as_ref().map(|m| m.span());
        if let Some(mode) = raw.mode {
            source.mode = mode.into_inner();
        }
        if let Some(url) = raw.url {
            let u = url.get_ref();
            let rest = u.strip_prefix("ws://").or_else(|| u.strip_prefix("wss://"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                return self.err(
                    url.span(),
                    format!("not a ws:// or wss:// url: {u:?} (want e.g. \"wss://pbx.example.net/events\")"),
                );
            }
            source.url = Some(url.into_inner());
        }
        if source.mode == SourceMode::Connect && source.url.is_none() {
            return self.err_key(
                mode_span.unwrap_or(0..0),
                "source.url",
                "connect mode needs a ws:// or wss:// url to dial",
            );
        }
        if let Some(headers) = raw.headers {
            for (name, value) in headers {
                let token_char =
                    |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                if name.get_ref().is_empty() || !name.get_ref().chars().all(token_char) {
                    return self.err(
                        name.span(),
                        format!("not a valid http header name: {:?}", name.get_ref()),
                    );
                }
                if value.get_ref().chars().any(|c| c.is_control() && c != '\t') {
                    return self.err(
                        value.span(),
                        "a header value must not contain line breaks or control characters",
                    );
                }
                source.headers.push((name.into_inner(), value.into_inner()));
            }
        }
        if let Some(name) = raw.name {
            source.name = self.id(name, "the source name")?.into_inner();
        }
        if let Some(max_frame) = raw.max_frame {
            let span = max_frame.span();
            match max_frame.into_inner().0 {
                0 => return self.err(span, "must be at least 1 byte"),
                n if n > MAX_FRAME_LIMIT => return self.err(span, "must be at most 1GiB"),
                n => source.max_frame = n,
            }
        }
        if let Some(clock) = raw.clock {
            source.clock = clock;
        }
        if let Some(d) = raw.delay {
            source.delay = d.0;
        }
        if let Some(d) = raw.max_lag {
            source.max_lag = d.0;
        }
        if let Some(d) = raw.idle {
            source.idle = d.0;
        }
        let every_span = raw.ping_every.as_ref().map(|d| d.span());
        if let Some(d) = raw.ping_every {
            let span = d.span();
            match d.into_inner().0 {
                ms if ms <= 0 => return self.err(span, "must be more than 0s"),
                ms => source.ping_every = ms,
            }
        }
        let timeout_span = raw.ping_timeout.as_ref().map(|d| d.span());
        if let Some(d) = raw.ping_timeout {
            source.ping_timeout = d.into_inner().0;
        }
        if source.ping_timeout <= source.ping_every {
            let (span, key) = match (timeout_span, every_span) {
                (Some(s), _) => (s, "source.ping_timeout"),
                (None, Some(s)) => (s, "source.ping_every"),
                (None, None) => (0..0, "source.ping_timeout"),
            };
            return self.err_key(
                span,
                key,
                format!(
                    "ping_timeout ({}ms) must be longer than ping_every ({}ms), or a live source would be dropped",
                    source.ping_timeout, source.ping_every
                ),
            );
        }
        if let Some(ca) = raw.ca {
            if ca.get_ref().trim().is_empty() {
                return self.err(
                    ca.span(),
                    "must be the path of a PEM file of CA certificates",
                );
            }
            source.ca = Some(PathBuf::from(ca.into_inner()));
        }
        Ok(())
    }

    /// A required, non-empty string key of an adapter table.
    fn required(
        &self,
        value: Option<Spanned<String>>,
        kind_span: Range<usize>,
        key: &str,
        what: &str,
    ) -> Result<String, ConfigError> {
        match value {
            Some(v) if !v.get_ref().trim().is_empty() => Ok(v.into_inner()),
            Some(v) => self.err(v.span(), format!("{what} must not be empty")),
            None => self.err_key(kind_span, key, format!("required: {what}")),
        }
    }

    /// `host:port`, with `default_port` added when the port is left out.
    fn address(
        &self,
        value: Option<Spanned<String>>,
        kind_span: Range<usize>,
        key: &str,
        default_port: u16,
    ) -> Result<String, ConfigError> {
        let example = format!("e.g. \"pbx.example.net:{default_port}\"");
        let Some(v) = value else {
            return self.err_key(
                kind_span,
                key,
                format!("required: the address to dial ({example})"),
            );
        };
        let text = v.get_ref().trim();
        let (host, port) = match text.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => (h, Some(p)),
            _ => (text, None),
        };
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return self.err(v.span(), format!("not a host:port: {text:?} ({example})")),
            },
        };
        if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
            return self.err(v.span(), format!("not a host:port: {text:?} ({example})"));
        }
        Ok(format!("{host}:{port}"))
    }

    fn reason(&self, v: Spanned<String>) -> Result<String, ConfigError> {
        Ok(self.id(v, "a reason")?.into_inner())
    }

    fn adapter(&self, mut raw: RawAdapter, table: &str) -> Result<AdapterConfig, ConfigError> {
        let kind = *raw.kind.get_ref();
        let kind_span = raw.kind.span();
        let name = match raw.name.take() {
            Some(n) => self.id(n, "the source name")?.into_inner(),
            None => kind.as_str().to_string(),
        };
        let key = |k: &str| format!("{table}.{k}");
        let not_for = |k: &str, span: Option<Range<usize>>| -> Result<(), ConfigError> {
            match span {
                Some(span) => self.err_key(
                    span,
                    key(k),
                    format!("not a key of kind = {:?}", kind.as_str()),
                ),
                None => Ok(()),
            }
        };
        let ami_settings = |raw: &mut RawAdapter| -> Result<AmiSettings, ConfigError> {
            let mut s = AmiSettings::default();
            if let Some(a) = raw.agent_id.take() {
                s.agent_id = match a.get_ref().as_str() {
                    "membername" => AmiAgentId::MemberName,
                    "interface" => AmiAgentId::Interface,
                    other => {
                        return self.err(
                            a.span(),
                            format!("want \"membername\" or \"interface\", not {other:?}"),
                        )
                    }
                };
            }
            if let Some(list) = raw.acw_reasons.take() {
                s.acw_reasons = list
                    .into_iter()
                    .map(|r| self.reason(r))
                    .collect::<Result<_, _>>()?;
            }
            if let Some(r) = raw.auto_pause_reason.take() {
                s.auto_pause_reason = self.reason(r)?;
            }
            Ok(s)
        };
        let adapter = match kind {
            SourceKind::Floorwatch => {
                return self.err_key(kind_span, key("kind"), "not an adapter kind")
            }
            SourceKind::AsteriskAmi => {
                not_for("password", raw.password.as_ref().map(|v| v.span()))?;
                not_for("path", raw.path.as_ref().map(|v| v.span()))?;
                not_for("break_reason", raw.break_reason.as_ref().map(|v| v.span()))?;
                not_for(
                    "reorder_window",
                    raw.reorder_window.as_ref().map(|v| v.span()),
                )?;
                not_for("max_frame", raw.max_frame.as_ref().map(|v| v.span()))?;
                let settings = ami_settings(&mut raw)?;
                AdapterKind::AsteriskAmi(AmiSource {
                    address: self.address(raw.address, kind_span.clone(), &key("address"), 5038)?,
                    username: self.required(
                        raw.username,
                        kind_span.clone(),
                        &key("username"),
                        "the manager.conf user",
                    )?,
                    secret: Secret(self.required(
                        raw.secret,
                        kind_span,
                        &key("secret"),
                        "the manager.conf secret",
                    )?),
                    settings,
                    keepalive: AmiSource::KEEPALIVE,
                })
            }
            SourceKind::AsteriskQueueLog => {
                not_for("address", raw.address.as_ref().map(|v| v.span()))?;
                not_for("username", raw.username.as_ref().map(|v| v.span()))?;
                not_for("secret", raw.secret.as_ref().map(|v| v.span()))?;
                not_for("password", raw.password.as_ref().map(|v| v.span()))?;
                not_for("break_reason", raw.break_reason.as_ref().map(|v| v.span()))?;
                not_for("max_frame", raw.max_frame.as_ref().map(|v| v.span()))?;
                let settings = ami_settings(&mut raw)?;
                let reorder_window = match raw.reorder_window {
                    Some(d) => self.positive(d)?,
                    None => 60_000,
                };
                AdapterKind::AsteriskQueueLog(QueueLogSource {
                    path: PathBuf::from(self.required(
                        raw.path,
                        kind_span,
                        &key("path"),
                        "the queue_log file, e.g. \"/var/log/asterisk/queue_log\"",
                    )?),
                    reorder_window,
                    settings,
                })
            }
            SourceKind::FreeswitchEsl => {
                not_for("username", raw.username.as_ref().map(|v| v.span()))?;
                not_for("secret", raw.secret.as_ref().map(|v| v.span()))?;
                not_for("path", raw.path.as_ref().map(|v| v.span()))?;
                not_for(
                    "acw_reasons",
                    raw.acw_reasons
                        .as_ref()
                        .and_then(|v| v.first().map(|x| x.span())),
                )?;
                not_for(
                    "auto_pause_reason",
                    raw.auto_pause_reason.as_ref().map(|v| v.span()),
                )?;
                not_for(
                    "reorder_window",
                    raw.reorder_window.as_ref().map(|v| v.span()),
                )?;
                let mut settings = EslSettings::default();
                if let Some(a) = raw.agent_id {
                    settings.agent_id = match a.get_ref().as_str() {
                        "name" => EslAgentId::Name,
                        "before-at" => EslAgentId::BeforeAt,
                        other => {
                            return self.err(
                                a.span(),
                                format!("want \"name\" or \"before-at\", not {other:?}"),
                            )
                        }
                    };
                }
                if let Some(r) = raw.break_reason {
                    settings.break_reason = self.reason(r)?;
                }
                if let Some(m) = raw.max_frame {
                    let span = m.span();
                    settings.max_frame = match m.into_inner().0 {
                        0 => return self.err(span, "must be at least 1 byte"),
                        n if n > MAX_FRAME_LIMIT => return self.err(span, "must be at most 1GiB"),
                        n => n,
                    };
                }
                AdapterKind::FreeswitchEsl(EslSource {
                    address: self.address(raw.address, kind_span.clone(), &key("address"), 8021)?,
                    password: Secret(self.required(
                        raw.password,
                        kind_span,
                        &key("password"),
                        "the event socket password (event_socket.conf.xml)",
                    )?),
                    settings,
                })
            }
        };
        Ok(AdapterConfig {
            name,
            kind: adapter,
        })
    }

    fn rules(&self, raw: RawRules, rules: &mut RulesConfig) -> Result<(), ConfigError> {
        if let Some(r) = raw.ring_answer {
            let target = &mut rules.ring_answer;
            if let Some(rings) = r.rings {
                if *rings.get_ref() == 0 {
                    return self.err(rings.span(), "must be at least 1");
                }
                target.rings = rings.into_inner();
            }
            if let Some(cycle) = r.ring_cycle {
                target.ring_cycle = self.positive(cycle)?;
            }
            if let Some(p) = r.points {
                target.points = p;
            }
        }
        if let Some(r) = raw.break_overrun {
            let target = &mut rules.break_overrun;
            if let Some(p) = r.points {
                target.points = p;
            }
            if let Some(d) = r.daily_allowance {
                target.daily_allowance = d.0;
            }
        }
        if let Some(r) = raw.unauthorized_pause {
            let target = &mut rules.unauthorized_pause;
            if let Some(p) = r.points {
                target.points = p;
            }
            if let Some(d) = r.grace {
                target.grace = d.0;
            }
            if let Some(d) = r.acw_max {
                target.acw_max = self.positive(d)?;
            }
            if let Some(d) = r.acw_link {
                target.acw_link = d.0;
            }
        }
        Ok(())
    }

    fn reasons(
        &self,
        raw: BTreeMap<Spanned<String>, RawReason>,
    ) -> Result<BTreeMap<String, ReasonRule>, ConfigError> {
        let mut reasons = BTreeMap::new();
        for (name, r) in raw {
            if name.get_ref().is_empty() {
                return self.err(
                    name.span(),
                    "the empty reason cannot be configured (a pause without reason is always no_reason)",
                );
            }
            let max = match r.max {
                Some(d) => Some(self.positive(d)?),
                None => None,
            };
            reasons.insert(
                name.into_inner(),
                ReasonRule {
                    max,
                    allowance: r.allowance.unwrap_or(false),
                    approval: r.approval.unwrap_or(false),
                },
            );
        }
        Ok(reasons)
    }

    fn appraisal(&self, raw: RawAppraisal, rules: &mut RulesConfig) -> Result<(), ConfigError> {
        if let Some(tz) = raw.timezone {
            match jiff::tz::TimeZone::get(tz.get_ref()) {
                Ok(zone) => {
                    rules.timezone = zone;
                    rules.timezone_name = tz.into_inner();
                }
                Err(_) => {
                    return self.err(
                        tz.span(),
                        format!(
                            "unknown time zone {:?} (want an IANA name such as \"Asia/Shanghai\" or \"UTC\")",
                            tz.get_ref()
                        ),
                    )
                }
            }
        }
        if let Some(m) = raw.money_per_point {
            let v = *m.get_ref();
            if !v.is_finite() || v < 0.0 {
                return self.err(m.span(), format!("must be a number ≥ 0, not {v}"));
            }
            rules.money_per_point = v;
        }
        if let Some(c) = raw.currency {
            if c.get_ref().trim().is_empty() {
                return self.err(c.span(), "must not be empty");
            }
            rules.currency = c.into_inner();
        }
        Ok(())
    }

    fn teams(
        &self,
        raw: Vec<Spanned<RawTeam>>,
        team_of: &mut HashMap<String, String>,
    ) -> Result<Vec<TeamConfig>, ConfigError> {
        let mut teams: Vec<TeamConfig> = Vec::new();
        // id → line of its first mention, for "first at line N" hints.
        let mut team_line: HashMap<String, usize> = HashMap::new();
        let mut member_line: HashMap<String, usize> = HashMap::new();
        for (i, team) in raw.into_iter().enumerate() {
            let span = team.span();
            let team = team.into_inner();
            let Some(id) = team.id else {
                return self.err_key(span, format!("teams[{i}].id"), "a team needs an id");
            };
            let id = self.id(id, "a team id")?;
            if let Some(first) = team_line.get(id.get_ref()) {
                return self.err(
                    id.span(),
                    format!(
                        "duplicate team id {:?} (first at line {first})",
                        id.get_ref()
                    ),
                );
            }
            team_line.insert(id.get_ref().clone(), position(self.text, id.span().start).0);
            let lead = team.lead.map(|l| self.id(l, "a lead")).transpose()?;
            let supervisor = team
                .supervisor
                .map(|s| self.id(s, "a supervisor"))
                .transpose()?;
            let mut members = Vec::new();
            for agent in team.members.into_iter().flatten() {
                let agent = self.id(agent, "an agent id")?;
                if let Some(other) = team_of.get(agent.get_ref()) {
                    let first = member_line.get(agent.get_ref()).copied().unwrap_or(0);
                    let message = if other == id.get_ref() {
                        format!(
                            "agent {:?} is listed twice in team {other:?} (first at line {first})",
                            agent.get_ref()
                        )
                    } else {
                        format!(
                            "agent {:?} is already a member of team {other:?} (line {first}); an agent belongs to one team",
                            agent.get_ref()
                        )
                    };
                    return self.err(agent.span(), message);
                }
                member_line.insert(
                    agent.get_ref().clone(),
                    position(self.text, agent.span().start).0,
                );
                team_of.insert(agent.get_ref().clone(), id.get_ref().clone());
                members.push(agent.into_inner());
            }
            teams.push(TeamConfig {
                id: id.into_inner(),
                lead: lead.map(Spanned::into_inner),
                supervisor: supervisor.map(Spanned::into_inner),
                members,
            });
        }
        Ok(teams)
    }
}

/// Reads a config file (or the defaults when `path` is `None`).
pub fn load(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    match path {
        None => Ok(Config::default()),
        Some(p) => {
            // An unreadable config is a config error too (exit code 78), not a crash.
            let text = std::fs::read_to_string(p).map_err(|e| {
                anyhow::Error::new(ConfigError {
                    message: format!("cannot read config {}: {e}", p.display()),
                    key: None,
                    line: None,
                    column: None,
                })
            })?;
            Config::from_toml_str(&text)
                .map_err(|e| anyhow::Error::new(e).context(format!("config {}", p.display())))
        }
    }
}

/// `floorwatch check-config FILE`.
pub fn check_config_main(path: &std::path::Path) -> anyhow::Result<()> {
    load(Some(path))?;
    println!("{}: ok", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        match Config::from_toml_str(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e,
        }
    }

    /// Asserts key, line and column, and that `Display` is one line that names them.
    fn assert_at(e: &ConfigError, key: &str, line: usize, column: usize) {
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert_eq!((e.line, e.column), (Some(line), Some(column)), "{e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("line {line}, column {column}: {key}: ")),
            "{shown}"
        );
        assert!(!shown.contains('\n'), "{shown}");
    }

    fn assert_same_rules(a: &RulesConfig, b: &RulesConfig) {
        assert_eq!(a.ring_answer, b.ring_answer);
        assert_eq!(a.break_overrun, b.break_overrun);
        assert_eq!(a.unauthorized_pause, b.unauthorized_pause);
        assert_eq!(a.reasons, b.reasons);
        assert_eq!(a.service_level, b.service_level);
        assert_eq!(a.timezone, b.timezone);
        assert_eq!(a.timezone_name, b.timezone_name);
        assert_eq!(a.money_per_point, b.money_per_point);
        assert_eq!(a.currency, b.currency);
        assert_eq!(a.team_of, b.team_of);
        assert_eq!(a.limits, b.limits);
    }

    fn assert_same_source(a: &SourceConfig, b: &SourceConfig) {
        assert_eq!(a.mode, b.mode);
        assert_eq!(a.url, b.url);
        assert_eq!(a.headers, b.headers);
        assert_eq!(a.name, b.name);
        assert_eq!(a.max_frame, b.max_frame);
        assert_eq!(a.clock, b.clock);
        assert_eq!((a.delay, a.max_lag, a.idle), (b.delay, b.max_lag, b.idle));
        assert_eq!(
            (a.ping_every, a.ping_timeout, &a.ca),
            (b.ping_every, b.ping_timeout, &b.ca)
        );
    }

    fn assert_same_server(a: &ServerConfig, b: &ServerConfig) {
        assert_eq!(a.listen, b.listen);
        assert_eq!(a.tokens.ingest, b.tokens.ingest);
        assert_eq!(a.tokens.viewer, b.tokens.viewer);
        assert_eq!(a.tokens.lead, b.tokens.lead);
        assert_eq!(a.shutdown_grace, b.shutdown_grace);
    }

    #[test]
    fn keepalive_ca_and_shutdown_grace_keys() {
        let c = Config::from_toml_str(
            "[server]\nshutdown_grace = \"3s\"\n[source]\nping_every = \"5s\"\nping_timeout = \"12s\"\nca = \"/etc/floorwatch/pbx-ca.pem\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.server.shutdown_grace, 3_000);
        assert_eq!(
            (c.source.ping_every, c.source.ping_timeout),
            (5_000, 12_000)
        );
        assert_eq!(
            c.source.ca.as_deref(),
            Some(std::path::Path::new("/etc/floorwatch/pbx-ca.pem"))
        );
        let d = Config::default();
        assert_eq!(d.server.shutdown_grace, 10_000);
        assert_eq!(
            (d.source.ping_every, d.source.ping_timeout),
            (10_000, 20_000)
        );
    }

    #[test]
    fn a_ping_timeout_not_longer_than_ping_every_is_rejected() {
        let e = err("[source]\nping_every = \"10s\"\nping_timeout = \"10s\"\n");
        assert_at(&e, "source.ping_timeout", 3, 16);
        // Raising ping_every past the default timeout names ping_every.
        let e = err("[source]\nping_every = \"30s\"\n");
        assert_at(&e, "source.ping_every", 2, 14);
        let e = err("[source]\nping_every = \"0s\"\n");
        assert!(e.to_string().contains("source.ping_every"), "{e}");
        let e = err("[server]\nshutdown_grace = \"0s\"\n");
        assert!(e.to_string().contains("server.shutdown_grace"), "{e}");
        let e = err("[source]\nca = \"\"\n");
        assert!(e.to_string().contains("source.ca"), "{e}");
    }

    #[test]
    fn empty_text_gives_defaults() {
        let c = Config::from_toml_str("").expect("empty config");
        let d = Config::default();
        assert_same_rules(&c.rules, &d.rules);
        assert_same_source(&c.source, &d.source);
        assert_same_server(&c.server, &d.server);
        assert_eq!(c.store.dir, d.store.dir);
        assert_eq!(c.teams, d.teams);
        assert_eq!(c.alerts, d.alerts);
        assert_eq!(c.ui.language, "zh-CN");
    }

    #[test]
    fn shipped_config_file_gives_default_rules() {
        let text = include_str!("../config/floorwatch.toml");
        let c = Config::from_toml_str(text).unwrap_or_else(|e| panic!("{e}"));
        let d = Config::default();
        assert_same_rules(&c.rules, &d.rules);
        assert_same_source(&c.source, &d.source);
        assert_same_server(&c.server, &d.server);
        assert_eq!(c.store.dir, d.store.dir);
        assert_eq!(c.ui.language, d.ui.language);
        assert_eq!(c.limits, d.limits);
        // Every key of [limits] is written out, so the file documents them all.
        for key in [
            "max_batch",
            "max_agents",
            "max_calls",
            "max_queues",
            "max_ingest_connections",
            "max_floor_connections",
            "max_events_per_second",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{key} = "))),
                "{key} missing from config/floorwatch.toml"
            );
        }
    }

    #[test]
    fn limits_are_read_and_checked() {
        let c = Config::from_toml_str(
            "[limits]\nmax_batch = 5\nmax_agents = 6\nmax_calls = 7\nmax_queues = 8\nmax_ingest_connections = 9\nmax_floor_connections = 10\nmax_events_per_second = 11\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.rules.limits,
            EngineLimits {
                max_agents: 6,
                max_calls: 7,
                max_queues: 8
            }
        );
        assert_eq!(
            c.limits,
            ShellLimits {
                max_batch: 5,
                max_ingest_connections: 9,
                max_floor_connections: 10,
                max_events_per_second: 11
            }
        );
        let e = err("[limits]\nmax_agents = 0\n");
        assert_at(&e, "limits.max_agents", 2, 14);
        let e = err("[limits]\nmax_events_per_second = -3\n");
        assert_at(&e, "limits.max_events_per_second", 2, 25);
        let e = err("[limits]\nmax_ingest_connections = 99999999\n");
        assert_at(&e, "limits.max_ingest_connections", 2, 26);
        let e = err("[limits]\nmax_tracked = 1\n");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn bad_duration_names_key_line_column() {
        let e = err("[rules.ring_answer]\nrings = 3\nring_cycle = \"5 parsecs\"\n");
        assert_at(&e, "rules.ring_answer.ring_cycle", 3, 14);
        assert!(
            e.message.starts_with("not a valid duration: \"5 parsecs\""),
            "{e}"
        );
    }

    #[test]
    fn negative_and_zero_durations_are_rejected() {
        let e = err("[rules.unauthorized_pause]\ngrace = \"-5s\"\n");
        assert_at(&e, "rules.unauthorized_pause.grace", 2, 9);
        let e = err("[rules.ring_answer]\nring_cycle = \"0s\"\n");
        assert_at(&e, "rules.ring_answer.ring_cycle", 2, 14);
        let e = err("[rules.ring_answer]\nrings = 0\n");
        assert_at(&e, "rules.ring_answer.rings", 2, 9);
        let e = err("[rules.ring_answer]\nring_cycle = 5\n");
        assert_at(&e, "rules.ring_answer.ring_cycle", 2, 14);
    }

    #[test]
    fn durations_round_to_milliseconds() {
        let c = Config::from_toml_str(
            "[source]\ndelay = \"0.2s\"\n[rules.break_overrun]\ndaily_allowance = \"1h30m\"\n",
        )
        .expect("valid");
        assert_eq!(c.source.delay, 200);
        assert_eq!(c.rules.break_overrun.daily_allowance, 5_400_000);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = err("[rules.ring_answer]\nrings = 3\nringz = 4\n");
        assert_at(&e, "rules.ring_answer.ringz", 3, 1);
        assert!(e.message.contains("unknown key `ringz`"), "{e}");
        let e = err("[server]\nlisten = \"127.0.0.1:1\"\n\n[servre]\n");
        assert_at(&e, "servre", 4, 2);
    }

    #[test]
    fn bad_timezone_names_key() {
        let e = err("[appraisal]\ntimezone = \"Mars/Olympus_Mons\"\n");
        assert_at(&e, "appraisal.timezone", 2, 12);
    }

    #[test]
    fn agent_in_two_teams_is_an_error() {
        let text = "[[teams]]\nid = \"hotline-1\"\nmembers = [\"a-1\", \"a-2\"]\n\n\
                    [[teams]]\nid = \"hotline-2\"\nmembers = [\"a-3\", \"a-2\"]\n";
        let e = err(text);
        assert_at(&e, "teams[1].members", 7, 19);
        assert!(e.message.contains("\"hotline-1\""), "{e}");
    }

    #[test]
    fn duplicate_and_bad_team_ids_are_errors() {
        let e = err("[[teams]]\nid = \"t\"\n[[teams]]\nid = \"t\"\n");
        assert_at(&e, "teams[1].id", 4, 6);
        let e = err("[[teams]]\nid = \"\"\n");
        assert_at(&e, "teams[0].id", 2, 6);
        let long = "x".repeat(129);
        let e = err(&format!("[[teams]]\nid = \"t\"\nmembers = [\"{long}\"]\n"));
        assert_at(&e, "teams[0].members", 3, 12);
        let e = err("[[teams]]\nlead = \"zhang.wei\"\n");
        assert_eq!(e.key.as_deref(), Some("teams[0].id"), "{e}");
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn connect_mode_needs_a_url() {
        let e = err("[source]\nmode = \"connect\"\n");
        assert_at(&e, "source.url", 2, 8);
        let e = err("[source]\nmode = \"connect\"\nurl = \"http://pbx/events\"\n");
        assert_at(&e, "source.url", 3, 7);
        let c = Config::from_toml_str(
            "[source]\nmode = \"connect\"\nurl = \"wss://pbx.example.net/events\"\n\
             headers = { Authorization = \"Bearer x\" }\nname = \"pbx-1\"\n",
        )
        .expect("valid");
        assert_eq!(c.source.mode, SourceMode::Connect);
        assert_eq!(
            c.source.headers,
            vec![("Authorization".to_string(), "Bearer x".to_string())]
        );
        assert_eq!(c.source.name, "pbx-1");
    }

    #[test]
    fn open_roles_on_a_public_listen_address_are_refused() {
        let e = err("[server]\nlisten = \"0.0.0.0:8080\"\n[server.tokens]\ningest = [\"i\"]\n");
        assert_at(&e, "server.listen", 2, 10);
        assert!(e.message.contains("viewer, lead"), "{e}");
        assert!(!e.message.contains("ingest"), "{e}");
        let e = err("[server]\nlisten = \"[::]:8080\"\n");
        assert!(e.message.contains("ingest, viewer, lead"), "{e}");
        let all = "[server]\nlisten = \"0.0.0.0:8080\"\n[server.tokens]\n\
                   ingest = [\"i\"]\nviewer = [\"v\"]\nlead = [\"l\"]\n";
        assert!(Config::from_toml_str(all).is_ok());
        assert!(Config::from_toml_str("[server]\nlisten = \"[::1]:8080\"\n").is_ok());
    }

    #[test]
    fn pseudonymized_agents_need_a_long_enough_key() {
        let e = err("[metrics]\npseudonymize_agents = true\n");
        assert_at(&e, "metrics.pseudonymize_agents", 2, 23);
        let e = err("[metrics]\npseudonymize_agents = true\npseudonym_key = \"short\"\n");
        assert_at(&e, "metrics.pseudonym_key", 3, 17);
        let c = Config::from_toml_str(
            "[metrics]\npseudonymize_agents = true\npseudonym_key = \"0123456789abcdef\"\n",
        )
        .expect("valid");
        assert_eq!(
            c.metrics.pseudonym_key,
            Some(Secret("0123456789abcdef".into()))
        );
        let c = Config::from_toml_str("[metrics]\npseudonymize_agents = false\n").expect("valid");
        assert!(c.metrics.pseudonym_key.is_none());
    }

    #[test]
    fn tls_wants_both_files() {
        let c = Config::from_toml_str("[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n")
            .expect("valid");
        let tls = c.server.tls.expect("tls");
        assert_eq!(tls.cert, PathBuf::from("c.pem"));
        assert_eq!(tls.key, PathBuf::from("k.pem"));
        let e = err("[server.tls]\ncert = \"c.pem\"\n");
        assert_eq!(e.key.as_deref(), Some("server.tls.key"), "{e}");
        let e = err("[server.tls]\ncert = \"\"\nkey = \"k.pem\"\n");
        assert_at(&e, "server.tls.cert", 2, 8);
    }

    #[test]
    fn bad_listen_names_key() {
        let e = err("[server]\nlisten = \"localhost:http\"\n");
        assert_at(&e, "server.listen", 2, 10);
    }

    #[test]
    fn bad_enum_value_names_key() {
        let e = err("[source]\nclock = \"wall\"\n");
        assert_at(&e, "source.clock", 2, 9);
        assert!(e.message.contains("`event`"), "{e}");
        let e = err("[ui]\nlanguage = \"fr\"\n");
        assert_at(&e, "ui.language", 2, 12);
    }

    #[test]
    fn bad_alertmanager_url_names_key() {
        let e = err("[alerts.alertmanager]\nurl = \"127.0.0.1:9093\"\n");
        assert_at(&e, "alerts.alertmanager.url", 2, 7);
    }

    #[test]
    fn alerts_section_parses_every_key() {
        let c = Config::from_toml_str(
            "[alerts]\nescalate_after = \"2m\"\nresolve_hold = \"30s\"\nresend_every = \"20s\"\n\
             max_pending = 50\ntimeout = \"2s\"\nretry_max = \"10s\"\n\
             external_url = \"https://floor.example.com/\"\n\
             [alerts.alertmanager]\nurl = \"http://am1:9093\"\n\
             urls = [\"http://am2:9093\", \"http://am1:9093\"]\n\
             [alerts.webhook]\nurl = \"https://hooks.example.com/x\"\nsecret = \"s3cret\"\n",
        )
        .expect("valid");
        let a = &c.alerts;
        assert_eq!(a.alertmanager, ["http://am1:9093", "http://am2:9093"]);
        assert_eq!(
            a.webhook,
            Some(WebhookConfig {
                url: "https://hooks.example.com/x".into(),
                secret: Some("s3cret".into())
            })
        );
        assert_eq!(
            (a.escalate_after, a.resolve_hold, a.resend_every),
            (120_000, 30_000, 20_000)
        );
        assert_eq!((a.max_pending, a.timeout, a.retry_max), (50, 2_000, 10_000));
        assert_eq!(a.external_url.as_deref(), Some("https://floor.example.com"));
        assert!(a.enabled());
        assert!(!Config::default().alerts.enabled());
    }

    #[test]
    fn bad_alert_keys_name_key() {
        let e = err("[alerts.alertmanager]\nurls = [\"http://ok:9093\", \"ftp://x\"]\n");
        assert_at(&e, "alerts.alertmanager.urls", 2, 27);
        let e = err("[alerts]\nescalate_after = \"0s\"\n");
        assert_at(&e, "alerts.escalate_after", 2, 18);
        let e = err("[alerts]\nmax_pending = 0\n");
        assert_at(&e, "alerts.max_pending", 2, 15);
        let e = err("[alerts.webhook]\nsecret = \"x\"\n");
        assert!(e.to_string().contains("url"), "{e}");
    }

    #[test]
    fn token_with_space_names_key() {
        let e = err("[server.tokens]\nviewer = [\"ok\", \"has space\"]\n");
        assert_at(&e, "server.tokens.viewer", 2, 17);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = err("[store]\ndir = data\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.column.is_some(), "{e}");
    }

    #[test]
    fn max_frame_units() {
        for (text, want) in [
            ("\"1MiB\"", 1 << 20),
            ("\"512KiB\"", 512 << 10),
            ("\"65536\"", 65536),
            ("65536", 65536),
        ] {
            let c = Config::from_toml_str(&format!("[source]\nmax_frame = {text}\n"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.source.max_frame, want, "{text}");
        }
        let e = err("[source]\nmax_frame = \"1MB\"\n");
        assert_at(&e, "source.max_frame", 2, 13);
        let e = err("[source]\nmax_frame = 0\n");
        assert_at(&e, "source.max_frame", 2, 13);
    }

    #[test]
    fn reasons_table_replaces_defaults() {
        let c = Config::from_toml_str(
            "[reasons.lunch]\nmax = \"45m\"\nallowance = true\n[reasons.coaching]\napproval = true\n",
        )
        .expect("valid");
        let names: Vec<&str> = c.rules.reasons.keys().map(String::as_str).collect();
        assert_eq!(names, ["coaching", "lunch"]);
        assert_eq!(
            c.rules.reasons["lunch"],
            ReasonRule {
                max: Some(45 * 60_000),
                allowance: true,
                approval: false
            }
        );
        assert!(c.rules.reasons["coaching"].approval);
        let e = err("[reasons.break]\nmax = \"0s\"\n");
        assert_at(&e, "reasons.break.max", 2, 7);
    }

    #[test]
    fn teams_fill_team_of() {
        let c = Config::from_toml_str(
            "[[teams]]\nid = \"hotline-1\"\nlead = \"zhang.wei\"\nmembers = [\"a-1\", \"a-2\"]\n\
             [[teams]]\nid = \"hotline-2\"\nsupervisor = \"li.na\"\nmembers = [\"a-3\"]\n",
        )
        .expect("valid");
        assert_eq!(c.teams.len(), 2);
        assert_eq!(c.teams[0].lead.as_deref(), Some("zhang.wei"));
        assert_eq!(c.teams[1].supervisor.as_deref(), Some("li.na"));
        assert_eq!(c.rules.team_of.len(), 3);
        assert_eq!(c.rules.team_of["a-1"], "hotline-1");
        assert_eq!(c.rules.team_of["a-2"], "hotline-1");
        assert_eq!(c.rules.team_of["a-3"], "hotline-2");
    }

    #[test]
    fn money_per_point_must_not_be_negative() {
        let e = err("[appraisal]\nmoney_per_point = -1\n");
        assert_at(&e, "appraisal.money_per_point", 2, 19);
        let c = Config::from_toml_str("[appraisal]\nmoney_per_point = 2.5\n").expect("valid");
        assert_eq!(c.rules.money_per_point, 2.5);
    }

    #[test]
    fn adapters_from_source_and_sources() {
        let c = Config::from_toml_str(
            "[source]\nkind = \"asterisk-ami\"\nname = \"pbx-1\"\naddress = \"10.0.0.5\"\n\
             username = \"floorwatch\"\nsecret = \"s3cret\"\nagent_id = \"interface\"\n\
             acw_reasons = [\"ACW\", \"Wrapup\"]\nauto_pause_reason = \"no_answer\"\n\
             [[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/var/log/asterisk/queue_log\"\n\
             reorder_window = \"30s\"\n\
             [[sources]]\nkind = \"freeswitch-esl\"\nname = \"fs\"\naddress = \"fs.local:9000\"\n\
             password = \"ClueCon\"\nagent_id = \"before-at\"\nbreak_reason = \"lunch\"\n",
        )
        .expect("valid");
        assert_eq!(c.source.kind, SourceKind::AsteriskAmi);
        assert_eq!(c.adapters.len(), 3);
        assert_eq!(c.adapters[0].name, "pbx-1");
        match &c.adapters[0].kind {
            AdapterKind::AsteriskAmi(a) => {
                assert_eq!(a.address, "10.0.0.5:5038");
                assert_eq!(a.username, "floorwatch");
                assert_eq!(a.secret, Secret("s3cret".into()));
                assert_eq!(a.settings.agent_id, AmiAgentId::Interface);
                assert_eq!(a.settings.acw_reasons, vec!["ACW", "Wrapup"]);
                assert_eq!(a.settings.auto_pause_reason, "no_answer");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.adapters[1].name, "asterisk-queue-log");
        match &c.adapters[1].kind {
            AdapterKind::AsteriskQueueLog(q) => {
                assert_eq!(q.path, PathBuf::from("/var/log/asterisk/queue_log"));
                assert_eq!(q.reorder_window, 30_000);
                assert_eq!(q.settings, AmiSettings::default());
            }
            other => panic!("{other:?}"),
        }
        match &c.adapters[2].kind {
            AdapterKind::FreeswitchEsl(f) => {
                assert_eq!(f.address, "fs.local:9000");
                assert_eq!(f.password, Secret("ClueCon".into()));
                assert_eq!(f.settings.agent_id, EslAgentId::BeforeAt);
                assert_eq!(f.settings.break_reason, "lunch");
            }
            other => panic!("{other:?}"),
        }
        // Secrets never show in Debug output (logs of the config).
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("ClueCon"),
            "{shown}"
        );
        // The default is the floorwatch protocol and no adapter.
        let d = Config::from_toml_str("").expect("empty");
        assert_eq!(d.source.kind, SourceKind::Floorwatch);
        assert!(d.adapters.is_empty());
        let f = Config::from_toml_str("[source]\nkind = \"floorwatch\"\n").expect("valid");
        assert!(f.adapters.is_empty());
    }

    #[test]
    fn adapter_errors_name_the_key() {
        let e = err("[source]\nkind = \"asterisk-ami\"\nusername = \"u\"\nsecret = \"s\"\n");
        assert_at(&e, "source.address", 2, 8);
        let e = err("[[sources]]\nkind = \"asterisk-ami\"\naddress = \"pbx\"\nsecret = \"s\"\n");
        assert_at(&e, "sources[0].username", 2, 8);
        let e =
            err("[[sources]]\nkind = \"freeswitch-esl\"\naddress = \"fs:80x\"\npassword = \"p\"\n");
        assert_at(&e, "sources[0].address", 3, 11);
        let e =
            err("[[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/q\"\npassword = \"p\"\n");
        assert_at(&e, "sources[0].password", 4, 12);
        let e =
            err("[[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/q\"\nagent_id = \"uid\"\n");
        assert_at(&e, "sources[0].agent_id", 4, 12);
        let e = err("[[sources]]\nkind = \"floorwatch\"\n");
        assert_at(&e, "sources[0].kind", 2, 8);
        let e =
            err("[[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/q\"\nurl = \"ws://x\"\n");
        assert_at(&e, "sources[0].url", 4, 7);
        let e = err("[[sources]]\nkind = \"pbx\"\n");
        assert_eq!(e.line, Some(2), "{e}");
        let e = err("[source]\npath = \"/q\"\n");
        assert_at(&e, "source.path", 2, 8);
        let e = err("[source]\nkind = \"asterisk-queue-log\"\nmode = \"connect\"\npath = \"/q\"\n");
        assert_at(&e, "source.mode", 3, 8);
        // Two sources of one kind need names of their own.
        let e = err(
            "[[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/a\"\n\
             [[sources]]\nkind = \"asterisk-queue-log\"\npath = \"/b\"\n",
        );
        assert!(e.message.contains("asterisk-queue-log"), "{e}");
        let e = err("[[sources]]\nkind = \"asterisk-queue-log\"\nname = \"api\"\npath = \"/a\"\n");
        assert!(e.message.contains("reserved"), "{e}");
    }
}
