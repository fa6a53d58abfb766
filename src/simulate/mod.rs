//! `floorwatch simulate`: a simulated phone system.
//!
//! - [`model`]: the pure, deterministic floor model ([`Generator`]) that yields protocol
//!   events for a seed. No I/O, no clock.
//! - [`client`]: [`drive`], the WebSocket client that paces those events in real time into
//!   the daemon's `/ingest`, with ack-driven buffering and resume.
//! - [`shape`]: how `--out` writes the stream ([`write_ndjson`], or the realistic shape of
//!   [`write_shaped`]).
//! - this module: the command itself.
//!
//! The wall clock is read once (through [`crate::clock`]), here, to anchor simulated time
//! when `--start` is not given.
//!
//! Owns: the simulator, a client of the daemon like any phone system. Must not: import the
//! daemon's modules (it speaks the protocol over a socket).

pub mod client;
pub mod model;
pub mod shape;

use std::io;

use anyhow::Context;

pub use client::{drive, DriveError, DriveStats, Pace};
pub use model::{Generator, Handover, Misconduct, Opening, Roster, Seat, SimConfig, SimEvent};
pub use shape::{write_ndjson, write_shaped, Shape};

use crate::cli::{MisconductLevel, ShapeArg, SimulateArgs};
use crate::time::{parse_duration, Millis, Timestamp};

const HOUR_MS: Millis = 3_600_000;

/// `--duration` when writing a file and none is given.
pub const DEFAULT_FILE_DURATION: &str = "8h";

/// The current wall-clock time, to anchor a simulation that should run "now".
pub(crate) fn wall_now() -> Timestamp {
    crate::clock::Clock::system().now()
}

/// `floorwatch simulate`.
pub fn main(args: SimulateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.agents > 0, "--agents must be at least 1");
    anyhow::ensure!(args.teams > 0, "--teams must be at least 1");
    anyhow::ensure!(
        args.speed.is_finite() && args.speed > 0.0,
        "--speed must be a number > 0, not {}",
        args.speed
    );
    let start = match &args.start {
        Some(s) => Timestamp::parse_flexible(s).context("--start")?,
        None => wall_now(),
    };
    let duration = match (&args.duration, &args.out) {
        (Some(d), _) => Some(parse_duration(d).context("--duration")?),
        (None, Some(_)) => Some(parse_duration(DEFAULT_FILE_DURATION).context("--duration")?),
        (None, None) => None,
    };
    let shape = match args.shape {
        ShapeArg::Simulator => Shape::Simulator,
        ShapeArg::Realistic => Shape::Realistic,
    };
    let mut cfg = SimConfig::new(args.agents, args.teams, args.seed);
    cfg.duration = duration;
    let level = args.misconduct.unwrap_or(match shape {
        Shape::Simulator => MisconductLevel::Modest,
        Shape::Realistic => MisconductLevel::Heavy,
    });
    cfg.misconduct = match level {
        MisconductLevel::None => Misconduct::none(),
        MisconductLevel::Modest => Misconduct::modest(),
        MisconductLevel::Unruly => Misconduct::unruly(),
        MisconductLevel::Heavy => Misconduct::heavy(),
    };
    if let Some(share) = args.outbound {
        anyhow::ensure!(
            (0.0..=1.0).contains(&share),
            "--outbound must be a share between 0 and 1, not {share}"
        );
        cfg.outbound = Some(share);
    }
    if args.roster {
        let shift = parse_duration(&args.shift_length).context("--shift-length")?;
        anyhow::ensure!(
            (2 * HOUR_MS..=12 * HOUR_MS).contains(&shift),
            "--shift-length must be between 2h and 12h, not {}",
            args.shift_length
        );
        anyhow::ensure!(args.rotation > 0, "--rotation must be at least 1");
        cfg.roster = Some(Roster::handover(args.agents, args.rotation, shift));
    }
    let generator = Generator::new(cfg, start);
    let pace = Pace::new(start, args.speed);

    if let Some(path) = &args.out {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let n = write_shaped(generator, args.seed, shape, io::BufWriter::new(file))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "floorwatch simulate: wrote {n} events to {}",
            path.display()
        );
        return Ok(());
    }

    let Some(url) = args.url.as_deref() else {
        anyhow::bail!("give --url to send the stream, or --out to write it");
    };
    crate::logging::init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stats = rt.block_on(async {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        drive(url, args.token.as_deref(), generator, pace, ctrl_c).await
    })?;
    eprintln!(
        "floorwatch simulate: {} events generated, {} sent, acknowledged up to {}",
        stats.generated,
        stats.sent,
        stats.acked.map_or("none".to_string(), |a| a.to_string())
    );
    Ok(())
}
