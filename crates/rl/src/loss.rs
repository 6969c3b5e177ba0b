//! The clipped policy-gradient loss of multi-turn DAPO (docs/method.md section 6), on tch tensors
//! with autograd (the `tensor` feature; the configuration types are always here).
//!
//! Per action token `t` (loss mask 1), with `rho_t = exp(logp_t - old_logp_t)`:
//!
//! ```text
//! objective_t = w_t * min(rho_t * A_t, clip(rho_t, 1 - eps_low, 1 + eps_high) * A_t)
//! loss_t      = -objective_t + beta * k3_t                        (KL term only if enabled)
//! w_t         = min(exp(old_logp_t - sampler_logp_t), C)           (1 unless TIS is enabled)
//! k3_t        = exp(ref_logp_t - logp_t) - (ref_logp_t - logp_t) - 1
//! loss        = aggregate(loss_t over masked tokens)               (see LossAggregation)
//! ```
//!
//! The objective is maximised, so the returned loss is its negative. Positions with mask 0
//! (system, issue and observation tokens, padding) contribute nothing, whatever values the
//! other tensors hold there (even `-inf` log-probs are safe: they are replaced before `exp`).
//! [`crate::reference`] holds a slow scalar version of the same formula that the tests compare
//! against.

use serde::{Deserialize, Serialize};

// The loss itself needs libtorch; its configuration does not, so crates that only pass the
// configuration along (and never compute a loss) can use this crate without linking tch.
#[cfg(feature = "tensor")]
mod tensor;
#[cfg(feature = "tensor")]
pub use tensor::*;

/// How the masked per-token losses are reduced to one scalar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossAggregation {
    /// `sum_{b,t} m_bt * l_bt / sum_{b,t} m_bt`: every action token of the mini-batch weighs
    /// the same, so long trajectories are not down-weighted (DAPO, the paper). The default.
    #[default]
    TokenMean,
    /// `mean over sequences with >= 1 action token of (sum_t m_bt * l_bt / sum_t m_bt)`:
    /// GRPO's original per-sequence average, which weighs every trajectory the same.
    SeqMeanTokenMean,
    /// `sum_{b,t} m_bt * l_bt / c` for a fixed `c > 0`: Dr.GRPO's constant normaliser (e.g.
    /// the generation budget). Also the way to keep [`LossAggregation::TokenMean`] exact under
    /// gradient accumulation: pass the token count of the whole mini-batch as `c` for each
    /// micro-batch.
    Constant(f64),
}

/// The clip range `[1 - eps_low, 1 + eps_high]` of the importance ratio ("clip-higher" when
/// `eps_high > eps_low`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipRange {
    /// Lower clip: ratios below `1 - eps_low` stop pushing probability down (`A < 0`).
    pub eps_low: f64,
    /// Upper clip: ratios above `1 + eps_high` stop pushing probability up (`A > 0`).
    pub eps_high: f64,
}

impl ClipRange {
    /// DAPO's defaults: `eps_low = 0.2`, `eps_high = 0.28`.
    pub const DAPO: ClipRange = ClipRange {
        eps_low: 0.2,
        eps_high: 0.28,
    };
    /// The paper's stage 1: `(0.2, 0.3)`.
    pub const STAGE1: ClipRange = ClipRange {
        eps_low: 0.2,
        eps_high: 0.3,
    };
    /// The paper's stage 2: `(0.2, 0.26)`.
    pub const STAGE2: ClipRange = ClipRange {
        eps_low: 0.2,
        eps_high: 0.26,
    };
}

/// Correction of the importance ratio for the gap between sampler and trainer log-probs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SamplerCorrection {
    /// No correction (the default; the paper recomputes old log-probs with the trainer).
    #[default]
    None,
    /// Truncated importance sampling: multiply each token's objective by
    /// `min(exp(old_logp - sampler_logp), cap)`, a constant (no gradient). Needs sampler
    /// log-probs. `cap` is `C` in the module formula, typically 2.
    TruncatedIs {
        /// The truncation `C > 0`.
        cap: f64,
    },
}

/// An optional KL penalty towards a reference policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KlPenalty {
    /// No KL term (the default and the paper's choice).
    #[default]
    None,
    /// Add `coef * k3` per token, k3 the unbiased low-variance estimator of
    /// `KL(pi_theta || pi_ref)`. Needs reference log-probs.
    K3 {
        /// `beta >= 0`.
        coef: f64,
    },
}

/// Everything that configures [`policy_loss`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyLossConfig {
    /// Clip range of the importance ratio.
    pub clip: ClipRange,
    /// Reduction over tokens.
    #[serde(default)]
    pub aggregation: LossAggregation,
    /// Sampler/trainer correction.
    #[serde(default)]
    pub correction: SamplerCorrection,
    /// KL penalty.
    #[serde(default)]
    pub kl: KlPenalty,
}

impl PolicyLossConfig {
    /// Clip range `clip`, token mean, no correction, no KL.
    pub fn new(clip: ClipRange) -> Self {
        PolicyLossConfig {
            clip,
            aggregation: LossAggregation::TokenMean,
            correction: SamplerCorrection::None,
            kl: KlPenalty::None,
        }
    }

    /// Checks the numbers: `0 <= eps_low < 1`, `eps_high >= 0`, a positive finite constant
    /// normaliser, `cap > 0`, `coef >= 0`.
    pub fn validate(&self) -> Result<(), LossError> {
        let ClipRange { eps_low, eps_high } = self.clip;
        if !(0.0..1.0).contains(&eps_low) {
            return Err(bad(
                "eps_low",
                eps_low,
                "must be in [0, 1) so that 1 - eps_low > 0",
            ));
        }
        if !(eps_high.is_finite() && eps_high >= 0.0) {
            return Err(bad("eps_high", eps_high, "must be a finite number >= 0"));
        }
        if let LossAggregation::Constant(c) = self.aggregation {
            if !(c.is_finite() && c > 0.0) {
                return Err(bad("constant normaliser", c, "must be a finite number > 0"));
            }
        }
        if let SamplerCorrection::TruncatedIs { cap } = self.correction {
            if !(cap.is_finite() && cap > 0.0) {
                return Err(bad(
                    "tis cap",
                    cap,
                    "must be a finite number > 0 (typically 2)",
                ));
            }
        }
        if let KlPenalty::K3 { coef } = self.kl {
            if !(coef.is_finite() && coef >= 0.0) {
                return Err(bad("kl coef", coef, "must be a finite number >= 0"));
            }
        }
        Ok(())
    }
}

fn bad(name: &'static str, value: f64, rule: &'static str) -> LossError {
    LossError::BadParameter { name, value, rule }
}

/// Why the loss could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// A configuration number is out of range.
    #[error("policy loss: {name} = {value} {rule}")]
    BadParameter {
        /// Which parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// An input tensor has the wrong shape.
    #[error("policy loss: `{name}` has shape {found:?}, expected {expected}")]
    Shape {
        /// Which input.
        name: &'static str,
        /// Its shape.
        found: Vec<i64>,
        /// What was expected, in words with the numbers.
        expected: String,
    },
    /// An input lives on another device than `logprobs`.
    #[error("policy loss: `{name}` is on {found}, but `logprobs` is on {expected}; move it first")]
    Device {
        /// Which input.
        name: &'static str,
        /// Its device.
        found: String,
        /// The device of `logprobs`.
        expected: String,
    },
    /// The configuration needs an input that was not given.
    #[error("policy loss: {feature} needs `{name}`, which was not given")]
    MissingInput {
        /// The feature that needs it.
        feature: &'static str,
        /// The missing input.
        name: &'static str,
    },
}
