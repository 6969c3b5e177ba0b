//! `swerl`: train software-engineering agents with RFT and multi-turn DAPO.
//!
//! `main` is a short dispatch over subcommands; each lives in its own module under `cmd/`
//! and owns its arguments. Only this crate reads config files and environment variables.

mod cmd;
mod common;

use clap::{Parser, Subcommand};

/// Train software-engineering agents with reinforcement learning.
///
/// The whole pipeline (rollouts -> grading -> RFT -> DAPO -> evaluation) runs on an embedded
/// default: bundled tasks, a local bubblewrap sandbox and an in-process policy model. Start
/// with `swerl validate --tasks tasks/bundled/tasks.jsonl`, then `swerl rollout`.
#[derive(Debug, Parser)]
#[command(
    name = "swerl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `swerl_env=debug`.
    #[arg(long, global = true, default_value = "warn", env = "SWERL_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole pipeline in miniature on the embedded default: base model -> RFT -> DAPO
    /// stage 1 -> DAPO stage 2, evaluated after each; Table 1 and an HTML report.
    Demo(cmd::demo::Args),
    /// Build each task's Python environment for the local sandbox (SWE-bench's spec for its
    /// repo and version, or the row's install_config), shared between tasks that can share it.
    Prepare(cmd::prepare::Args),
    /// Check tasks: test patch alone fails FAIL_TO_PASS, gold patch resolves, empty patch does not.
    Validate(cmd::validate::Args),
    /// Grade SWE-bench prediction files (instance_id, model_name_or_path, model_patch).
    Grade(cmd::grade::Args),
    /// Policy-model utilities (score token sequences).
    Model(cmd::model::Args),
    /// RL math utilities (evaluate the policy loss on given arrays).
    Rl(cmd::rl::Args),
    /// Run the tools' performance benchmarks and record them in BENCHMARKS.md.
    Bench(cmd::bench::Args),
    /// Serve a model over an OpenAI-compatible HTTP API (completions, chat, token ids, log-probs).
    Serve(cmd::serve::Args),
    /// Run G episodes per task in sandboxes, grade them, append trajectories (resumable).
    Rollout(cmd::rollout::Args),
    /// Evaluate: k runs per task, Pass@1 +- SEM, Pass@k, SWE-bench predictions (or --from DIR).
    Eval(cmd::eval::Args),
    /// Rejection fine-tuning: SFT on resolved trajectories, writes a Hugging Face-layout model.
    Rft(cmd::rft::Args),
    /// Multi-turn DAPO: rollouts, advantages, clipped updates, weight sync (resumable).
    Train(cmd::train::Args),
    /// Start N ranks of a swerl command on this node (like torchrun --nproc-per-node N).
    Launch(cmd::launch::Args),
    /// Fold a LoRA adapter into its base model: a plain Hugging Face model directory.
    Merge(cmd::merge::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Prepare(args) => cmd::prepare::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Grade(args) => cmd::grade::run(args),
        Command::Model(args) => cmd::model::run(args),
        Command::Rl(args) => cmd::rl::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Rollout(args) => cmd::rollout::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Rft(args) => cmd::rft::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Launch(args) => cmd::launch::run(args),
        Command::Merge(args) => cmd::merge::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
