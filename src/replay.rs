//! `floorwatch replay`: the audit tool.
use crate::cli::ReplayArgs;

pub fn main(args: ReplayArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not yet")
}
