//! The DAPO policy update of one iteration (docs/method.md section 6): recompute the old
//! log-probs with the trainer, then one optimizer step per mini-batch with the clip-higher
//! loss, token-level mean over all action tokens of the mini-batch.

use swerl_model::logprobs::logprobs_from_hidden;
use swerl_model::qwen2::Qwen2;
use swerl_rl::loss::{
    policy_loss, LossAggregation, LossMetrics, PolicyLossConfig, PolicyLossInputs,
};
use tch::{Kind, Tensor};

use crate::batch::{micro_batches, pad, pad_rows, Sequence};
use crate::learner::Learner;
use crate::sft::StepConfig;
use crate::step::{accumulate, MicroTensors};

/// Log-probs of every token of every sequence under the current model, without gradients:
/// `out[i][t]` = log p(`ids[t]` | `ids[..t]`), `out[i][0]` = 0. These are the "old" log-probs
/// the importance ratio is measured against (the trainer's recompute, the paper's default).
pub fn recompute_logprobs(model: &Qwen2, seqs: &[Sequence], cfg: &StepConfig) -> Vec<Vec<f32>> {
    let mut out = vec![Vec::new(); seqs.len()];
    tch::no_grad(|| {
        for idx in micro_batches(seqs, cfg.micro_batch_tokens) {
            let padded = pad(seqs, &idx, 0);
            let mb = MicroTensors::new(&padded, model.device());
            let hidden = model.forward_hidden(&mb.input, None);
            let (lp, _) =
                logprobs_from_hidden(model, &hidden, &mb.targets, cfg.pass.logprob_chunk, false);
            let lp = lp.to_kind(Kind::Float).to_device(tch::Device::Cpu);
            for (row, &i) in idx.iter().enumerate() {
                let n = seqs[i].ids.len() as i64;
                let tail: Vec<f32> =
                    Vec::try_from(lp.get(row as i64).narrow(0, 0, n - 1)).expect("f32 row");
                out[i] = std::iter::once(0.0).chain(tail).collect();
            }
        }
    });
    out
}

/// What one policy step did: the loss metrics aggregated over the mini-batch (token-weighted
/// means; min/max over all tokens), the gradient norm and the learning rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PolicyStepStats {
    pub loss: f64,
    pub action_tokens: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub metrics: LossMetrics,
}

/// One optimizer step on the mini-batch `seqs`, with `old[i]` from [`recompute_logprobs`]
/// (or the sampler's log-probs, if configured so).
pub fn policy_step(
    learner: &mut Learner,
    seqs: &[Sequence],
    old: &[Vec<f32>],
    lr: f64,
    cfg: &StepConfig,
    loss_cfg: &PolicyLossConfig,
) -> Result<PolicyStepStats, swerl_rl::loss::LossError> {
    let Learner { model, trainable } = learner;
    let action_tokens: usize = seqs.iter().map(|s| s.trained_tokens()).sum();
    // Token mean over the whole mini-batch, exact under accumulation: every chunk divides by
    // the mini-batch's token count.
    let mut loss_cfg = *loss_cfg;
    if loss_cfg.aggregation == LossAggregation::TokenMean {
        loss_cfg.aggregation = LossAggregation::Constant(action_tokens.max(1) as f64);
    }
    crate::step::seed_dropout(model, trainable.step);
    trainable.zero_grad();
    let mut acc = MetricsAcc::default();
    let mut error = None;
    let mut loss = 0.0;
    for idx in micro_batches(seqs, cfg.micro_batch_tokens) {
        let padded = pad(seqs, &idx, 0);
        let mb = MicroTensors::new(&padded, model.device());
        let old_flat = pad_rows(old, &idx, padded.len);
        let old_flat = MicroTensors::shifted(&padded, &old_flat, model.device());
        let pass = crate::step::PassOptions {
            entropy: true,
            ..cfg.pass
        };
        loss += accumulate(model, &mb, &pass, |stats, start, len| {
            let row = |t: &Tensor| t.narrow(0, start, len).unsqueeze(0);
            let lp = stats.logprobs.unsqueeze(0);
            let (old_lp, sampler, adv, mask) = (
                row(&old_flat),
                row(&mb.sampler_logprobs),
                row(&mb.advantages),
                row(&mb.mask),
            );
            let entropies = stats.entropy.as_ref().map(|e| e.unsqueeze(0));
            let inputs = PolicyLossInputs {
                logprobs: &lp,
                old_logprobs: &old_lp,
                advantages: &adv,
                mask: &mask,
                sampler_logprobs: Some(&sampler),
                ref_logprobs: None,
                entropies: entropies.as_ref(),
            };
            match policy_loss(&inputs, &loss_cfg) {
                Ok(out) => {
                    acc.add(&out.metrics);
                    out.loss
                }
                Err(e) => {
                    error.get_or_insert(e);
                    (&lp * 0.0).sum(Kind::Float)
                }
            }
        });
        trainable.grads_to_f32();
    }
    if let Some(e) = error {
        trainable.zero_grad();
        return Err(e);
    }
    let grad_norm = trainable.step(lr, cfg.max_grad_norm);
    Ok(PolicyStepStats {
        loss,
        action_tokens: action_tokens as f64,
        grad_norm,
        lr,
        metrics: acc.finish(),
    })
}

/// Token-weighted accumulation of per-chunk loss metrics.
#[derive(Debug, Default)]
struct MetricsAcc {
    tokens: f64,
    sums: [f64; 5],
    ratio_min: Option<f64>,
    ratio_max: Option<f64>,
}

impl MetricsAcc {
    fn add(&mut self, m: &LossMetrics) {
        if m.tokens <= 0.0 {
            return;
        }
        let w = m.tokens;
        let vals = [
            m.clip_low,
            m.clip_high,
            m.ratio_mean,
            m.entropy.unwrap_or(f64::NAN),
            m.kl_sampler_trainer_k3.unwrap_or(f64::NAN),
        ];
        for (s, v) in self.sums.iter_mut().zip(vals) {
            *s += v * w;
        }
        self.tokens += w;
        self.ratio_min = Some(self.ratio_min.map_or(m.ratio_min, |x| x.min(m.ratio_min)));
        self.ratio_max = Some(self.ratio_max.map_or(m.ratio_max, |x| x.max(m.ratio_max)));
    }

    fn finish(&self) -> LossMetrics {
        let mean = |i: usize| {
            if self.tokens > 0.0 {
                self.sums[i] / self.tokens
            } else {
                f64::NAN
            }
        };
        LossMetrics {
            clip_low: mean(0),
            clip_high: mean(1),
            ratio_mean: mean(2),
            ratio_min: self.ratio_min.unwrap_or(f64::NAN),
            ratio_max: self.ratio_max.unwrap_or(f64::NAN),
            entropy: Some(mean(3)),
            kl_sampler_trainer_k1: None,
            kl_sampler_trainer_k3: Some(mean(4)),
            kl_reference: None,
            tokens: self.tokens,
        }
    }
}
