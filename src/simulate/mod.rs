//! `floorwatch simulate`: a simulated phone system.
//!
//! - [`model`]: the pure, deterministic floor model ([`Generator`]) that yields protocol
//!   events for a seed. No I/O, no clock.
//! - [`client`]: [`drive`], the WebSocket client that paces those events in real time into
//!   the daemon's `/ingest`, with ack-driven buffering and resume.
//! - this module: the command itself, and [`write_ndjson`] for `--out`.
//!
//! The wall clock is read once (through [`crate::clock`]), here, to anchor simulated time
//! when `--start` is not given.
//!
//! Owns: the simulator, a client of the daemon like any phone system. Must not: import the
//! daemon's modules (it speaks the protocol over a socket).

pub mod client;
pub mod model;

use std::io::{self, Write};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use client::{drive, DriveError, DriveStats, Pace};
pub use model::{Generator, Misconduct, Opening, SimConfig, SimEvent};

use crate::cli::{MisconductLevel, SimulateArgs};
use crate::time::{parse_duration, Timestamp};

/// `--duration` when writing a file and none is given.
pub const DEFAULT_FILE_DURATION: &str = "8h";

/// Share of same-millisecond groups written as one batch line, as a busy PBX would.
const BATCH_SHARE: f64 = 0.6;

/// Writes events as NDJSON: one event per line, except that events with identical
/// timestamps are sometimes written as one batch array line. The choice is drawn from
/// `seed`, so the output is byte-identical for the same events and seed. Returns the number
/// of events written.
pub fn write_ndjson<W: Write>(
    events: impl Iterator<Item = SimEvent>,
    seed: u64,
    mut w: W,
) -> io::Result<u64> {
    // A separate stream of randomness: framing never changes the events themselves.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6261_7463_6865_7321);
    let mut group: Vec<SimEvent> = Vec::new();
    let mut n = 0u64;
    let mut flush = |group: &mut Vec<SimEvent>, w: &mut W| -> io::Result<()> {
        if group.len() > 1 && rng.random_bool(BATCH_SHARE) {
            let lines: Vec<String> = group.iter().map(SimEvent::to_json).collect();
            writeln!(w, "[{}]", lines.join(","))?;
        } else {
            for ev in group.iter() {
                writeln!(w, "{}", ev.to_json())?;
            }
        }
        group.clear();
        Ok(())
    };
    for ev in events {
        if group.first().is_some_and(|g| g.ts != ev.ts) {
            flush(&mut group, &mut w)?;
        }
        group.push(ev);
        n += 1;
    }
    flush(&mut group, &mut w)?;
    w.flush()?;
    Ok(n)
}

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
    let mut cfg = SimConfig::new(args.agents, args.teams, args.seed);
    cfg.duration = duration;
    cfg.misconduct = match args.misconduct {
        MisconductLevel::None => Misconduct::none(),
        MisconductLevel::Modest => Misconduct::modest(),
        MisconductLevel::Unruly => Misconduct::unruly(),
    };
    let generator = Generator::new(cfg, start);
    let pace = Pace::new(start, args.speed);

    if let Some(path) = &args.out {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let n = write_ndjson(generator, args.seed, io::BufWriter::new(file))
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
