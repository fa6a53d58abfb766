//! The process's log output: `tracing` events to stderr, for every command that logs (`run`,
//! `demo`, `simulate`).
//!
//! Owns: the one subscriber ([`init`]). Must not: decide what is logged (each module logs
//! where it handles a thing) or write anywhere but stderr.

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), without colours when stderr is
/// not a terminal. A second call (a test harness installed one already) changes nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
