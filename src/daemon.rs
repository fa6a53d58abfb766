//! The daemon: wires config, the engine owner task, ingest, adapters, alert delivery and
//! HTTP on one port, runs them until a signal, and shuts them down in order.
//!
//! Owns: start-up ([`start`]: config checks, the store restored, the port bound, every task
//! spawned), the [`DaemonHandle`] and its bounded shutdown, `floorwatch run` ([`run_main`])
//! and its signals. The top floor: nothing in the crate imports it but `demo` and `main`.
//! Must not: hold state of its own that a lower module needs (a type or constant several
//! modules share lives below them), or touch the engine (only [`crate::owner`] does).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alert::Alerts;
use crate::cli::RunArgs;
use crate::clock::Clock;
use crate::config::{Config, ConfigError, SourceMode};
use crate::floor::Floor;
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::owner::{restore, EngineClient, EngineTask};

/// Shutdown did not finish within `server.shutdown_grace`: the daemon warned and stopped
/// waiting (exit code [`crate::cli::EXIT_GRACE`] from `floorwatch run`).
#[derive(Debug, thiserror::Error)]
#[error("shutdown did not finish within server.shutdown_grace ({0:?}); stopped waiting")]
pub struct GraceExceeded(pub Duration);

/// A running daemon.
pub struct DaemonHandle {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    /// Stops the engine task: cancelled after everything that feeds it has stopped, so that
    /// what sources and adapters hand over on their way out (a stream source's last
    /// acknowledgement) still finds it.
    engine_stop: CancellationToken,
    engine: EngineTask,
    server: JoinHandle<()>,
    dialer: Option<JoinHandle<()>>,
    adapters: Vec<JoinHandle<()>>,
    deliveries: Vec<JoinHandle<()>>,
    alerts: Option<Alerts>,
    /// `server.shutdown_grace`.
    grace: Duration,
    /// Resolves once every ingest and wallboard connection has closed.
    sockets_closed: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    clock: Clock,
    /// The rulebook the daemon started with (journaled at start when it changed).
    rules: crate::config::RulesConfig,
}

impl DaemonHandle {
    /// The alerts' handle (book and delivery lag), when targets are configured.
    pub fn alerts(&self) -> Option<&Alerts> {
        self.alerts.as_ref()
    }

    /// The address the HTTP server is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The published read side.
    pub fn floor(&self) -> Arc<Floor> {
        self.engine.floor()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.engine.metrics()
    }

    /// What SIGHUP runs: reloads the rulebook from `file` (see [`Reloader`]).
    pub fn reloader(&self, file: Option<PathBuf>) -> Reloader {
        Reloader {
            file,
            digest: self.rules.rulebook_digest(),
            timezone: self.rules.timezone_name.clone(),
            engine: self.engine.client(),
            metrics: self.metrics(),
            clock: self.clock,
        }
    }

