//! Command-line arguments of the `floorwatch` binary (clap). Parsing only; `main.rs` wires
//! each command to the module that does it.
//!
//! Owns: the argument types and the exit codes. Must not: run a command or read a file.

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
    /// Run the WebSocket ingest and the phone-system adapters, publishing what they receive
    /// to a NATS JetStream stream (`[relay]`) for a pair of daemons to judge.
    Relay(RelayArgs),
    /// Write the events of the nats-jetstream source's stream as protocol NDJSON (for
    /// `replay`): one line per message, `seq` = its stream sequence.
    StreamExport(StreamExportArgs),
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
    /// Rosters: plan shifts from a CSV file.
    Schedule(ScheduleArgs),
    /// Close a month on a running daemon: its statement (the appraisal CSV) is frozen with
    /// its SHA-256, and its violations can no longer be waived.
    CloseMonth(CloseMonthArgs),
    /// Report a data directory's format and health (journal, checkpoints, violations, lock)
    /// without changing anything; exit code 1 when it found problems.
    CheckStore(CheckStoreArgs),
    /// Write the man pages (roff) into a directory: floorwatch.1 and one per command.
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub struct RelayArgs {
    /// The config file: `[relay]`, `[server]` (listen, tokens), `[source]`, `[[sources]]`.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct StreamExportArgs {
    /// The daemon's config file (its nats-jetstream source names the stream and subject).
    #[arg(long)]
    pub config: PathBuf,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CloseMonthArgs {
    /// The month, YYYY-MM.
    pub month: String,
    /// The daemon's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: String,
    /// Bearer token of a qa or admin user.
    #[arg(long)]
    pub token: Option<String>,
    /// Also write the statement (CSV) as closed to this file.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub what: ScheduleCommand,
}

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// A roster CSV (header `shift,agent,start,end,position,team`; times RFC 3339 with an
    /// offset, or local as `2026-12-07 08:00` in appraisal.timezone) into `shift.scheduled`
    /// events: POSTed to a running daemon (--url) or written as NDJSON. Every bad row is
    /// reported with its line number, and then nothing is sent or written.
    Import(ScheduleImportArgs),
}

#[derive(Args, Debug)]
pub struct ScheduleImportArgs {
    /// The roster CSV; `-` is stdin.
    pub file: PathBuf,
    /// A running daemon's base URL (e.g. http://127.0.0.1:8080): the shifts go to its
    /// `POST /api/v1/shifts`.
    #[arg(long, conflicts_with = "out")]
    pub url: Option<String>,
    /// Bearer token for --url (a lead's or an admin's).
    #[arg(long, requires = "url")]
    pub token: Option<String>,
    /// Write NDJSON here instead of stdout (without --url).
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// The events' `ts` in the NDJSON (RFC 3339 or epoch ms); default: now. For a replay of
    /// past days, give a time before the first shift starts: a shift's deadlines are judged
    /// only when they lie after the event that planned it.
    #[arg(long)]
    pub at: Option<String>,
    /// Config file: `appraisal.timezone` for local times.
    #[arg(long)]
    pub config: Option<PathBuf>,
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
    /// How many simulated agents on the floor at a time (one seat each; the roster has three
    /// agents per seat in 8-hour shifts).
    #[arg(long, default_value_t = 24)]
    pub agents: usize,
    /// Where the daemon listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Config file (rules, teams); the listen address comes from --listen, the data
    /// directory from --data.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Simulator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the store in this directory (created if missing): a later demo with the same
    /// --data goes on from it. Without it every demo starts from a fresh directory in the
    /// system's temporary directory, removed when the demo stops.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
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
    /// Agents log in over the first 10 minutes and out over the last 10, when the lines
    /// close (over the first and last tenth of a run shorter than 100 minutes). With modest
    /// misconduct 20 agents raise about 5 to 10 violations an hour; --misconduct unruly
    /// raises about ten times as many.
    #[arg(long)]
    pub duration: Option<String>,
    /// Write the stream as NDJSON to this file instead of sending it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Simulated start time (RFC 3339); default: now.
    #[arg(long)]
    pub start: Option<String>,
    /// How often simulated agents break the rules [default: modest; heavy with --shape
    /// realistic].
    #[arg(long, value_enum)]
    pub misconduct: Option<MisconductLevel>,
    /// Plan a roster: seats (--agents / --rotation of them, so that many agents are on shift
    /// at a time) worked in turn by --rotation agents in shifts of --shift-length that hand
    /// over to a relief. The shifts go out as shift.scheduled events a day ahead (at the
    /// start, then every 12 hours); agents log in shortly before their start and stay until
    /// the relief is there. With misconduct some log in late, stay away, leave before the
    /// relief or forget to log out.
    #[arg(long)]
    pub roster: bool,
    /// Length of a shift with --roster (2h to 12h).
    #[arg(long, default_value = "4h", requires = "roster")]
    pub shift_length: String,
    /// Agents who take turns at one seat with --roster: 2 is an early and a late shift;
    /// `--rotation 3 --shift-length 8h` staffs the floor around the clock.
    #[arg(long, default_value_t = 2, requires = "roster")]
    pub rotation: usize,
    /// Outbound campaign: the share (0 to 1) of the agents' idle time spent dialing, with a
    /// disposition after every connected call. Without it, agents dial out only now and
    /// then and enter no dispositions; 0 means no outbound calls at all.
    #[arg(long, value_name = "SHARE")]
    pub outbound: Option<f64>,
    /// How --out writes the stream.
    #[arg(long, value_enum, default_value_t = ShapeArg::Simulator, requires = "out")]
    pub shape: ShapeArg,
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
    /// Nearly everyone breaks rules: about 18 % of events raise a violation.
    Heavy,
}

/// How `simulate --out` writes the stream.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeArg {
    /// UTC timestamps; events of one millisecond sometimes batched.
    Simulator,
    /// As measured on real floors: a third of the timestamps with a +08:00 offset, a tenth
    /// epoch milliseconds, a third of the lines batches of 2 to 20 events; heavy misconduct
    /// unless --misconduct says otherwise.
    Realistic,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Config file (TOML): rules, reasons, time zone, teams.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The replay's end (RFC 3339 or epoch ms): later events are not applied.
    #[arg(long)]
    pub until: Option<String>,
    /// Appraisal month (YYYY-MM), with --appraisal or --compare.
    #[arg(long)]
    pub month: Option<String>,
    /// Write the appraisal CSV for --month here.
    #[arg(long, requires = "month")]
    pub appraisal: Option<PathBuf>,
    /// Judge everything under this config's rulebook instead of the rulebooks in the input
    /// (its `rulebook` records are skipped, and so are waivers, whose ids name the other
    /// judgment's violations).
    #[arg(long)]
    pub what_if: Option<PathBuf>,
    /// With --what-if and --month: print per agent the points and money as judged and under
    /// the what-if rulebook, and the difference (CSV), instead of the violations. Waivers
    /// carry over to the same violation (agent, rule, kind, time) under the other rules.
    #[arg(long, requires = "what_if")]
    pub compare: bool,
    /// NDJSON files (one event or batch per line); `-` is stdin.
    #[arg(required = true)]
    pub events: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CheckConfigArgs {
    pub file: PathBuf,
}
