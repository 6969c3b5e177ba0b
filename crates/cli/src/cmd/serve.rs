//! `swerl serve`: an OpenAI-compatible server (completions and chat completions, token ids
//! and log-probs) over the embedded engine, so other scaffolds can sample from our models
//! and the HTTP policy backend can be tested against a real server. `swerl train --policy
//! http:...` syncs weights into it through SGLang's `POST /update_weights_from_disk`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use swerl_policy::server;
use swerl_policy::EngineConfig;

/// Serve a model over an OpenAI-compatible HTTP API (vLLM's token-id conventions).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hugging Face model directory: config.json, model.safetensors (or shards),
    /// tokenizer.json, tokenizer_config.json with a chat template.
    #[arg(long)]
    model: PathBuf,
    /// Address to listen on. The server has no authentication: keep it on loopback
    /// unless the network is trusted.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port (0 = any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Compute device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Most requests batched into one generation.
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// After a batch's first request, wait this many milliseconds for more.
    #[arg(long, default_value_t = 0)]
    gather_ms: u64,
    /// Name clients pass as `model` (default: the directory's name).
    #[arg(long)]
    served_model_name: Option<String>,
    /// Seed of requests that bring none.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    #[command(flatten)]
    engine: crate::common::EngineArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let device = swerl_model::device::resolve_device(&args.device)?;
    let engine_config = EngineConfig {
        gather: Duration::from_millis(args.gather_ms),
        ..args.engine.config(args.max_batch)
    };
    let (engine, state) = server::load_model_dir(
        &args.model,
        device,
        engine_config,
        args.served_model_name,
        args.seed,
    )
    .with_context(|| format!("cannot serve {}", args.model.display()))?;
    if !args.host.is_loopback() {
        tracing::warn!(host = %args.host, "serving on a non-loopback address without authentication");
    }
    let name = state.model_name.clone();
    let addr = SocketAddr::new(args.host, args.port);
    server::run_until_ctrl_c(server::router(state), addr, args.workers, |bound| {
        eprintln!("serving `{name}` on http://{bound}/v1 (completions, chat/completions, models; /health; POST /update_weights_from_disk reloads weights); Ctrl-C stops");
    })
    .with_context(|| format!("cannot listen on {addr}"))?;
    engine.shutdown();
    Ok(ExitCode::SUCCESS)
}
