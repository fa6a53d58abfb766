//! `floorwatch simulate`: the phone-system simulator.
use crate::cli::SimulateArgs;

pub fn main(args: SimulateArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not yet")
}
