//! `swerl bench train`: action tokens/s of one DAPO policy step, ours vs the same step in
//! PyTorch eager (crates/model/reference/bench_train_torch.py) on the same model config and
//! synthetic batch, alternating rounds in one run; and, from a `swerl train` run's
//! metrics.jsonl, the share of each iteration that is neither rollouts (generation,
//! environment, grading) nor training compute.

use std::path::Path;

use anyhow::Context;
use swerl_rl::metrics as m;
use swerl_train::bench::{synthetic_batch, time_policy_steps};
use swerl_train::config::DapoConfig;
use swerl_train::sft::StepConfig;

/// The knobs of `swerl bench train`.
#[derive(Debug, Clone)]
pub struct TrainBench {
    pub threads: i32,
    pub rounds: usize,
    pub iters: usize,
    pub lens: Vec<usize>,
    pub python: String,
}

const SCRIPT: &str = "crates/model/reference/bench_train_torch.py";

/// The speed table, then the overhead table of `run` if given.
pub fn bench_train(b: &TrainBench, run: Option<&Path>) -> anyhow::Result<String> {
    let mut md = String::new();
    if b.rounds > 0 {
        md.push_str(&speed(b)?);
    }
    if let Some(run) = run {
        md.push_str(&overhead(run)?);
    }
    Ok(md)
}

/// Our step: `swerl_train::dapo::policy_step` with the DAPO defaults (lr, clip range, grad
/// clipping, log-prob chunk), the whole batch in one micro-batch, activation checkpointing
/// as asked.
fn ours(b: &TrainBench, checkpointing: bool) -> anyhow::Result<f64> {
    tch::set_num_threads(b.threads);
    tch::manual_seed(0);
    let config = DapoConfig::stage1();
    let model = swerl_model::qwen2::Qwen2::new(
        swerl_model::bench::bench_config(),
        tch::Device::Cpu,
        tch::Kind::Float,
    );
    let vocab = model.config.vocab_size;
    let mut learner = swerl_train::Learner::new(model, swerl_train::AdamWConfig::default());
    let (seqs, old) = synthetic_batch(vocab, &b.lens);
    let width = b.lens.iter().max().copied().unwrap_or(0);
    let step = StepConfig {
        micro_batch_tokens: width * b.lens.len(),
        max_grad_norm: config.max_grad_norm,
        pass: swerl_train::step::PassOptions {
            checkpointing,
            ..config.pass
        },
    };
    let loss = swerl_rl::loss::PolicyLossConfig::new(config.clip);
    let t = time_policy_steps(&mut learner, &seqs, &old, config.lr, &step, &loss, b.iters)?;
    Ok(t.tokens_per_s())
}

/// The PyTorch step, in a fresh interpreter (bench_train_torch.py prints one JSON line).
fn torch(b: &TrainBench, checkpointing: bool) -> anyhow::Result<f64> {
    let mut argv = vec![
        SCRIPT.to_string(),
        b.threads.to_string(),
        b.iters.to_string(),
    ];
    if checkpointing {
        argv.push("--checkpointing".into());
    }
    argv.extend(b.lens.iter().map(usize::to_string));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = swerl_sandbox::host_command_checked(&b.python, &argv, Path::new(".")).with_context(
        || {
            format!(
                "running {SCRIPT} with {} (make it with scripts/setup-reference)",
                b.python
            )
        },
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or(""))
        .with_context(|| format!("{SCRIPT} printed no JSON line: {text}"))?;
    json["action_tokens_per_s"]
        .as_f64()
        .with_context(|| format!("{SCRIPT}: no action_tokens_per_s in {json}"))
}

/// One row of the speed table: both sides with the same activation checkpointing setting,
/// alternating rounds so that a noisy stretch of the machine hits both.
#[derive(Debug)]
struct SpeedRow {
    checkpointing: bool,
    ours: Vec<f64>,
    torch: Vec<f64>,
}

impl SpeedRow {
    fn measure(b: &TrainBench, checkpointing: bool) -> anyhow::Result<SpeedRow> {
        let mut row = SpeedRow {
            checkpointing,
            ours: Vec::new(),
            torch: Vec::new(),
        };
        for round in 0..b.rounds {
            eprintln!(
                "checkpointing {checkpointing}: round {}/{}",
                round + 1,
                b.rounds
            );
            row.ours.push(ours(b, checkpointing)?);
            row.torch.push(torch(b, checkpointing)?);
        }
        Ok(row)
    }

