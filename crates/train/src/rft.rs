//! Rejection fine-tuning (docs/method.md section 5) as a driver: resolved trajectories ->
//! supervised sequences -> seeded shuffle -> mini-batch SFT steps under warmup + cosine ->
//! a Hugging Face-layout model, a per-step metrics file and a loss plot.

use std::path::Path;

use swerl_trajectory::Trajectory;

use crate::batch::{truncate, Sequence, Truncation};
use crate::data::{rft_sequences, Keep, Selection};
use crate::learner::Learner;
use crate::metrics_log::{MetricsLog, MetricsRow};
use crate::sampling::SplitMix64;
use crate::schedule::LrSchedule;
use crate::sft::{sft_step, SftStats, StepConfig};
use crate::step::PassOptions;

/// RFT hyper-parameters; defaults are the paper's (1 epoch, LR 5e-6, 10 warmup steps then
/// cosine to 0, batch 64, 65k context, grad clip 1.0; AdamW wd 0.1 lives in the learner).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RftConfig {
    pub epochs: usize,
    pub lr: f64,
    pub warmup: u64,
    /// Trajectories per optimizer step.
    pub batch: usize,
    pub max_context: usize,
    pub seed: u64,
    /// Resolved trajectories only (RFT, the default) or every graded one (plain SFT).
    pub keep: Keep,
    #[serde(skip)]
    pub step: StepConfig,
}

impl Default for RftConfig {
    fn default() -> Self {
        RftConfig {
            epochs: 1,
            lr: 5e-6,
            warmup: 10,
            batch: 64,
            max_context: 65_536,
            seed: 0,
            keep: Keep::Resolved,
            step: StepConfig {
                micro_batch_tokens: 65_536,
                max_grad_norm: 1.0,
                pass: PassOptions::default(),
            },
        }
    }
}

/// What an RFT run kept, cut and learned.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RftReport {
    pub selection: Selection,
    pub truncation: Truncation,
    pub steps: u64,
    pub trained_tokens: usize,
    /// Loss of the first and last optimizer step (mean NLL per trained token, pre-update).
    pub first_loss: f64,
    pub last_loss: f64,
}

/// Why RFT could not run.
#[derive(Debug, thiserror::Error)]
pub enum RftError {
    #[error("no trajectory is usable for RFT ({0:?}): RFT trains on resolved trajectories only (--keep all trains on every graded one); check the rollout file and its grades")]
    NothingToTrain(Selection),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("saving the model to {path}: {message}")]
    Save { path: String, message: String },
}

/// Tokenizer and generation files copied next to the trained weights so the output directory
/// is a complete model for transformers and vLLM.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "generation_config.json",
];

/// Trains `learner` on the resolved trajectories of `trajs` and writes the model (or its
/// LoRA adapter), metrics
/// (`out/metrics.jsonl`, `out/plots/loss.svg`) and `out/rft_report.json` under `out`.
/// `on_step(step, total, stats)` is called after every optimizer step (progress output).
pub fn run_rft(
    learner: &mut Learner,
    trajs: &[Trajectory],
    cfg: &RftConfig,
    out: &Path,
    on_step: &mut dyn FnMut(u64, u64, &SftStats),
) -> Result<RftReport, RftError> {
    let (mut seqs, selection) = rft_sequences(trajs, cfg.keep);
    if seqs.is_empty() {
        return Err(RftError::NothingToTrain(selection));
    }
    let truncation = truncate(&mut seqs, cfg.max_context);
    let total = total_steps(seqs.len(), cfg);
    let schedule = LrSchedule::WarmupCosine {
        peak: cfg.lr,
        warmup: cfg.warmup,
        total,
    };
    let mut log = MetricsLog::open(out, 0).map_err(io(out))?;
    let mut report = RftReport {
        selection,
        truncation,
        trained_tokens: seqs.iter().map(|s| s.trained_tokens()).sum(),
        ..RftReport::default()
    };
    for epoch in 0..cfg.epochs {
        for batch in epoch_batches(&seqs, cfg, epoch as u64) {
            let stats = sft_step(learner, &batch, schedule.lr(report.steps), &cfg.step);
            record_step(&mut report, &mut log, &stats).map_err(io(out))?;
            on_step(report.steps, total, &stats);
        }
    }
    save_outputs(learner, &report, out)?;
    Ok(report)
}

/// Optimizer steps of the whole run: `epochs * ceil(n / batch)`.
pub fn total_steps(sequences: usize, cfg: &RftConfig) -> u64 {
    (cfg.epochs * sequences.div_ceil(cfg.batch.max(1))) as u64
}

/// The mini-batches of one epoch: a shuffle seeded by `(seed, epoch)`, cut into `batch`-sized
/// pieces.
fn epoch_batches(seqs: &[Sequence], cfg: &RftConfig, epoch: u64) -> Vec<Vec<Sequence>> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    SplitMix64::new(cfg.seed, epoch).shuffle(&mut order);
    order
        .chunks(cfg.batch.max(1))
        .map(|c| c.iter().map(|&i| seqs[i].clone()).collect())
        .collect()
}

fn record_step(
    report: &mut RftReport,
    log: &mut MetricsLog,
    stats: &SftStats,
) -> std::io::Result<()> {
    if report.steps == 0 {
        report.first_loss = stats.loss;
    }
    report.last_loss = stats.loss;
    let mut row = MetricsRow::new(report.steps);
    row.set(swerl_rl::metrics::LOSS, stats.loss);
    row.set(swerl_rl::metrics::GRAD_NORM, stats.grad_norm);
    row.set(swerl_rl::metrics::LR, stats.lr);
    row.set(
        swerl_rl::metrics::TOKENS_TRAINED,
        stats.trained_tokens as f64,
    );
    report.steps += 1;
    log.push(row)
}

/// The trained policy into `out`: the adapter alone in PEFT's layout when only an adapter
/// trained (merge it with `swerl merge`), else the whole model.
fn save_outputs(learner: &Learner, report: &RftReport, out: &Path) -> Result<(), RftError> {
    let saved = match learner.model.lora() {
        Some(lora) => lora.save(out).map_err(|e| e.to_string()),
        None => swerl_model::weights::save_model(&learner.model, out, 5 << 30)
            .map_err(|e| e.to_string()),
    };
    saved.map_err(|message| RftError::Save {
        path: out.display().to_string(),
        message,
    })?;
    let text = serde_json::to_string_pretty(report).expect("report serialises");
    let path = out.join("rft_report.json");
    std::fs::write(&path, text).map_err(io(&path))
}

/// The [`TOKENIZER_FILES`] that exist in `dir`.
pub fn tokenizer_files(dir: &Path) -> Vec<std::path::PathBuf> {
    TOKENIZER_FILES
        .iter()
        .map(|name| dir.join(name))
        .filter(|p| p.is_file())
        .collect()
}

/// Copies the [`TOKENIZER_FILES`] that exist in `from` into `to`; returns the names copied.
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> Result<Vec<&'static str>, RftError> {
    let mut copied = Vec::new();
    for name in TOKENIZER_FILES {
        let src = from.join(name);
        if src.is_file() {
            std::fs::copy(&src, to.join(name)).map_err(io(&src))?;
            copied.push(*name);
        }
    }
    Ok(copied)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RftError + '_ {
    move |error| RftError::Io {
        path: path.display().to_string(),
        error,
    }
}