    /// Stops accepting, closes ingest and wallboard connections (close code 1001), drains and
    /// stops the engine task (journal flushed, checkpoint taken), ends alert delivery (the
    /// outbox is in the store); bounded by `server.shutdown_grace`. Returns false when the
    /// grace passed first: then it warns and stops waiting.
    pub async fn shutdown(self) -> bool {
        let grace = self.grace;
        self.shutdown.cancel();
        let engine_stop = self.engine_stop.clone();
        let all = async {
            if let Err(e) = self.server.await {
                tracing::error!(error = %e, "http server task failed");
            }
            if let Some(d) = self.dialer {
                if let Err(e) = d.await {
                    tracing::error!(error = %e, "dialer task failed");
                }
            }
            // Upgraded connections outlive the server task: wait for their close frames.
            self.sockets_closed.await;
            for a in self.adapters {
                if let Err(e) = a.await {
                    tracing::error!(error = %e, "adapter task failed");
                }
            }
            self.engine_stop.cancel();
            self.engine.join().await;
            for d in self.deliveries {
                if let Err(e) = d.await {
                    tracing::error!(error = %e, "alert delivery task failed");
                }
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            engine_stop.cancel();
            tracing::warn!(grace = ?grace, "shutdown took longer than server.shutdown_grace; stopped waiting");
            return false;
        }
        tracing::info!("daemon stopped");
        true
    }
}

/// Validates `config`, binds the HTTP port (port 0 allowed), spawns the engine task, the
/// server and (in connect mode) the dialer, with the system clock.
pub async fn start(config: Config) -> anyhow::Result<DaemonHandle> {
    start_with_clock(config, Clock::system()).await
}

/// [`start`] with a given clock (tests under `tokio::time::pause()`).
pub async fn start_with_clock(config: Config, clock: Clock) -> anyhow::Result<DaemonHandle> {
    config.validate()?;
    let tls = match &config.server.tls {
        Some(files) => Some(
            crate::tls::server_config(&files.cert, &files.key).map_err(|e| ConfigError {
                message: e.message,
                key: Some(e.key.to_string()),
                line: None,
                column: None,
            })?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let local_addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let shutdown = CancellationToken::new();
    let engine_stop = CancellationToken::new();
    let metrics = match &config.metrics.pseudonym_key {
        Some(key) => Metrics::new()?.pseudonymize_agents(key.0.as_bytes()),
        None => Metrics::new()?,
    };
    let metrics = Arc::new(metrics);
    let alerts = Alerts::from_config(&config, local_addr)?;
    let restored = restore(&config, alerts.as_ref(), clock.now_micros())?;
    let reader = restored
        .store
        .reader()
        .context("cannot open the store for reading")?;
    let engine = EngineTask::spawn_with(
        &config,
        clock,
        metrics.clone(),
        engine_stop.clone(),
        restored.engine,
        Some(restored.store),
        alerts.clone(),
    )
    .context("cannot start the appraisal thread")?;
    let deliveries = match &alerts {
        Some(a) => crate::alert::deliver::spawn(
            a,
            clock,
            metrics.clone(),
            Duration::from_millis(config.alerts.timeout.max(1) as u64),
            Duration::from_millis(config.alerts.retry_max.max(1) as u64),
            shutdown.clone(),
        )?,
        None => Vec::new(),
    };
    let config = Arc::new(config);
    let limiter = Arc::new(crate::limits::Limiter::new(config.limits, metrics.clone()));
    let state = AppState::new(
        config.clone(),
        &engine,
        clock,
        limiter.clone(),
        Some(reader),
        shutdown.clone(),
    );
    let dialer = (config.source.mode == SourceMode::Connect).then(|| {
        let ingest = state.ingest.clone();
        tokio::spawn(async move { ingest.run_dialer().await })
    });
    let mut adapters = crate::adapter::spawn_all(
        &config,
        &engine.client(),
        clock,
        &metrics,
        &limiter,
        &shutdown,
    );
    // A daemon of a pair: its events, and what its API receives, go through the stream.
    if let (Some(js), Some(link)) = (&config.jetstream, engine.stream_link()) {
        adapters.extend(
            crate::jetstream::start(
                js,
                link,
                engine.client(),
                config.rules.clone(),
                clock,
                metrics.clone(),
                limiter.clone(),
                shutdown.clone(),
            )
            .await
            .context("cannot set up the nats-jetstream source")?,
        );
    }
    tokio::spawn(state.feed.clone().run(shutdown.clone()));
    let sockets_closed = {
        let (ingest, feed) = (state.ingest.all_closed(), state.feed.all_closed());
        Box::pin(async move {
            ingest.await;
            feed.await;
        })
    };
    let app = crate::http::router(state);
    let token = shutdown.clone();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = match tls {
        None => tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "http server failed");
            }
        }),
        Some(tls) => {
            use axum::serve::ListenerExt;
            let listener = crate::tls::TlsListener::new(listener, tls, shutdown.clone())
                .context("cannot read the bound address")?
                // A tapped listener gives handlers its peer address (`ConnectInfo`).
                .tap_io(|_| ());
            tokio::spawn(async move {
                let serve =
                    axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned());
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "https server failed");
                }
            })
        }
    };
    tracing::info!(listen = %local_addr, tls = config.server.tls.is_some(), mode = ?config.source.mode, "daemon started");
    Ok(DaemonHandle {
        local_addr,
        shutdown,
        engine_stop,
        engine,
        server,
        dialer,
        adapters,
        deliveries,
        alerts,
        grace: Duration::from_millis(config.server.shutdown_grace.max(1) as u64),
        sockets_closed,
        clock,
        rules: config.rules.clone(),
    })
}