    /// The table line and the per-round figures behind it. The headline compares each
    /// side's best round: on a shared machine interference only ever slows a round down, so
    /// the fastest round is the least disturbed estimate of what the code itself costs (the
    /// rule of Python's timeit); the ratio of medians is shown beside it.
    fn render(&self) -> (String, String) {
        let best = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
        let (ours, torch) = (best(&self.ours), best(&self.torch));
        let median_ratio = super::median(self.ours.clone()) / super::median(self.torch.clone());
        let what = if self.checkpointing {
            "DAPO policy step, activation checkpointing (both)"
        } else {
            "DAPO policy step, no checkpointing (both)"
        };
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        (
            format!(
                "| {what} | {ours:.1} | {torch:.1} | {:.2} | {median_ratio:.2} | >= 0.95 |\n",
                ours / torch
            ),
            format!(
                "{what}: swerl {}; PyTorch {}.\n",
                fmt(&self.ours),
                fmt(&self.torch)
            ),
        )
    }
}

fn speed(b: &TrainBench) -> anyhow::Result<String> {
    let rows = [SpeedRow::measure(b, false)?, SpeedRow::measure(b, true)?];
    let (seqs, _) = synthetic_batch(32_000, &b.lens);
    let action: usize = seqs.iter().map(|s| s.trained_tokens()).sum();
    let mut md = format!(
        "One DAPO policy step (forward, log-probs with entropies, clip-higher token-mean loss \
         and its metrics, backward, gradient clipping to 1.0, AdamW lr 1e-6 wd 0.1) on a fixed \
         synthetic batch: {} sequences of {:?} tokens, right-padded, {action} action tokens \
         (64-token prompt, then turns of 48 sampled + 32 observation tokens). Model: \
         swerl_model::bench::bench_config() (vocab 32000, hidden 512, 4 layers), f32, CPU, \
         {} thread(s); {} timed steps after one warm-up per round, {} alternating rounds \
         (best round of each side; ratio of medians beside it). Ours: swerl_train::dapo::policy_step (chunked log-probs, 1024 positions per \
         chunk; with checkpointing, each decoder layer is recomputed in the backward pass). \
         PyTorch: transformers Qwen2ForCausalLM (sdpa), full logits, torch.optim.AdamW; with \
         checkpointing, transformers' gradient checkpointing of every decoder layer \
         ({SCRIPT}). Stage 1 and 2 train with checkpointing on (the 65k-131k contexts need \
         it); the demo's small contexts train without.\n\n\
         | action tokens/s (best round) | swerl | PyTorch eager | ratio | ratio of medians | target |\n\
         |---|---:|---:|---:|---:|---|\n",
        b.lens.len(),
        b.lens,
        b.threads,
        b.iters,
        b.rounds,
    );
    let rendered: Vec<(String, String)> = rows.iter().map(SpeedRow::render).collect();
    rendered.iter().for_each(|(line, _)| md.push_str(line));
    md.push_str("\nRounds (action tokens/s):\n\n");
    rendered
        .iter()
        .for_each(|(_, rounds)| md.push_str(&format!("- {rounds}")));
    Ok(md)
}

/// Per iteration of `run`'s metrics.jsonl: where the wall time went, and the share that is
/// neither rollouts nor training compute (checkpoint + weight sync, data preparation,
/// bookkeeping, evaluation).
fn overhead(run: &Path) -> anyhow::Result<String> {
    let path = run.join("metrics.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let info: serde_json::Value = std::fs::read_to_string(run.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let c = &info["config"];
    let mut md = format!(
        "\nThe run: {} problems x {} rollouts per iteration, at most {} turns, initial model `{}`, \
         tasks `{}`.\n",
        c["problems_per_iteration"],
        c["group_size"],
        c["max_turns"],
        info["versions"]["initial_model"].as_str().unwrap_or("?"),
        info["versions"]["tasks"].as_str().unwrap_or("?"),
    );
    md.push_str(&format!(
        "\nIteration time of the `swerl train` run in `{}` (from its metrics.jsonl). Rollouts = \
         generation + environment + grading (the collection's wall time); training = old \
         log-prob recompute + policy steps; overhead = everything else (rollout files, \
         advantages and batching, checkpoint + weight sync, metrics). Target: overhead under 2%.\n\n\
         | iteration | trajectories trained | total s | rollouts s | training s | checkpoint + sync s | other s | overhead share |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
        run.display()
    ));
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: not JSON: {line}", path.display()))?;
        let v = |k: &str| row[k].as_f64().unwrap_or(0.0);
        let total = v(m::TIME_ITERATION);
        let rollouts = v(m::TIME_GENERATION) + v(m::TIME_ENV) + v(m::TIME_GRADING);
        let (training, sync) = (v(m::TIME_TRAINING), v(m::TIME_SYNC));
        let other = (total - rollouts - training - sync).max(0.0);
        md.push_str(&format!(
            "| {} | {} | {total:.2} | {rollouts:.2} | {training:.2} | {sync:.3} | {other:.3} | {:.2}% |\n",
            row["step"],
            v(m::SAMPLES_TRAINED),
            100.0 * (sync + other) / total.max(f64::MIN_POSITIVE)
        ));
    }
    Ok(md)
}
