//! `swerl rft`: rejection fine-tuning (docs/method.md section 5). Reads trajectory JSONL, keeps the
//! resolved ones, fine-tunes the model on their assistant tokens and writes a Hugging
//! Face-layout model (weights, config, tokenizer files) with per-step metrics and a loss plot;
//! with `--lora RANK` it trains a LoRA adapter on the frozen model and writes the adapter in
//! PEFT's layout instead.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use swerl_train::data::Keep;
use swerl_train::rft::{copy_tokenizer_files, run_rft, RftConfig, RftReport};
use swerl_train::sft::StepConfig;
use swerl_train::step::PassOptions;
use swerl_trajectory::Trajectory;

use crate::common::lora::{load_learner, LoraArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A trajectory JSONL file, or a directory whose `*.jsonl` files are all read
    /// (repeatable: every one given is read).
    #[arg(long, value_name = "DIR_OR_FILE", required = true)]
    trajectories: Vec<PathBuf>,
    /// The base model: a Hugging Face model directory.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Output directory: the fine-tuned model (with --lora: the adapter), metrics.jsonl,
    /// plots/, rft_report.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Peak learning rate (reached after the warmup, then cosine decay to 0).
    #[arg(long, default_value_t = 5e-6)]
    lr: f64,
    /// Warmup steps.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Trajectories per optimizer step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Padded tokens per micro-batch (bounds memory; gradients accumulate across them).
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    micro_batch_tokens: usize,
    /// Tokens per training sequence; longer trajectories are truncated (and counted).
    #[arg(long, value_name = "TOKENS", default_value_t = 65_536)]
    max_context: usize,
    /// Recompute each layer in the backward pass instead of storing its activations.
    #[arg(long)]
    checkpointing: bool,
    /// Positions per log-softmax chunk.
    #[arg(long, default_value_t = 1024)]
    logprob_chunk: i64,
    /// Shuffle seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compute device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, value_name = "DTYPE", help = DTYPE_HELP)]
    dtype: Option<String>,
    /// Which graded trajectories to learn from: `resolved` (rejection fine-tuning) or `all`
    /// (plain supervised fine-tuning, e.g. on demonstrations).
    #[arg(long, value_enum, default_value_t = KeepArg::Resolved)]
    keep: KeepArg,
    #[command(flatten)]
    lora: LoraArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KeepArg {
    Resolved,
    All,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut trajs = Vec::new();
    for path in &args.trajectories {
        trajs.extend(read_all(path)?);
    }
    let lora = args.lora.config()?;
    if lora.as_ref().is_some_and(|l| l.dropout > 0.0) && args.checkpointing {
        bail!("--lora-dropout needs --checkpointing off: the layer recompute would draw other dropout masks than the forward");
    }
    let mut learner = load_learner(
        &args.model,
        &args.device,
        args.dtype.as_deref(),
        lora.as_ref(),
        args.seed,
    )?;
    let cfg = rft_config(&args);
    let report = run_rft(
        &mut learner,
        &trajs,
        &cfg,
        &args.out,
        &mut |step, total, s| {
            println!(
                "step {step}/{total} loss {:.4} lr {:.3e} grad_norm {:.3} tokens {}",
                s.loss, s.lr, s.grad_norm, s.trained_tokens
            );
        },
    )
    .with_context(|| {
        let paths: Vec<String> = args
            .trajectories
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!("RFT on {}", paths.join(", "))
    })?;
    let copied = copy_tokenizer_files(&args.model, &args.out)?;
    print_report(&report, &args.out, &copied);
    if learner.is_lora() {
        println!(
            "the output is a LoRA adapter (PEFT layout) for {}: `swerl merge --model {} --adapter {} --out DIR` writes the merged model",
            args.model.display(),
            args.model.display(),
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn rft_config(args: &Args) -> RftConfig {
    RftConfig {
        epochs: args.epochs,
        lr: args.lr,
        warmup: args.warmup,
        batch: args.batch.max(1),
        max_context: args.max_context,
        seed: args.seed,
        keep: match args.keep {
            KeepArg::Resolved => Keep::Resolved,
            KeepArg::All => Keep::All,
        },
        step: StepConfig {
            micro_batch_tokens: args.micro_batch_tokens,
            max_grad_norm: 1.0,
            pass: PassOptions {
                logprob_chunk: args.logprob_chunk.max(1),
                checkpointing: args.checkpointing,
                entropy: false,
            },
        },
    }
}

/// `--dtype` of the training commands (`rft`, `train`, `demo`).
pub const DTYPE_HELP: &str = "Working dtype of the weights: float32, or bfloat16 for mixed \
    precision (bf16 weights and activations for compute; f32 master weights, gradients and \
    AdamW moments; the bf16 weights refreshed from the masters after each step) [default: the \
    checkpoint's dtype]";

/// Every trajectory in `path` (a JSONL file, or the `*.jsonl` files of a directory in name
/// order).
pub fn read_all(path: &Path) -> anyhow::Result<Vec<Trajectory>> {
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    if files.is_empty() {
        bail!("no *.jsonl trajectory file in {}", path.display());
    }
    let mut out = Vec::new();
    for f in files {
        out.extend(swerl_rollout::read_trajectories(&f)?);
    }
    Ok(out)
}

fn print_report(r: &RftReport, out: &Path, copied: &[&str]) {
    let s = &r.selection;
    println!(
        "kept {} resolved trajectories; excluded {} unresolved, {} infrastructure failures, {} with no trained token",
        s.kept, s.rejected, s.infra_failures, s.empty
    );
    let t = &r.truncation;
    println!(
        "truncated {} sequences ({} tokens cut, {} of them trained)",
        t.sequences, t.tokens, t.trained_tokens
    );
    println!(
        "{} steps, {} trained tokens, loss {:.4} -> {:.4}; model, tokenizer files ({}) and metrics in {}",
        r.steps,
        r.trained_tokens,
        r.first_loss,
        r.last_loss,
        copied.join(", "),
        out.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use swerl_trajectory::{EpisodeStatus, GradeOutcome, GradeReport, RewardParts, Turn};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// Prompt [1, 10], one sampled turn [20, 21, 22, 2], graded `resolved`.
    fn trajectory(task: &str, resolved: bool) -> Trajectory {
        let sampled = vec![20u32, 21, 22, 2];
        let r = f64::from(u8::from(resolved));
        Trajectory {
            schema_version: swerl_trajectory::SCHEMA_VERSION,
            task_id: task.into(),
            sample_index: 0,
            attempt: 1,
            policy: serde_json::Value::Null,
            prompt_len: 2,
            turns: vec![Turn {
                assistant_start: 2,
                assistant_ids: sampled.clone(),
                assistant_logprobs: vec![-1.0; 4],
                assistant_text: String::new(),
                truncated: false,
                action: None,
                format_error: None,
                observation_ids: vec![],
                observation_text: String::new(),
                timings: Default::default(),
            }],
            token_ids: [1, 10].into_iter().chain(sampled).collect(),
            loss_mask: vec![0, 0, 1, 1, 1, 1],
            sampler_logprobs: vec![0.0, 0.0, -1.0, -1.0, -1.0, -1.0],
            status: EpisodeStatus::Submitted,
            error: None,
            final_patch: Some(String::new()),
            grade: Some(GradeReport {
                instance_id: task.into(),
                outcome: GradeOutcome::Graded,
                resolved,
                reason: String::new(),
                patch_applied: true,
                fail_to_pass: Default::default(),
                pass_to_pass: Default::default(),
                timings: Default::default(),
                log_tail: String::new(),
                test_log: String::new(),
                statuses: Default::default(),
            }),
            reward: Some(RewardParts {
                resolved: r,
                length_penalty: 0.0,
                total: r,
            }),
            timings: Default::default(),
            versions: Default::default(),
            created_at_unix_s: 0,
        }
    }

    /// A tiny f32 base model and a trajectory folder (one resolved, one not) in `dir`.
    fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
        let (base, trajs) = (dir.join("base"), dir.join("trajs"));
        tch::manual_seed(1);
        let model = swerl_model::qwen2::Qwen2::new(
            swerl_model::config::Qwen2Config::tiny(),
            tch::Device::Cpu,
            tch::Kind::Float,
        );
        swerl_model::weights::save_model(&model, &base, 1 << 30).unwrap();
        std::fs::write(base.join("tokenizer_config.json"), "{}").unwrap();
        std::fs::create_dir_all(&trajs).unwrap();
        let lines: String = [trajectory("a", true), trajectory("b", false)]
            .iter()
            .map(|t| swerl_trajectory::to_json_line(t).unwrap())
            .collect();
        std::fs::write(trajs.join("trajectories.jsonl"), lines).unwrap();
        (base, trajs)
    }

    fn rft_args(base: &Path, trajs: &Path, out: &Path, extra: &[&str]) -> Args {
        let mut argv = vec![
            "rft",
            "--trajectories",
            trajs.to_str().unwrap(),
            "--model",
            base.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--batch",
            "1",
            "--epochs",
            "3",
            "--warmup",
            "1",
        ];
        argv.extend(extra);
        Cli::parse_from(argv).args
    }

    #[test]
    fn rft_command_writes_a_complete_model_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (base, trajs) = fixture(dir.path());
        let out = dir.path().join("out");
        run(rft_args(&base, &trajs, &out, &[])).unwrap();
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer_config.json",
            "metrics.jsonl",
        ] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("rft_report.json")).unwrap())
                .unwrap();
        assert_eq!(report["selection"]["kept"], 1);
        assert_eq!(report["selection"]["rejected"], 1);
        assert_eq!(report["steps"], 3);
    }

    #[test]
    fn dtype_bfloat16_trains_in_mixed_precision_and_float16_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (base, trajs) = fixture(dir.path());
        let out = dir.path().join("bf16");
        run(rft_args(&base, &trajs, &out, &["--dtype", "bfloat16"])).unwrap();
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["torch_dtype"], "bfloat16");
        let weights = tch::Tensor::read_safetensors(out.join("model.safetensors")).unwrap();
        assert!(weights.iter().all(|(_, t)| t.kind() == tch::Kind::BFloat16));
        let err = run(rft_args(
            &base,
            &trajs,
            &dir.path().join("f16"),
            &["--dtype", "float16"],
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("pass --dtype bfloat16 or --dtype float32"),
            "{err}"
        );
    }

    /// `--lora` writes the adapter alone (PEFT's layout), which `swerl merge` folds into the
    /// base: the merged model scores as the base wearing the adapter.
    #[test]
    fn lora_writes_an_adapter_that_merges_into_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let (base, trajs) = fixture(dir.path());
        let out = dir.path().join("adapter");
        let lora = [
            "--lora",
            "4",
            "--lora-targets",
            "q_proj,v_proj,down_proj",
            "--lr",
            "1e-2",
        ];
        run(rft_args(&base, &trajs, &out, &lora)).unwrap();
        assert!(out.join(swerl_model::lora::ADAPTER_FILE).is_file());
        assert!(
            !out.join("model.safetensors").exists(),
            "no copy of the base"
        );
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(swerl_model::lora::ADAPTER_CONFIG_FILE)).unwrap(),
        )
        .unwrap();
        assert_eq!(config["r"], 4);
        assert_eq!(
            config["base_model_name_or_path"],
            base.display().to_string()
        );
        let merged = dir.path().join("merged");
        let device = tch::Device::Cpu;
        crate::cmd::merge::merge_into(&base, &out, &merged, device, None).unwrap();
        let adapted = swerl_model::lora::load_adapted(&base, &out, device, None).unwrap();
        let plain = swerl_model::weights::load_model(&merged, device, None).unwrap();
        let tokens = [1u32, 10, 20, 21, 22, 2];
        let a = swerl_model::logprobs::score_sequence(&adapted, &tokens, 4, false);
        let b = swerl_model::logprobs::score_sequence(&plain, &tokens, 4, false);
        for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        let untrained = swerl_model::weights::load_model(&base, device, None).unwrap();
        let c = swerl_model::logprobs::score_sequence(&untrained, &tokens, 4, false);
        assert_ne!(a.logprobs, c.logprobs, "the adapter trained");
        let err = run(rft_args(
            &base,
            &trajs,
            &dir.path().join("x"),
            &["--lora", "4", "--lora-dropout", "0.1", "--checkpointing"],
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("--checkpointing"), "{err}");
    }
}
