//! Supervised fine-tuning on kept trajectories: the optimizer step of RFT (docs/method.md
//! section 5).
//!
//! Loss = mean negative log-likelihood over every trained token of the whole batch (assistant
//! tokens of turns without a format error). The mean is over the batch, not per micro-batch, so
//! gradient accumulation gives the same update as one big batch.

use tch::Kind;

use crate::batch::{micro_batches, pad, Sequence};
use crate::learner::Learner;
use crate::step::{accumulate, MicroTensors, PassOptions};

/// Settings of one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepConfig {
    /// Padded tokens per micro-batch (the memory bound).
    pub micro_batch_tokens: usize,
    pub max_grad_norm: f64,
    pub pass: PassOptions,
}

/// What one SFT step did.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SftStats {
    /// Mean NLL per trained token, before the update.
    pub loss: f64,
    pub trained_tokens: usize,
    pub grad_norm: f64,
    pub lr: f64,
    pub micro_batches: usize,
}

/// One optimizer step on `seqs` (one mini-batch).
pub fn sft_step(learner: &mut Learner, seqs: &[Sequence], lr: f64, cfg: &StepConfig) -> SftStats {
    let Learner { model, trainable } = learner;
    let trained: usize = seqs.iter().map(|s| s.trained_tokens()).sum();
    let norm = trained.max(1) as f64;
    let batches = micro_batches(seqs, cfg.micro_batch_tokens);
    crate::step::seed_dropout(model, trainable.step);
    trainable.zero_grad();
    let mut loss = 0.0;
    for idx in &batches {
        let mb = MicroTensors::new(&pad(seqs, idx, 0), model.device());
        loss += accumulate(model, &mb, &cfg.pass, |stats, start, len| {
            let mask = mb.mask.narrow(0, start, len);
            -(&stats.logprobs * mask).sum(Kind::Float) / norm
        });
        trainable.grads_to_f32();
    }
    let grad_norm = trainable.step(lr, cfg.max_grad_norm);
    SftStats {
        loss,
        trained_tokens: trained,
        grad_norm,
        lr,
        micro_batches: batches.len(),
    }
}