/// Runs the daemon until `shutdown` completes, then shuts it down; [`GraceExceeded`] when
/// that took longer than `server.shutdown_grace`. SIGHUP reloads the rulebook from
/// `config_file` ([`reload_rulebook`]); without a file (the embedded default) there is
/// nothing to reload and SIGHUP is logged.
pub async fn run(
    config: Config,
    config_file: Option<PathBuf>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let grace = Duration::from_millis(config.server.shutdown_grace.max(1) as u64);
    // Armed before the port is bound, as the stop signals are: a `systemctl reload` the
    // moment the daemon answers must not end it by SIGHUP's default action.
    let hup = crate::service::listen_reload_signal();
    let handle = start(config).await?;
    let reloader = Arc::new(tokio::sync::Mutex::new(handle.reloader(config_file)));
    crate::service::handle_reload_signal(hup, move || {
        let reloader = reloader.clone();
        async move {
            reloader.lock().await.reload().await;
        }
    });
    crate::service::ready(handle.local_addr());
    shutdown.await;
    crate::service::stopping();
    tracing::info!(grace = ?grace, "shutting down");
    if handle.shutdown().await {
        Ok(())
    } else {
        Err(GraceExceeded(grace).into())
    }
}

/// A rulebook reload (SIGHUP, `systemctl reload`): the config file is read and checked
/// again, and when its rulebook differs from the one in force, the daemon journals it and
/// judges by it from the engine clock on (rules.md "Rulebook versions"). Only the rulebook
/// changes (rules, reasons, discipline catalog, dispositions, appraisal, teams); every other
/// setting (listen address, sources, store, alerts) is read at start only.
pub struct Reloader {
    file: Option<PathBuf>,
    /// The digest of the rulebook in force.
    digest: String,
    /// `appraisal.timezone` of the store: it cannot change.
    timezone: String,
    engine: EngineClient,
    metrics: Arc<Metrics>,
    clock: Clock,
}

/// What a reload did; [`Reloaded::outcome`] is the `outcome` label of
/// `floorwatch_rulebook_reloads_total`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The file's rulebook is in force from the engine clock on (journaled).
    Adopted { digest: String },
    /// The file's rulebook is the one in force: nothing journaled.
    Unchanged { digest: String },
    /// The file cannot be read or is not a valid config: the rulebook in force stays.
    Invalid(String),
    /// The file is valid but its rulebook cannot be adopted (a changed time zone, no file,
    /// the engine refused it): the rulebook in force stays.
    Refused(String),
}

impl Reloaded {
    pub fn outcome(&self) -> &'static str {
        match self {
            Reloaded::Adopted { .. } => "adopted",
            Reloaded::Unchanged { .. } => "unchanged",
            Reloaded::Invalid(_) => "invalid",
            Reloaded::Refused(_) => "refused",
        }
    }
}

impl Reloader {
    /// Reads the file again and adopts its rulebook when it changed; logs and counts the
    /// outcome. Never stops the daemon.
    pub async fn reload(&mut self) -> Reloaded {
        let r = self.attempt().await;
        self.metrics
            .rulebook_reloads
            .with_label_values(&[r.outcome()])
            .inc();
        match &r {
            Reloaded::Adopted { digest } => {
                tracing::info!(digest = %digest, "reload: rulebook in force from the engine clock on (journaled); settings outside the rulebook apply at the next restart")
            }
            Reloaded::Unchanged { digest } => {
                tracing::info!(digest = %digest, "reload: the rulebook has not changed; nothing journaled")
            }
            Reloaded::Invalid(why) => {
                tracing::error!(error = %why, "reload: the config file is not valid; the rulebook in force stays")
            }
            Reloaded::Refused(why) => {
                tracing::error!(error = %why, "reload refused; the rulebook in force stays")
            }
        }
        r
    }

