//! `floorwatch demo`: the daemon and the simulated phone system in one process, joined by a
//! real loopback WebSocket (`/ingest?source=demo`), so a live call floor is one command away.
//!
//! Owns only the wiring: start the daemon from the config as given (the rules are never
//! changed for the demo; a team without a sales target gets the demo's, so the sales board
//! has something to fill), start the simulator with the demo's floor ([`SimConfig::demo`]:
//! unruly mix, showcase opening, a roster that hands over in the first minutes, an outbound
//! campaign) at the current time, print where to look, and shut both down on Ctrl-C or
//! SIGTERM; the demo's data directory ([`DemoData`]: a fresh one per run unless `--data`).
//! Must not: reach into the daemon other than through [`crate::daemon`]'s handle and its
//! `/ingest`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::daemon::DaemonHandle;
use crate::simulate::{drive, DriveError, DriveStats, Generator, Pace, SimConfig};

/// The ingest source name the demo's simulator uses.
pub const SOURCE: &str = "demo";

/// Sales per day of a demo team (eight seats) when the config sets no target: about what
/// its campaign sells in eight hours.
pub const SALES_TARGET: u32 = 24;

/// A running demo: the daemon and the simulator task feeding it.
pub struct DemoHandle {
    daemon: DaemonHandle,
    simulator: Option<JoinHandle<Result<DriveStats, DriveError>>>,
    /// The simulator's outcome, once it stopped on its own.
    outcome: Option<anyhow::Result<DriveStats>>,
    stop: CancellationToken,
}

impl DemoHandle {
    /// Where the daemon listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.daemon.local_addr()
    }

    /// Completes when the simulator stops on its own, which it only does on an error such
    /// as a refused token; never completes otherwise.
    pub async fn simulator_stopped(&mut self) {
        match self.simulator.as_mut() {
            Some(task) => {
                let r = task.await;
                self.simulator = None;
                self.outcome = Some(joined(r));
            }
            None => std::future::pending().await,
        }
    }

    /// Stops the simulator, then the daemon; returns what the simulator did.
    pub async fn shutdown(mut self) -> anyhow::Result<DriveStats> {
        self.stop.cancel();
        let outcome = match self.simulator.take() {
            Some(task) => joined(task.await),
            None => self
                .outcome
                .take()
                .unwrap_or_else(|| Ok(DriveStats::default())),
        };
        self.daemon.shutdown().await;
        outcome
    }
}

fn joined(
    r: Result<Result<DriveStats, DriveError>, tokio::task::JoinError>,
) -> anyhow::Result<DriveStats> {
    match r {
        Ok(r) => r.context("simulator"),
        Err(e) => Err(anyhow::anyhow!("simulator task failed: {e}")),
    }
}

/// Starts the daemon with `config` and the simulator with `agents` agents from `seed`,
/// simulated time = wall time from now.
pub async fn start(mut config: Config, agents: usize, seed: u64) -> anyhow::Result<DemoHandle> {
    anyhow::ensure!(agents > 0, "--agents must be at least 1");
    let mut sim = SimConfig::demo(agents, seed);
    for k in 0..sim.teams {
        config
            .rules
            .sales_target
            .entry(Generator::team_id(k))
            .or_insert(SALES_TARGET);
    }
    // Speak to the daemon the way any phone system would: with the ingest token if one is set.
    let token = config.server.tokens.ingest.first().cloned();
    let daemon = crate::daemon::start(config).await?;
    let addr = daemon.local_addr();
    let url = format!("ws://{}/ingest?source={SOURCE}", loopback(addr));
    let now = crate::simulate::wall_now();
    // Call ids unique per run: a daemon restarted on the same store may still hold calls of
    // an earlier demo that never ended.
    sim.call_prefix = format!("c{}-", now.ms() / 1000);
    let generator = Generator::new(sim, now);
    let stop = CancellationToken::new();
    let cancelled = stop.clone();
    let simulator = tokio::spawn(async move {
        drive(
            &url,
            token.as_deref(),
            generator,
            Pace::new(now, 1.0),
            cancelled.cancelled_owned(),
        )
        .await
    });
    Ok(DemoHandle {
        daemon,
        simulator: Some(simulator),
        outcome: None,
        stop,
    })
}

