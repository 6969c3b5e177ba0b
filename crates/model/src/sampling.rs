//! Sampling parameters and the per-step sampler.
//!
//! The sampler returns, with each token, its log-prob under the model's FULL distribution at
//! temperature T, `log_softmax(logits / T)`, even when top-p/top-k/min-p truncate what may be
//! sampled. RL training (docs/method.md section 6) divides the trainer's probability by this
//! number; with truncation on, the tokens actually come from a different (truncated)
//! distribution and that ratio is wrong, which is why [`SamplingParams::warnings`] exists.

use tch::{Kind, Tensor};

/// A sampling parameter out of range.
#[derive(Debug, thiserror::Error)]
#[error("sampling parameter `{field}` is {value}; {expected}")]
pub struct SamplingError {
    pub field: &'static str,
    pub value: f64,
    pub expected: &'static str,
}

/// How the next token is chosen from the model's logits.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy (argmax).
    pub temperature: f64,
    /// Nucleus sampling: keep the smallest set of tokens with this much mass (1.0 = off).
    pub top_p: f64,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens with probability below `min_p` times the top probability (0 = off).
    pub min_p: f64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::rollout_default()
    }
}

impl SamplingParams {
    /// The only setting that keeps the RL importance ratio honest: temperature 1.0, no
    /// truncation of any kind.
    pub fn rollout_default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
        }
    }

    /// Argmax decoding.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            ..Self::rollout_default()
        }
    }

    /// True for argmax decoding.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// True when some tokens of the tempered distribution can never be sampled.
    pub fn truncates(&self) -> bool {
        self.top_p < 1.0 || self.top_k > 0 || self.min_p > 0.0
    }

    /// Checks ranges: temperature >= 0, top_p in (0, 1], min_p in [0, 1).
    pub fn validate(&self) -> Result<(), SamplingError> {
        let err = |field, value, expected| {
            Err(SamplingError {
                field,
                value,
                expected,
            })
        };
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return err(
                "temperature",
                self.temperature,
                "expected a finite value >= 0 (0 = greedy)",
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return err("top_p", self.top_p, "expected 0 < top_p <= 1 (1 = off)");
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return err("min_p", self.min_p, "expected 0 <= min_p < 1 (0 = off)");
        }
        Ok(())
    }

    /// Loud warnings for a configuration used for RL rollouts: anything other than plain
    /// temperature-1.0 sampling makes the sampler's distribution differ from the one whose
    /// log-probs are recorded, so the importance ratio pi_theta / pi_old is wrong.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.truncates() {
            out.push(format!(
                "WARNING: rollout sampling truncates the distribution (top_p={}, top_k={}, min_p={}): \
                 tokens come from a truncated distribution but log-probs are recorded under the full one, \
                 so the RL importance ratio is wrong and training can destabilise \
                 (docs/method.md section 6). Use SamplingParams::rollout_default() \
                 (top_p=1, top_k=0, min_p=0).",
                self.top_p, self.top_k, self.min_p
            ));
        }
        if self.temperature != 1.0 {
            out.push(format!(
                "WARNING: rollout temperature is {} (not 1.0): recorded log-probs are of the tempered \
                 distribution, not the policy the trainer differentiates.",
                self.temperature
            ));
        }
        out
    }
}

/// One sampling step's result: token ids [B] (i64) and their full-distribution log-probs [B] (f32).
#[derive(Debug)]
pub struct Sampled {
    pub ids: Tensor,
    pub logprobs: Tensor,
}

/// Picks one token per row of `logits` [B, V] using one uniform number in [0, 1) per row,
/// `uniforms` [B] (drawn per request from its own seeded generator, so results do not depend
/// on the global torch RNG or on the other requests in the batch).
pub fn sample(logits: &Tensor, params: &SamplingParams, uniforms: &Tensor) -> Sampled {
    let logits = logits.to_kind(Kind::Float);
    if params.is_greedy() {
        let ids = logits.argmax(-1, false);
        let logprobs = logits
            .log_softmax(-1, Kind::Float)
            .gather(-1, &ids.unsqueeze(-1), false)
            .squeeze_dim(-1);
        return Sampled { ids, logprobs };
    }
    let scaled = logits / params.temperature; // [B, V]
    let full = scaled.log_softmax(-1, Kind::Float);
    let allowed = truncate(&scaled, params);
    let ids = inverse_cdf(&allowed.softmax(-1, Kind::Float), uniforms);
    let logprobs = full.gather(-1, &ids.unsqueeze(-1), false).squeeze_dim(-1);
    Sampled { ids, logprobs }
}

/// Sets the logits of tokens that top-k, top-p or min-p exclude to -inf (in that order, as
/// transformers applies them).
pub fn truncate(scaled: &Tensor, params: &SamplingParams) -> Tensor {
    let mut logits = scaled.shallow_clone();
    let vocab = logits.size()[1];
    if params.top_k > 0 && (params.top_k as i64) < vocab {
        let (values, _) = logits.topk(params.top_k as i64, -1, true, true);
        let kth = values.narrow(1, params.top_k as i64 - 1, 1); // [B, 1]
        logits = logits.masked_fill(&logits.lt_tensor(&kth), f64::NEG_INFINITY);
    }
    if params.top_p < 1.0 {
        let (sorted, order) = logits.sort(-1, true);
        let probs = sorted.softmax(-1, Kind::Float);
        // Mass strictly before each token: the most likely token always survives.
        let before = probs.cumsum(-1, Kind::Float) - &probs;
        let drop_sorted = before.gt(params.top_p);
        let drop = drop_sorted.zeros_like().scatter(-1, &order, &drop_sorted);
        logits = logits.masked_fill(&drop, f64::NEG_INFINITY);
    }
    if params.min_p > 0.0 {
        let probs = logits.softmax(-1, Kind::Float);
        let threshold = probs.amax(-1, true) * params.min_p;
        logits = logits.masked_fill(&probs.lt_tensor(&threshold), f64::NEG_INFINITY);
    }
    logits
}

