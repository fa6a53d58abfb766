//! The validated configuration: what the rest of the daemon reads.
//!
//! Owns: every type of a [`Config`] with its defaults (the seed manual's rules), and the
//! constants the config and the daemon share ([`API_SOURCE`], [`AmiSource::KEEPALIVE`]).
//! Must not: parse or check (`check` does), or import anything above `time`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::time::Millis;

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
    /// The `[[sources]]` table of kind `"nats-jetstream"`: the daemon reads every event from
    /// a JetStream stream (and publishes what its API receives to it). With it there are no
    /// adapters and no WebSocket ingest (see `config::nats`).
    pub jetstream: Option<JetStreamSource>,
    /// `[relay]`: where `floorwatch relay` publishes what it receives.
    pub relay: Option<RelayConfig>,
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
    /// A NATS JetStream stream of protocol frames (scale-out: a pair of daemons, a relay).
    NatsJetstream,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Floorwatch => "floorwatch",
            SourceKind::AsteriskAmi => "asterisk-ami",
            SourceKind::AsteriskQueueLog => "asterisk-queue-log",
            SourceKind::FreeswitchEsl => "freeswitch-esl",
            SourceKind::NatsJetstream => "nats-jetstream",
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
    /// `max_future` of its `[[sources]]` table; `None`: `[source] max_future`.
    pub max_future: Option<Millis>,
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

/// `members`: queue members' interfaces and member names, both ways (an interface →
/// member name table of the config; with `agent_id = "interface"` each name names one
/// interface).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberNames {
    by_interface: BTreeMap<String, String>,
    by_name: BTreeMap<String, String>,
}

impl MemberNames {
    /// Adds `interface` → `name`; a name given to several interfaces maps back to the first.
    pub fn insert(&mut self, interface: &str, name: &str) {
        self.by_interface
            .insert(interface.to_string(), name.to_string());
        self.by_name
            .entry(name.to_string())
            .or_insert_with(|| interface.to_string());
    }

    /// The member name of `interface`, if the table has it.
    pub fn name_of(&self, interface: &str) -> Option<&str> {
        self.by_interface.get(interface).map(String::as_str)
    }