/// Where a demo keeps its store.
#[derive(Debug)]
pub enum DemoData {
    /// A fresh directory of its own in the system's temporary directory, removed when this
    /// is dropped (after the daemon stopped).
    Fresh(tempfile::TempDir),
    /// `--data DIR`: kept, for a later demo or `floorwatch report`.
    Kept(PathBuf),
}

impl DemoData {
    /// `dir` as given, or a new directory `floorwatch-demo-*` in the temporary directory
    /// (`TMPDIR`, else `/tmp`).
    pub fn new(dir: Option<PathBuf>) -> anyhow::Result<DemoData> {
        match dir {
            Some(d) => Ok(DemoData::Kept(d)),
            None => tempfile::Builder::new()
                .prefix("floorwatch-demo-")
                .tempdir()
                .map(DemoData::Fresh)
                .context("cannot create the demo's data directory"),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            DemoData::Fresh(t) => t.path(),
            DemoData::Kept(p) => p,
        }
    }

    /// What happens to it, for the start-up lines.
    fn fate(&self) -> &'static str {
        match self {
            DemoData::Fresh(_) => {
                "a fresh directory, removed when the demo stops; --data DIR keeps one"
            }
            DemoData::Kept(_) => "kept: a demo with the same --data goes on from it",
        }
    }
}

/// A wildcard listen address is reached on loopback.
fn loopback(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

/// `floorwatch demo`.
pub fn main(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.agents > 0, "--agents must be at least 1");
    let mut config = crate::config::load(args.config.as_deref())?;
    config.server.listen = args.listen;
    let data = DemoData::new(args.data)?;
    config.store.dir = data.path().to_path_buf();
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::logging::init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(async {
        // Armed before the daemon starts: a signal during start-up stops the demo as
        // gracefully as one later.
        let mut stop = std::pin::pin!(crate::daemon::shutdown_signal());
        let mut demo = start(config, args.agents, args.seed).await?;
        let addr = loopback(demo.local_addr());
        println!(
            "floorwatch demo: {} simulated agents on a live floor",
            args.agents
        );
        println!("  wallboard   http://{addr}/");
        println!("  lead        http://{addr}/lead");
        println!("  floor       http://{addr}/api/v1/floor");
        println!("  violations  http://{addr}/api/v1/violations");
        println!("  metrics     http://{addr}/metrics");
        println!("  data        {} ({})", data.path().display(), data.fate());
        println!("Ctrl-C to stop.");
        let signal = tokio::select! {
            s = &mut stop => Some(s),
            () = demo.simulator_stopped() => None,
        };
        if let Some(signal) = signal {
            tracing::info!(
                signal = signal.name(),
                "signal received; a second one exits at once"
            );
            // As `floorwatch run`: a second signal ends the process at once (and leaves a
            // fresh data directory behind).
            tokio::spawn(async {
                let second = crate::daemon::shutdown_signal().await;
                tracing::warn!(signal = second.name(), "second signal: exiting at once");
                std::process::exit(second.exit_code());
            });
        }
        let stats = demo.shutdown().await?;
        eprintln!(
            "floorwatch demo: stopped after {} events (acknowledged up to {})",
            stats.generated,
            stats.acked.map_or("none".to_string(), |a| a.to_string())
        );
        anyhow::Ok(())
    });
    // Tasks still running after the shutdown must not hold the exit (as `floorwatch run`).
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    let path = data.path().display().to_string();
    match data {
        DemoData::Fresh(dir) => match dir.close() {
            Ok(()) => eprintln!("floorwatch demo: removed {path}"),
            Err(e) => eprintln!("floorwatch demo: cannot remove {path}: {e}"),
        },
        DemoData::Kept(_) => eprintln!("floorwatch demo: the store stays in {path}"),
    }
    result
}
