//! Configuration: the TOML file of the surface page, parsed from a `&str` into raw serde
//! structs and then validated into [`Config`]. Every key is optional; the defaults are the
//! seed manual's rules.
//!
//! Every error is a [`ConfigError`] that points at the offending key: its dotted path
//! (`rules.ring_answer.ring_cycle`, `teams[1].members`, `source.headers."X Y"`) and the
//! 1-based line and column of the value, or of the key when the key itself is wrong.
//!
//! Owns, one file each: the validated types and their defaults ([`types`]), the raw serde
//! structs of the file (`raw`), every check (`check`: [`Config::from_toml_str`] and
//! [`Config::validate`]), the rendering of errors (`error`), and reading the file ([`load`]).
//! Stands on `time` (durations) and `tls` (the `source.ca` file) only.
//! Must not: bind ports, touch the store, or import anything of the daemon: a constant the
//! config needs (a reserved source name, a default) lives here and the daemon imports it.

mod check;
mod error;
mod nats;
mod raw;
mod rulebook;
#[cfg(test)]
mod tests;
pub mod types;

pub use error::ConfigError;
pub use nats::{subject_matches, valid_subject, JETSTREAM_DEFAULT_NAME};
pub use rulebook::{digest_of, RulebookError, RULEBOOK_FORMAT};
pub use types::*;

/// Reads a config file (or the defaults when `path` is `None`).
pub fn load(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    match path {
        None => Ok(Config::default()),
        Some(p) => {
            // An unreadable config is a config error too (exit code 78), not a crash.
            let text = std::fs::read_to_string(p).map_err(|e| {
                anyhow::Error::new(ConfigError {
                    message: format!("cannot read config {}: {e}", p.display()),
                    key: None,
                    line: None,
                    column: None,
                })
            })?;
            Config::from_toml_str(&text)
                .map_err(|e| anyhow::Error::new(e).context(format!("config {}", p.display())))
        }
    }
}

/// `floorwatch check-config FILE`.
pub fn check_config_main(path: &std::path::Path) -> anyhow::Result<()> {
    load(Some(path))?;
    println!("{}: ok", path.display());
    Ok(())
}
