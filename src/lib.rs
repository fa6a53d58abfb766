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

pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod event;
pub mod replay;
pub mod simulate;
pub mod time;
pub mod clock;
pub mod floor;
pub mod http;
pub mod ingest;
pub mod metrics;
