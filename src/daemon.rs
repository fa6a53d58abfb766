//! The daemon: wires config, engine owner task, ingest and HTTP.
use crate::cli::RunArgs;

pub fn run_main(args: RunArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not yet")
}