    /// The interface of member `name`, if the table has it.
    pub fn interface_of(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).map(String::as_str)
    }

    /// Every interface → name, in interface order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_interface
            .iter()
            .map(|(i, n)| (i.as_str(), n.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.by_interface.is_empty()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for MemberNames {
    fn from_iter<T: IntoIterator<Item = (&'a str, &'a str)>>(pairs: T) -> MemberNames {
        let mut m = MemberNames::default();
        for (i, n) in pairs {
            m.insert(i, n);
        }
        m
    }
}

/// The mapping choices of the Asterisk adapters (AMI and `queue_log`).
#[derive(Clone, Debug, PartialEq)]
pub struct AmiSettings {
    pub agent_id: AmiAgentId,
    /// `members`: interface → member name, so that a `queue_log` that names a member both
    /// ways (`ADDMEMBER` by interface, the other lines by name) names one agent, and so that
    /// a channel names its agent.
    pub members: MemberNames,
    /// Pause reasons that mean after-call work: mapped to `acw` (exact match).
    pub acw_reasons: Vec<String>,
    /// The reason given to app_queue's own `Auto-Pause` (after ring-no-answer with
    /// `autopause`).
    pub auto_pause_reason: String,
}

impl AmiSettings {
    /// The agent id of a member named `named` (an interface or a member name, as a
    /// `queue_log` line writes it): by `agent_id`, through the `members` table where it has
    /// the other name.
    pub fn agent<'a>(&'a self, named: &'a str) -> &'a str {
        match self.agent_id {
            AmiAgentId::MemberName => self.members.name_of(named),
            AmiAgentId::Interface => self.members.interface_of(named),
        }
        .unwrap_or(named)
    }
}

impl Default for AmiSettings {
    fn default() -> AmiSettings {
        AmiSettings {
            agent_id: AmiAgentId::MemberName,
            members: MemberNames::default(),
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
    /// `[[users]]`: named people (and machines) with a role, signing in with a token or
    /// through the auth proxy.
    pub users: Vec<User>,
    /// `[server.auth_proxy]`: single sign-on through a trusted proxy in front.
    pub auth_proxy: Option<AuthProxy>,
}

/// What a user may do (surface page, `[[users]]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything, on every team.
    Admin,
    /// Quality inspection (质检): waivers, demerits, closing months, on every team.
    Qa,
    /// A team lead (组长): approvals, waivers, demerits and shifts on their own teams.
    Lead,
    /// An agent: their own record only.
    Agent,
    /// Reads the floor and the API.
    Viewer,
    /// A phone system or WFM feeding `/ingest`.
    Ingest,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Qa,
        Role::Lead,
        Role::Agent,
        Role::Viewer,
        Role::Ingest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Qa => "qa",
            Role::Lead => "lead",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
            Role::Ingest => "ingest",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One `[[users]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// Who it is: what `by` records for everything they do.
    pub name: String,
    pub role: Role,
    /// The teams a lead may act on.
    pub teams: Vec<String>,
    /// Who an agent user is (their agent id).
    pub agent: Option<String>,
    /// SHA-256 of the bearer token (the token itself is never stored); `None` for someone
    /// who signs in through the auth proxy only.
    pub token_sha256: Option<[u8; 32]>,
}

/// `[server.auth_proxy]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthProxy {
    /// The request header that names a `[[users]]` entry (e.g. `X-Forwarded-User`).
    pub header: String,
    /// Peers whose header is believed; from anyone else it is ignored.
    pub trusted: Vec<ipnet::IpNet>,
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
        // A role's surfaces are secured by its tokens, by users who can use them, or (for the
        // people's surfaces) by the auth proxy.
        let users = |roles: &[Role]| self.users.iter().any(|u| roles.contains(&u.role));
        let proxy = self.auth_proxy.is_some();
        let open: Vec<&str> = [
            ("ingest", t.ingest.is_empty() && !users(&[Role::Ingest])),
            (
                "viewer",
                t.viewer.is_empty()
                    && t.lead.is_empty()
                    && !proxy
                    && !users(&[Role::Admin, Role::Qa, Role::Lead, Role::Viewer]),
            ),
            (
                "lead",
                t.lead.is_empty() && !proxy && !users(&[Role::Admin, Role::Qa, Role::Lead]),
            ),
        ]
        .into_iter()
        .filter(|(_, open)| *open)
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
    /// Live, an event whose `ts` lies more than this ahead of the daemon's clock is refused
    /// (`ts_in_future`; `source.max_future`, default 5m). Adapters in `[[sources]]` may set
    /// their own ([`AdapterConfig::max_future`]).
    pub max_future: Millis,
    /// `max_future` of named WebSocket sources (`[source.max_future_of]`, `pbx = "10m"`):
    /// a source name found here takes its own bound, any other `max_future`.
    pub max_future_of: BTreeMap<String, Millis>,
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

impl SourceConfig {
    /// How far ahead of the daemon's clock an event of a connection of `source` may lie:
    /// the connection's `own` bound (an adapter's), else `max_future_of` by name, else
    /// `max_future`.
    pub fn max_future_for(&self, source: &str, own: Option<Millis>) -> Millis {
        own.or_else(|| self.max_future_of.get(source).copied())
            .unwrap_or(self.max_future)
    }
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

/// `[rules.attendance]`: shifts, handover and logging out.
#[derive(Clone, Debug, PartialEq)]
pub struct AttendanceRule {
    /// A shift's agent must be logged in by start + this (`late_login`).
    pub login_grace: Millis,
    /// After the release (the end, or the relief's arrival) the agent has this long to log
    /// out (`not_logged_out`).
    pub logout_grace: Millis,
    /// A logout from this long before the end on, while the relief is not there, is
    /// `left_before_relief`.
    pub handover_window: Millis,
    pub points: AttendancePoints,
}

/// `[rules.attendance.points]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AttendancePoints {
    pub late_login: u32,
    pub left_before_relief: u32,
    pub not_logged_out: u32,
}

/// The points of a floor-discipline item: fixed, or chosen by the lead within a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemPoints {
    Fixed(u32),
    Range(u32, u32),
}

/// One row of the `discipline` catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct DisciplineItem {
    pub name: String,
    pub points: ItemPoints,
}

/// One row of the `dispositions` table (wrap-up codes).
#[derive(Clone, Debug, PartialEq)]
pub struct Disposition {
    pub name: String,
    /// A disposition with this code counts as a sale.
    pub sale: bool,
}

/// The part of the config the engine reads: the rulebook (everything that judges, see
/// [`RulesConfig::rulebook_json`]) and the engine's `[limits]`.
#[derive(Clone, Debug)]
pub struct RulesConfig {
    pub ring_answer: RingAnswerRule,
    pub break_overrun: BreakOverrunRule,
    pub unauthorized_pause: UnauthorizedPauseRule,
    pub attendance: AttendanceRule,
    pub reasons: BTreeMap<String, ReasonRule>,
    /// The floor-discipline catalog (item key → name and points).
    pub discipline: BTreeMap<String, DisciplineItem>,
    /// Wrap-up codes (code → name and whether it is a sale).
    pub dispositions: BTreeMap<String, Disposition>,
    /// Team id → sales target per day (`[[teams]] sales_target`).
    pub sales_target: BTreeMap<String, u32>,
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
    /// Shifts the engine keeps: planned ones, and past ones a report still needs.
    pub max_shifts: usize,
    /// Source names whose highest `seq` the engine keeps (every name that sent a `seq`).
    pub max_sources: usize,
}

impl Default for EngineLimits {
    fn default() -> EngineLimits {
        EngineLimits {
            max_agents: 100_000,
            max_calls: 200_000,
            max_queues: 10_000,
            // The 62 days kept of one shift a day for 50,000 agents, and some planned ahead
            // (about 1.1 KB each: BENCHMARKS.md).
            max_shifts: 4_000_000,
            max_sources: 10_000,
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
            attendance: AttendanceRule {
                login_grace: 60_000,
                logout_grace: 10 * 60_000,
                handover_window: 15 * 60_000,
                points: AttendancePoints {
                    late_login: 1,
                    left_before_relief: 2,
                    not_logged_out: 1,
                },
            },
            discipline: default_discipline(),
            dispositions: default_dispositions(),
            sales_target: BTreeMap::new(),
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

/// The default floor-discipline catalog: the manual's 2.2.1 (现场纪律) and 2.2.2 (系统操作)
/// items that a lead sees walking the floor (组长巡视), with the manual's points.
fn default_discipline() -> BTreeMap<String, DisciplineItem> {
    use ItemPoints::{Fixed, Range};
    [
        ("noise", "现场大声喧哗吵闹", Fixed(1)),
        ("littering", "现场乱扔废纸、杂物", Fixed(1)),
        ("posture", "坐姿不端正、脚放在主机或工作台上", Fixed(1)),
        ("left_post", "交班人员未到离开岗位、闭席", Fixed(2)),
        ("desk_clutter", "工作台放置与工作无关的东西", Fixed(1)),
        ("eating", "在现场吃食物", Fixed(2)),
        ("defacing", "在办公设备上乱涂乱画", Fixed(1)),
        (
            "no_raised_hand",
            "提问未先举手、随意起立或大声呼叫",
            Fixed(1),
        ),
        ("mobile_phone", "在现场拨打或接听私人手机", Fixed(3)),
        ("private_call", "用热线电话拨打私人电话", Fixed(2)),
        ("chatting", "上班时间闲谈、随意串岗", Fixed(2)),
        ("unrelated_work", "工作时间做与工作无关的事情", Fixed(2)),
        (
            "visitor_protocol",
            "客人参观时未暂停小休、交接班等杂事",
            Fixed(2),
        ),
        ("equipment_damage", "违规使用、损坏设备", Range(1, 5)),
        ("terminal_settings", "随意调整终端的设置和属性", Fixed(1)),
        ("fault_not_reported", "严重故障未立即上报", Fixed(1)),
        ("data_copied", "复制或携带客户资料外出", Fixed(10)),
        ("data_altered", "擅自改动客户资料", Fixed(5)),
    ]
    .into_iter()
    .map(|(key, name, points)| {
        (
            key.to_string(),
            DisciplineItem {
                name: name.to_string(),
                points,
            },
        )
    })
    .collect()
}

/// The default wrap-up codes.
fn default_dispositions() -> BTreeMap<String, Disposition> {
    [
        ("sale", "销售成功", true),
        ("no_sale", "拒绝", false),
        ("callback", "回访", false),
        ("wrong_number", "号码错误", false),
    ]
    .into_iter()
    .map(|(code, name, sale)| {
        (
            code.to_string(),
            Disposition {
                name: name.to_string(),
                sale,
            },
        )
    })
    .collect()
}

#[derive(Clone, Debug, PartialEq)]
pub struct TeamConfig {
    pub id: String,
    /// Who gets this team's alerts (组长).
    pub lead: Option<String>,
    /// Who gets escalations (主管).
    pub supervisor: Option<String>,
    pub members: Vec<String>,
    /// Sales per day the team aims for (shown on the wallboard).
    pub sales_target: Option<u32>,
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
                users: Vec::new(),
                auth_proxy: None,
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
                max_future: 300_000,
                max_future_of: BTreeMap::new(),
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
            jetstream: None,
            relay: None,
        }
    }
}

/// How to reach a NATS cluster (`url`, the credentials, `ca`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsConnection {
    /// One or more servers (`nats://host:port`, `tls://host:port` or `host:port`), tried in
    /// turn; the client also learns the cluster's other servers from them.
    pub servers: Vec<String>,
    pub auth: NatsAuth,
    /// A PEM file of CA certificates to trust (TLS to the servers is then required).
    pub ca: Option<PathBuf>,
}

/// `username` + `password`, or `token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NatsAuth {
    None,
    UserPassword { user: String, password: Secret },
    Token(Secret),
}

/// `[[sources]] kind = "nats-jetstream"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JetStreamSource {
    /// The source name the stream's events are journaled under (`seq` = stream sequence).
    pub name: String,
    pub connection: NatsConnection,
    /// The stream's name (it must exist: the operator creates it, with its replicas).
    pub stream: String,
    /// The subject (filter) this daemon reads, wildcards allowed (`floor.a.>`).
    pub subject: String,
    /// This daemon's durable consumer (one per daemon; created when missing).
    pub durable: String,
    /// Where this daemon publishes what its API receives and its rulebook (`api_subject`):
    /// a subject without wildcards that `subject` matches.
    pub api_subject: String,
}

/// `[relay]`: the JetStream stream `floorwatch relay` publishes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    pub connection: NatsConnection,
    pub stream: String,
    /// Each source's frames go to `<subject>.<source>` (the source name as one subject
    /// token, see `jetstream::source_token`).
    pub subject: String,
}
