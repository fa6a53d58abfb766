//! Command-line arguments of the `floorwatch` binary (clap). Parsing only; `main.rs` wires
//! each command to the module that does it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit code for a config that does not parse or validate (EX_CONFIG).
pub const EXIT_CONFIG: i32 = 78;

/// Exit code of `floorwatch run` when a graceful shutdown took longer than
/// `server.shutdown_grace` (as coreutils `timeout` reports a time-out). A second SIGINT or
/// SIGTERM exits at once with 130 or 143 instead.
pub const EXIT_GRACE: i32 = 124;

#[derive(Parser, Debug)]
#[command(
    name = "floorwatch",
    version,
    about = "Real-time call-floor monitoring daemon"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    Run(RunArgs),
    /// Run the daemon plus a simulated phone system feeding it over a real WebSocket.
    Demo(DemoArgs),
    /// Run the phone-system simulator on its own.
    Simulate(SimulateArgs),
    /// Run recorded events through the engine in event time; print violations as NDJSON.
    Replay(ReplayArgs),
    /// Validate a config file.
    CheckConfig(CheckConfigArgs),
    /// The appraisal of a month, week or day from a daemon's data directory.
    Report(ReportArgs),
    /// Write the stored events of a period as protocol NDJSON (for `replay`).
    Export(ExportArgs),
    /// Map a phone system's historical log to protocol NDJSON (for `replay`).
    Import(ImportArgs),
    /// Report a data directory's format and health (journal, checkpoints, violations, lock)
    /// without changing anything; exit code 1 when it found problems.
    CheckStore(CheckStoreArgs),
    /// Write the man pages (roff) into a directory: floorwatch.1 and one per command.
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub struct CheckStoreArgs {
    /// The data directory (`store.dir`), e.g. /var/lib/floorwatch.
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// The directory to write the pages into (created if missing).
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub what: ImportCommand,
}

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Asterisk's queue_log file: one protocol event per line, with `seq`.
    #[command(name = "queue_log", alias = "queue-log")]
    QueueLog(ImportQueueLogArgs),
}

#[derive(Args, Debug)]
pub struct ImportQueueLogArgs {
    /// The queue_log file; `-` is stdin.
    pub file: PathBuf,
    /// Config file (TOML): the settings of its `asterisk-queue-log` source (agent_id,
    /// acw_reasons, auto_pause_reason, reorder_window); without one, the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Which `asterisk-queue-log` source of the config, when it has several.
    #[arg(long)]
    pub name: Option<String>,
    /// Write the NDJSON here instead of stdout.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Month, e.g. 2026-11.
    #[arg(long)]
    pub month: Option<String>,
    /// ISO week, e.g. 2026-W48.
    #[arg(long)]
    pub week: Option<String>,
    /// Local day, e.g. 2026-11-28.
    #[arg(long)]
    pub day: Option<String>,
    /// Only this team's rows.
    #[arg(long)]
    pub team: Option<String>,
    /// csv or json.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Config file (TOML): the data directory (`store.dir`), rules, time zone, teams.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// First applied time (RFC 3339 or epoch ms), inclusive; default: the beginning.
    #[arg(long)]
    pub from: Option<String>,
    /// Applied time (RFC 3339 or epoch ms) to stop before; default: the end.
    #[arg(long)]
    pub to: Option<String>,
    /// Config file (TOML): the data directory (`store.dir`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Config file (TOML). Without it: built-in defaults, 127.0.0.1:8080, data under ./data.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How many simulated agents.
    #[arg(long, default_value_t = 24)]
    pub agents: usize,
    /// Where the daemon listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Config file (rules, teams); the listen address comes from --listen.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Simulator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Daemon ingest URL, e.g. ws://127.0.0.1:8080/ingest?source=sim
    #[arg(long, required_unless_present = "out")]
    pub url: Option<String>,
    /// Bearer token for the ingest URL.
    #[arg(long)]
    pub token: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub agents: usize,
    #[arg(long, default_value_t = 3)]
    pub teams: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Simulated duration (e.g. "8h", "30m"); default runs forever when sending, 8h with --out.
    #[arg(long)]
    pub duration: Option<String>,
    /// Write the stream as NDJSON to this file instead of sending it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Simulated start time (RFC 3339); default: now.
    #[arg(long)]
    pub start: Option<String>,
    /// How often simulated agents break the rules.
    #[arg(long, value_enum, default_value_t = MisconductLevel::Modest)]
    pub misconduct: MisconductLevel,
}

/// Preset shares of rule-breaking agents for the simulator.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MisconductLevel {
    /// Every agent keeps every rule.
    None,
    /// A fifth of the agents break rules now and then.
    Modest,
    /// Half the agents break rules often (the demo's floor).
    Unruly,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Config file (TOML): rules, reasons, time zone, teams.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The replay's end (RFC 3339 or epoch ms): later events are not applied.
    #[arg(long)]
    pub until: Option<String>,
    /// Appraisal month (YYYY-MM), with --appraisal.
    #[arg(long, requires = "appraisal")]
    pub month: Option<String>,
    /// Write the appraisal CSV for --month here.
    #[arg(long, requires = "month")]
    pub appraisal: Option<PathBuf>,
    /// NDJSON files (one event or batch per line); `-` is stdin.
    #[arg(required = true)]
    pub events: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CheckConfigArgs {
    pub file: PathBuf,
}
