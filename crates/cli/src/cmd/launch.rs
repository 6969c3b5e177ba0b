//! `swerl launch --nproc N -- COMMAND...`: N ranks of a swerl command on this node, each with
//! the launch variables torchrun would give it (swerl-dist's launcher). No Python needed.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: swerl launch --nproc 2 -- rft --trajectories runs/col --model M --out runs/rft\n\
Each rank runs `swerl COMMAND...` with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, \
MASTER_ADDR and MASTER_PORT set; the launcher hosts the rendezvous store on a free port. \
For several nodes use torchrun, srun or a PyTorchJob (configs/recipes/multi-gpu.sh)."
)]
pub struct Args {
    /// Ranks to start on this node.
    #[arg(long, value_name = "N")]
    pub nproc: usize,
    /// Seconds the other ranks get to exit after one has failed, before they are killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub grace_s: u64,
    /// The swerl subcommand and its arguments, after `--`.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let program = std::env::current_exe().context("locating the swerl binary to launch")?;
    let spec = swerl_dist::LaunchSpec {
        nproc: args.nproc,
        program,
        args: args.command,
        env: Vec::new(),
        grace: Duration::from_secs(args.grace_s),
        deadline: None,
    };
    swerl_dist::launch(&spec)?;
    Ok(ExitCode::SUCCESS)
}
