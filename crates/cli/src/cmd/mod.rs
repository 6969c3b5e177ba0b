//! One module per subcommand; each exposes `Args` (clap) and `run(Args) -> Result<ExitCode>`.

pub mod bench;
pub mod demo;
pub mod eval;
pub mod grade;
pub mod launch;
pub mod merge;
pub mod model;
pub mod prepare;
pub mod rft;
pub mod rl;
pub mod rollout;
pub mod serve;
pub mod train;
pub mod validate;