    async fn attempt(&mut self) -> Reloaded {
        let Some(file) = self.file.clone() else {
            return Reloaded::Refused(
                "the daemon runs on the embedded default config: there is no file to reload (start it with --config FILE)".into(),
            );
        };
        // Reading and checking a file is blocking work; keep it off the runtime's threads.
        let loaded = tokio::task::spawn_blocking(move || crate::config::load(Some(&file))).await;
        let config = match loaded {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Reloaded::Invalid(format!("{e:#}")),
            Err(e) => return Reloaded::Invalid(format!("cannot read the config: {e}")),
        };
        let rules = &config.rules;
        if rules.timezone_name != self.timezone {
            return Reloaded::Refused(format!(
                "appraisal.timezone cannot change within one store ({} in force, {} in the file): the days of past statements would move; keep {}, or start a new data directory",
                self.timezone, rules.timezone_name, self.timezone
            ));
        }
        let digest = rules.rulebook_digest();
        // In a pair the rulebook in force is the stream's (the other daemon may have put
        // another there); the new one is published and adopted where it lands in the stream,
        // by both daemons (`apply_api` goes through the stream).
        let in_force = if self.engine.through_a_stream() {
            match self.engine.rulebook_in_force().await {
                Ok((d, _)) => d,
                Err(_) => return Reloaded::Refused("the daemon is shutting down".into()),
            }
        } else {
            self.digest.clone()
        };
        if digest == in_force {
            self.digest.clone_from(&digest);
            return Reloaded::Unchanged { digest };
        }
        let mut event = crate::owner::rulebook_event(rules, None, self.clock.now_micros());
        if self.engine.through_a_stream() {
            event.id = Some(crate::jetstream::rulebook_id(&digest, &in_force));
        }
        match self.engine.apply_api(event).await {
            Ok(Ok(_)) => {
                self.digest.clone_from(&digest);
                Reloaded::Adopted { digest }
            }
            Ok(Err(refused)) => Reloaded::Refused(refused.to_string()),
            Err(_) => Reloaded::Refused("the daemon is shutting down".into()),
        }
    }
}

/// `floorwatch run`: loads and validates the config before binding, then runs until SIGINT or
/// SIGTERM. A config error comes back as [`ConfigError`] (exit code 78 in `main`).
pub fn run_main(args: RunArgs) -> anyhow::Result<()> {
    // Checked as it is read; `start` checks the files it names before binding.
    let config = crate::config::load(args.config.as_deref())?;
    // A second install (e.g. a test harness did it) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::logging::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        // Armed before the port is bound: a signal as soon as the daemon answers stops it
        // gracefully, not by the default action.
        let first = shutdown_signal();
        run(config, args.config.clone(), async {
            let first = first.await;
            tracing::info!(
                signal = first.name(),
                "signal received; a second one exits at once"
            );
            // A second signal ends the process at once, whatever is still running.
            tokio::spawn(async {
                let second = shutdown_signal().await;
                tracing::warn!(signal = second.name(), "second signal: exiting at once");
                std::process::exit(second.exit_code());
            });
        })
        .await
    });
    // Tasks still running after the grace (a blocked write, say) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

/// A signal that asks the daemon to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// The exit code when a second signal ends the process at once: 128 + the signal number,
    /// as a shell reports a process killed by it (130 for SIGINT, 143 for SIGTERM).
    pub fn exit_code(self) -> i32 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM after this call: the handlers are
/// installed when it is called (within the runtime), not when the future is first polled.
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = StopSignal> + Send {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, signal = name, "cannot listen for the signal");
            None
        }
    };
    let int = listen(SignalKind::interrupt(), "SIGINT");
    let term = listen(SignalKind::terminate(), "SIGTERM");
    let recv = |s: Option<tokio::signal::unix::Signal>| async move {
        match s {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    async move {
        tokio::select! {
            _ = recv(int) => StopSignal::Interrupt,
            _ = recv(term) => StopSignal::Terminate,
        }
    }
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = StopSignal> + Send {
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
        StopSignal::Interrupt
    }
}