/// Index of the first token whose cumulative probability exceeds u * total, per row.
/// Tokens of zero probability are never chosen: the cumulative sum does not rise there.
fn inverse_cdf(probs: &Tensor, uniforms: &Tensor) -> Tensor {
    let cdf = probs.cumsum(-1, Kind::Float); // [B, V]
    let vocab = cdf.size()[1];
    let total = cdf.narrow(1, vocab - 1, 1); // [B, 1]
    let threshold = uniforms
        .to_kind(Kind::Float)
        .to_device(cdf.device())
        .unsqueeze(-1)
        * total;
    cdf.le_tensor(&threshold)
        .sum_dim_intlist(-1, false, Kind::Int64)
        .clamp_max(vocab - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Tensor {
        // probabilities 0.5, 0.25, 0.125, 0.125
        Tensor::from_slice(&[0.5f32, 0.25, 0.125, 0.125])
            .log()
            .unsqueeze(0)
    }

    fn allowed(params: &SamplingParams) -> Vec<bool> {
        let t = truncate(&logits(), params).isfinite().squeeze_dim(0);
        Vec::<bool>::try_from(t).unwrap()
    }

    #[test]
    fn rollout_default_has_no_warnings() {
        assert!(SamplingParams::rollout_default().warnings().is_empty());
        assert!(!SamplingParams::rollout_default().truncates());
    }

    #[test]
    fn truncating_rollout_config_warns() {
        let p = SamplingParams {
            top_k: 20,
            ..SamplingParams::rollout_default()
        };
        let w = p.warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("importance ratio"), "{w:?}");
        let p = SamplingParams {
            min_p: 0.05,
            temperature: 0.7,
            ..SamplingParams::rollout_default()
        };
        assert_eq!(p.warnings().len(), 2);
    }

    #[test]
    fn top_k_keeps_k_tokens() {
        let p = SamplingParams {
            top_k: 2,
            ..SamplingParams::rollout_default()
        };
        assert_eq!(allowed(&p), vec![true, true, false, false]);
    }

    #[test]
    fn top_p_keeps_smallest_set_reaching_p() {
        let p = SamplingParams {
            top_p: 0.7,
            ..SamplingParams::rollout_default()
        };
        assert_eq!(allowed(&p), vec![true, true, false, false]);
        let p = SamplingParams {
            top_p: 0.4,
            ..SamplingParams::rollout_default()
        };
        assert_eq!(allowed(&p), vec![true, false, false, false]);
    }

    #[test]
    fn min_p_drops_tokens_below_fraction_of_top() {
        let p = SamplingParams {
            min_p: 0.3,
            ..SamplingParams::rollout_default()
        };
        assert_eq!(allowed(&p), vec![true, true, false, false]);
    }

    #[test]
    fn inverse_cdf_picks_by_cumulative_mass() {
        let probs = Tensor::from_slice(&[0.5f32, 0.0, 0.25, 0.25])
            .unsqueeze(0)
            .repeat([4, 1]);
        let u = Tensor::from_slice(&[0.0f32, 0.49, 0.5, 0.99]);
        let ids = Vec::<i64>::try_from(inverse_cdf(&probs, &u)).unwrap();
        assert_eq!(ids, vec![0, 0, 2, 3]);
    }

    #[test]
    fn logprob_is_of_the_full_distribution_even_when_truncated() {
        let p = SamplingParams {
            top_k: 1,
            temperature: 1.0,
            ..SamplingParams::rollout_default()
        };
        let s = sample(&logits(), &p, &Tensor::from_slice(&[0.9f32]));
        assert_eq!(s.ids.int64_value(&[0]), 0);
        assert!((s.logprobs.double_value(&[0]) - 0.5f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn temperature_scales_the_recorded_logprob() {
        let p = SamplingParams {
            temperature: 2.0,
            ..SamplingParams::rollout_default()
        };
        let s = sample(&logits(), &p, &Tensor::from_slice(&[0.0f32]));
        let expected = (logits() / 2.0)
            .log_softmax(-1, Kind::Float)
            .double_value(&[0, 0]);
        assert_eq!(s.ids.int64_value(&[0]), 0);
        assert!((s.logprobs.double_value(&[0]) - expected).abs() < 1e-6);
    }

    #[test]
    fn validate_rejects_out_of_range() {
        assert!(SamplingParams {
            top_p: 0.0,
            ..SamplingParams::rollout_default()
        }
        .validate()
        .is_err());
        assert!(SamplingParams {
            temperature: -1.0,
            ..SamplingParams::rollout_default()
        }
        .validate()
        .is_err());
        assert!(SamplingParams::greedy().validate().is_ok());
    }
}
