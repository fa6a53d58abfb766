//! `floorwatch demo`: the daemon plus the simulator in one process.
use crate::cli::DemoArgs;

pub fn main(args: DemoArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not yet")
}
