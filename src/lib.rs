//! floorwatch: real-time call-floor monitoring.
//!
//! # Layout
//!
//! The modules stand on floors: each imports only modules on the floors below it, so the
//! list reads top to bottom (`main.rs` stands on top; the `//!` doc of each module says what
//! it owns and what it must not touch). A type or constant that several modules share lives
//! below all of them.
//!
//! 1. [`demo`]: the daemon plus the simulator in one process.
//! 2. [`daemon`]: start-up, wiring and signals: the store restored, the port bound, every
//!    task spawned, and the bounded shutdown. Beside it, [`relay`]: `floorwatch relay`, the
//!    ingest and adapters publishing to a JetStream stream instead of an engine.
//! 3. The surfaces:
//!    - [`http`]: the axum router on one port: API, `/metrics`, health, the built-in
//!      wallboard, and who may call what (including the `/ingest` upgrade).
//!    - [`import`]: `floorwatch import`: a phone system's historical log (Asterisk
//!      `queue_log`) mapped to protocol NDJSON, for `replay`.
//!    - [`schedule`]: `floorwatch schedule import`: a roster CSV into `shift.scheduled`
//!      events, as NDJSON or sent to a daemon.
//!    - [`api_client`]: the client side of the daemon's API for the commands that talk to a
//!      running daemon (`schedule import --url`, `close-month`).
//!    - [`man`]: the man pages, written from the command-line definition.
//! 4. The sources, which feed the engine task:
//!    - [`ingest`]: WebSocket sessions of the protocol (listen and connect modes).
//!    - [`adapter`]: native phone-system events (Asterisk AMI and queue_log, FreeSWITCH
//!      mod_callcenter) turned into protocol events on the ingest path.
//!    - [`jetstream`]: the shared NATS JetStream stream of a scale-out layout: the
//!      `nats-jetstream` source (a durable consumer), the publishing of what the API
//!      receives, and the client pieces the relay uses.
//! 5. [`owner`]: the one task that owns the engine, its mailbox ([`owner::EngineClient`]),
//!    group commit to the store, the views it publishes, and start-up from the store.
//! 6. What the owner task drives:
//!    - [`appraiser`]: the month-to-date appraisal gauges, on a thread of their own.
//!    - [`report`]: the stored appraisal (`floorwatch report`, the appraisal API) and the
//!      audit export (`floorwatch export`), both defined by the journal.
//! 7. The shells below it:
//!    - [`store`]: the durable record under `store.dir`: the journal of accepted events and
//!      the SQLite databases (violations, waivers, the alert outbox, checkpoints).
//!    - [`alert`]: violation alerts to team leads: the pure alert book, its durable outbox
//!      rows, delivery to Alertmanager and signed webhooks.
//!    - [`limits`]: the I/O shell's `[limits]`: connection permits, per-source event rate
//!      (back-pressure), and the count and rate-limited log of every limit reached.
//!    - [`feed`]: `/ws/floor`: the floor as one snapshot and then deltas, encoded once for
//!      every wallboard.
//! 8. The read side and the offline engine:
//!    - [`floor`]: the published read side (agents, queues, violation log, histograms).
//!    - [`metrics`]: the Prometheus registry and every `floorwatch_*` family.
//!    - [`replay`]: NDJSON files through the engine in event time (the audit tool).
//! 9. [`engine`]: the sans-IO rules engine. Takes events and time, returns effects; stands
//!    on `config`, `event` and `time` only. Beside it, [`simulate`]: the phone-system
//!    simulator (a deterministic floor generator and a WebSocket client), a client of the
//!    daemon like any phone system.
//! 10. The vocabulary:
//!     - [`config`]: TOML config parsed from a `&str` and validated into
//!       [`config::Config`], in one place.
//!     - [`event`]: the protocol's events and their decoding; every rejection is a typed
//!       error.
//!     - [`clock`]: the daemon's wall clock, the only place that reads wall time.
//! 11. The ground floor, importing no other module:
//!     - [`time`]: millisecond [`time::Timestamp`]s and the accepted range, durations, the
//!       local calendar of the appraisal time zone. Reads no clock.
//!     - [`journal`]: the append-only, checksummed segment log of opaque records.
//!     - [`tls`]: TLS files: the server config of `[server.tls]`, the listener that hands
//!       the server handshaken connections, and the private CA of `source.ca`.
//!     - [`sockets`]: the count of open WebSocket connections that shutdown waits on, the
//!       write timeout and the close code of a shutdown.
//!     - [`redial`]: the back-off every client redials with.
//!     - [`worker`]: a one-job-at-a-time thread for the owner task.
//!     - [`logging`]: the stderr log subscriber.
//!     - [`service`]: readiness and stopping told to systemd (`sd_notify`).
//!     - [`format`]: the store format version: what this binary writes, reads and refuses,
//!       and when to bump it.
//!     - [`cli`]: command-line arguments (clap) and exit codes.

pub mod adapter;
pub mod alert;
pub mod api_client;
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
pub mod jetstream;
pub mod journal;
pub mod limits;
pub mod logging;
pub mod man;
pub mod metrics;
pub mod owner;
pub mod redial;
pub mod relay;
pub mod replay;
pub mod report;
pub mod schedule;
pub mod service;
pub mod simulate;
pub mod sockets;
pub mod store;
pub mod time;
pub mod tls;
pub mod worker;
