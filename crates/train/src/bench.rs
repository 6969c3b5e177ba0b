//! Benchmark kernel for `swerl bench train`: the throughput of one DAPO policy step
//! ([`policy_step`]: forward, chunked log-probs with entropies, the clip-higher loss with its
//! metrics, backward, gradient clipping, AdamW) on a fixed synthetic batch of trajectories
//! with a multi-turn loss mask. The PyTorch side is crates/model/reference/bench_train_torch.py,
//! which builds the same batch from the same formulas ([`synthetic_batch`]).
//!
//! These functions time and measure; they assert nothing (no thresholds in tests).

use std::time::Instant;

use swerl_model::qwen2::Qwen2;
use swerl_rl::loss::PolicyLossConfig;

use crate::batch::Sequence;
use crate::dapo::policy_step;
use crate::learner::Learner;
use crate::sft::StepConfig;

/// Token `t` of sequence `i` is trained when it lies in an assistant turn: after a prompt of
/// [`PROMPT_TOKENS`], turns of [`TURN_TOKENS`] whose first [`ACTION_TOKENS`] are sampled
/// (mask 1) and the rest are the observation (mask 0).
pub const PROMPT_TOKENS: usize = 64;
pub const TURN_TOKENS: usize = 80;
pub const ACTION_TOKENS: usize = 48;

/// The benchmark batch: sequences of `lens` tokens over a vocabulary of `vocab` ids, with
/// advantages +1 / -1 alternating, and "old" log-probs near a random model's (-ln V) spread
/// by +-0.25 so that some ratios clip. Returns the sequences and their old log-probs.
/// Mirrored exactly by bench_train_torch.py.
pub fn synthetic_batch(vocab: usize, lens: &[usize]) -> (Vec<Sequence>, Vec<Vec<f32>>) {
    let base = -(vocab as f32).ln();
    let mut seqs = Vec::new();
    let mut old = Vec::new();
    for (i, &n) in lens.iter().enumerate() {
        let ids = (0..n)
            .map(|t| (3 + ((i * 100_003 + t) * 7919 + 13) % (vocab - 3)) as u32)
            .collect();
        let loss_mask = (0..n)
            .map(|t| t >= PROMPT_TOKENS && (t - PROMPT_TOKENS) % TURN_TOKENS < ACTION_TOKENS)
            .collect();
        let lp: Vec<f32> = (0..n)
            .map(|t| base + 0.05 * (((i * 13 + t * 7) % 11) as f32 - 5.0))
            .collect();
        seqs.push(Sequence {
            ids,
            loss_mask,
            sampler_logprobs: lp.clone(),
            advantage: if i % 2 == 0 { 1.0 } else { -1.0 },
            source: i,
        });
        old.push(lp);
    }
    (seqs, old)
}

/// What one timing run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTiming {
    /// Trained (action) tokens of the batch.
    pub action_tokens: usize,
    /// Mean seconds per step.
    pub seconds_per_step: f64,
}

impl StepTiming {
    /// Action tokens per second.
    pub fn tokens_per_s(&self) -> f64 {
        self.action_tokens as f64 / self.seconds_per_step
    }
}

/// Times `iters` policy steps on `seqs` after one warm-up step.
pub fn time_policy_steps(
    learner: &mut Learner,
    seqs: &[Sequence],
    old: &[Vec<f32>],
    lr: f64,
    cfg: &StepConfig,
    loss_cfg: &PolicyLossConfig,
    iters: usize,
) -> Result<StepTiming, swerl_rl::loss::LossError> {
    policy_step(learner, seqs, old, lr, cfg, loss_cfg)?;
    sync(&learner.model);
    let start = Instant::now();
    for _ in 0..iters {
        policy_step(learner, seqs, old, lr, cfg, loss_cfg)?;
    }
    sync(&learner.model);
    Ok(StepTiming {
        action_tokens: seqs.iter().map(Sequence::trained_tokens).sum(),
        seconds_per_step: start.elapsed().as_secs_f64() / iters.max(1) as f64,
    })
}

fn sync(model: &Qwen2) {
    if let tch::Device::Cuda(i) = model.device() {
        tch::Cuda::synchronize(i as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_has_turns_of_actions_and_observations() {
        let (seqs, old) = synthetic_batch(512, &[300, 200]);
        assert_eq!(seqs.len(), 2);
        assert_eq!(old[1].len(), 200);
        // 300 tokens: 64 prompt, then 236 = 2 full turns (2 x 48) + 76 (48 trained).
        assert_eq!(seqs[0].trained_tokens(), 3 * ACTION_TOKENS);
        assert!(seqs
            .iter()
            .flat_map(|s| &s.ids)
            .all(|&t| (3..512).contains(&t)));
        assert_eq!((seqs[0].advantage, seqs[1].advantage), (1.0, -1.0));
    }
}
