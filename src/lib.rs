//! floorwatch: real-time call-floor monitoring.
//!
//! # Layout
//!
//! - [`time`]: the engine's notion of time: millisecond [`time::Timestamp`]s, config
//!   durations, the local calendar of the appraisal time zone. Reads no clock.
//! - [`event`]: the protocol's events and their decoding from JSON frames; every rejection
//!   is a typed error.
//! - [`config`]: TOML config parsed from a `&str` and validated into [`config::Config`].
//! - [`engine`]: the sans-IO rules engine. Takes events and time, returns effects
//!   (violations raised and cleared, views changed). No tokio, no clock, no I/O.
//! - [`replay`]: runs NDJSON files through the engine in event time (the audit tool) and
//!   writes violations and the appraisal CSV.
//! - [`import`]: `floorwatch import`: a phone system's historical log (Asterisk
//!   `queue_log`) mapped to protocol NDJSON, for `replay`.
//! - [`format`]: the store format version: what this binary writes, reads and refuses, and
//!   when to bump it.
//! - [`journal`]: the append-only, checksummed segment log of accepted events (opaque
//!   records); its durability contract and crash recovery.
//! - [`store`]: the durable record under `store.dir`: the journal of accepted events and the
//!   SQLite database (violations with status and waivers, engine checkpoints); the data
//!   directory's lock (`store::lock`) and `floorwatch check-store` (`store::check`).
//! - [`report`]: the stored appraisal (`floorwatch report`, the appraisal API) and the audit
//!   export (`floorwatch export`), both defined by the journal.
//! - [`clock`]: the daemon's wall clock, the only place that reads wall time.
//! - [`daemon`]: wires everything; the one task that owns the engine and publishes views.
//! - [`service`]: what systemd sees: readiness (`Type=notify`) and the reload signal.
//! - [`ingest`]: WebSocket ingest of the protocol (listen and connect modes).
//! - [`limits`]: `[limits]` of the I/O shell: connection permits, per-source event rate
//!   (back-pressure), and the count and rate-limited log of every limit reached.
//! - [`floor`]: the published read side (agents, queues, violation log, today's histograms).
//! - [`adapter`]: native phone-system events (Asterisk AMI and queue_log, FreeSWITCH
//!   mod_callcenter) turned into protocol events on the ingest path.
//! - [`alert`]: violation alerts to team leads: the pure alert book (raise, escalate,
//!   resolve), delivery to Alertmanager and signed webhooks, the durable outbox contract.
//! - [`feed`]: `/ws/floor`: the floor as one snapshot and then deltas, encoded once for every
//!   wallboard; slow clients are resynchronised or dropped, never waited for.
//! - [`http`]: the axum router: API, `/metrics`, health, the built-in wallboard.
//! - [`tls`]: optional TLS on the HTTP port: the rustls config from `[server.tls]` and a
//!   listener that hands the server handshaken connections.
//! - [`metrics`]: the Prometheus registry and every `floorwatch_*` family.
//! - [`simulate`]: the phone-system simulator: a deterministic floor generator and a
//!   WebSocket client with hello/ack/resume.
//! - [`demo`]: the daemon plus the simulator in one process.
//! - [`cli`]: command-line arguments (clap); `main.rs` wires each command to its module.
//! - [`man`]: the man pages, generated from [`cli`] (for the Debian package).

pub mod adapter;
pub mod alert;
pub mod appraiser;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod event;
pub mod feed;
pub mod floor;
pub mod format;
pub mod http;
pub mod import;
pub mod ingest;
pub mod journal;
pub mod limits;
pub mod man;
pub mod metrics;
pub mod replay;
pub mod report;
pub mod service;
pub mod simulate;
pub mod store;
pub mod time;
pub mod tls;
pub mod worker;
