//! A slow, obviously-correct scalar version of [`crate::loss::policy_loss`]: plain `f64`
//! loops over `Vec<Vec<f64>>`, the loss, its gradient with respect to the current log-probs,
//! and the metrics. It exists to test the fast version against; nothing in training calls it.
//!
//! Gradient of the module formula of [`crate::loss`] with respect to `logp_t`
//! (`d rho_t / d logp_t = rho_t`, aggregation weight `n_t` = `1 / sum(m)` for the token mean,
//! `1 / (sum_t' m_bt' * #non-empty sequences)` for the sequence mean, `1 / c` for a constant):
//!
//! ```text
//! d loss / d logp_t = n_t * ( -w_t * A_t * rho_t * [rho_t*A_t <= clip(rho_t)*A_t]
//!                             + beta * (1 - exp(ref_logp_t - logp_t)) )
//! ```
//!
//! The indicator says the unclipped branch of the `min` is active; on the clipped branch the
//! objective is a constant in `logp_t`. At a tie inside the clip range both branches have
//! the same slope, so the fast version (whose `minimum` splits the gradient of ties) agrees.

use crate::loss::{KlPenalty, LossAggregation, PolicyLossConfig, SamplerCorrection};

/// Inputs as nested vectors, `[B][T]`; advantages per token (broadcast them yourself).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarInputs {
    /// Current log-probs.
    pub logprobs: Vec<Vec<f64>>,
    /// Old log-probs.
    pub old_logprobs: Vec<Vec<f64>>,
    /// Per-token advantages.
    pub advantages: Vec<Vec<f64>>,
    /// Loss mask; non-zero marks an action token.
    pub mask: Vec<Vec<f64>>,
    /// Sampler log-probs (for truncated IS and the sampler/trainer KL).
    pub sampler_logprobs: Option<Vec<Vec<f64>>>,
    /// Reference log-probs (for the KL penalty).
    pub ref_logprobs: Option<Vec<Vec<f64>>>,
}

/// Loss, gradient and the clip/ratio/KL metrics, computed by plain loops.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarLoss {
    /// The loss.
    pub loss: f64,
    /// `d loss / d logprobs`, `[B][T]`, 0 where masked out.
    pub grad: Vec<Vec<f64>>,
    /// Fraction of action tokens clipped below.
    pub clip_low: f64,
    /// Fraction of action tokens clipped above.
    pub clip_high: f64,
    /// Mean ratio.
    pub ratio_mean: f64,
    /// Smallest ratio.
    pub ratio_min: f64,
    /// Largest ratio.
    pub ratio_max: f64,
    /// k1 sampler/trainer KL, if sampler log-probs were given.
    pub kl_k1: Option<f64>,
    /// k3 sampler/trainer KL, if sampler log-probs were given.
    pub kl_k3: Option<f64>,
    /// Number of action tokens.
    pub tokens: f64,
}

/// Loss, gradient and metrics of one token, before aggregation.
struct TokenTerms {
    loss: f64,
    grad: f64,
    ratio: f64,
    clipped_low: bool,
    clipped_high: bool,
}

/// The loss of [`crate::loss::policy_loss`] and its gradient, by loops. Assumes a valid
/// configuration and rectangular inputs of equal shapes (it is a test oracle).
pub fn policy_loss(inputs: &ScalarInputs, config: &PolicyLossConfig) -> ScalarLoss {
    let weights = aggregation_weights(&inputs.mask, config.aggregation);
    let mut out = ScalarLoss {
        loss: 0.0,
        grad: inputs.mask.iter().map(|row| vec![0.0; row.len()]).collect(),
        clip_low: 0.0,
        clip_high: 0.0,
        ratio_mean: 0.0,
        ratio_min: f64::INFINITY,
        ratio_max: f64::NEG_INFINITY,
        kl_k1: inputs.sampler_logprobs.as_ref().map(|_| 0.0),
        kl_k3: inputs.sampler_logprobs.as_ref().map(|_| 0.0),
        tokens: 0.0,
    };
    for (b, row) in inputs.mask.iter().enumerate() {
        for (t, m) in row.iter().enumerate() {
            if *m == 0.0 {
                continue;
            }
            let terms = token_terms(inputs, config, b, t);
            out.loss += weights[b] * terms.loss;
            out.grad[b][t] = weights[b] * terms.grad;
            accumulate_metrics(&mut out, inputs, &terms, b, t);
        }
    }
    finish_metrics(&mut out);
    out
}

/// Loss and gradient of token `(b, t)`.
fn token_terms(inputs: &ScalarInputs, config: &PolicyLossConfig, b: usize, t: usize) -> TokenTerms {
    let logp = inputs.logprobs[b][t];
    let adv = inputs.advantages[b][t];
    let ratio = (logp - inputs.old_logprobs[b][t]).exp();
    let (low, high) = (1.0 - config.clip.eps_low, 1.0 + config.clip.eps_high);
    let clipped = ratio.max(low).min(high);
    let unclipped_active = ratio * adv <= clipped * adv;
    let objective = if unclipped_active {
        ratio * adv
    } else {
        clipped * adv
    };
    let slope = if unclipped_active { adv * ratio } else { 0.0 };
    let w = match (config.correction, &inputs.sampler_logprobs) {
        (SamplerCorrection::TruncatedIs { cap }, Some(s)) => {
            (inputs.old_logprobs[b][t] - s[b][t]).exp().min(cap)
        }
        _ => 1.0,
    };
    let mut terms = TokenTerms {
        loss: -w * objective,
        grad: -w * slope,
        ratio,
        clipped_low: adv < 0.0 && ratio < low,
        clipped_high: adv > 0.0 && ratio > high,
    };
    if let (KlPenalty::K3 { coef }, Some(reference)) = (config.kl, &inputs.ref_logprobs) {
        let r = reference[b][t] - logp;
        terms.loss += coef * (r.exp() - r - 1.0);
        terms.grad += coef * (1.0 - r.exp());
    }
    terms
}

/// The factor `n_t` each token's loss is multiplied by, per sequence.
fn aggregation_weights(mask: &[Vec<f64>], aggregation: LossAggregation) -> Vec<f64> {
    let seq_tokens: Vec<f64> = mask
        .iter()
        .map(|row| row.iter().filter(|m| **m != 0.0).count() as f64)
        .collect();
    let total: f64 = seq_tokens.iter().sum();
    let non_empty = seq_tokens.iter().filter(|n| **n > 0.0).count() as f64;
    seq_tokens
        .iter()
        .map(|n| match aggregation {
            LossAggregation::TokenMean => 1.0 / total.max(1.0),
            LossAggregation::SeqMeanTokenMean => 1.0 / (n.max(1.0) * non_empty.max(1.0)),
            LossAggregation::Constant(c) => 1.0 / c,
        })
        .collect()
}

fn accumulate_metrics(
    out: &mut ScalarLoss,
    inputs: &ScalarInputs,
    terms: &TokenTerms,
    b: usize,
    t: usize,
) {
    out.tokens += 1.0;
    out.clip_low += f64::from(u8::from(terms.clipped_low));
    out.clip_high += f64::from(u8::from(terms.clipped_high));
    out.ratio_mean += terms.ratio;
    out.ratio_min = out.ratio_min.min(terms.ratio);
    out.ratio_max = out.ratio_max.max(terms.ratio);
    if let Some(sampler) = &inputs.sampler_logprobs {
        // d = log(p_trainer / q_sampler) for a token drawn from the sampler.
        let d = inputs.old_logprobs[b][t] - sampler[b][t];
        *out.kl_k1.get_or_insert(0.0) += -d;
        *out.kl_k3.get_or_insert(0.0) += d.exp() - 1.0 - d;
    }
}

/// Turns the sums of [`accumulate_metrics`] into means (NaN over no tokens).
fn finish_metrics(out: &mut ScalarLoss) {
    let n = out.tokens;
    out.clip_low /= n;
    out.clip_high /= n;
    out.ratio_mean /= n;
    if n == 0.0 {
        out.ratio_min = f64::NAN;
        out.ratio_max = f64::NAN;
    }
    for kl in [&mut out.kl_k1, &mut out.kl_k3].into_iter().flatten() {
        *kl /= n;
    }
}

#[cfg(all(test, feature = "tensor"))]
mod tests {
    use super::*;
    use crate::loss::{self, ClipRange, PolicyLossInputs};
    use tch::{Kind, Tensor};

    /// SplitMix64: a seeded generator so the random cases are the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in [lo, hi).
        fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
        fn matrix(&mut self, b: usize, t: usize, lo: f64, hi: f64) -> Vec<Vec<f64>> {
            (0..b)
                .map(|_| (0..t).map(|_| self.uniform(lo, hi)).collect())
                .collect()
        }
    }

    fn tensor(rows: &[Vec<f64>]) -> Tensor {
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
    }

    /// Random inputs: log-ratios in [-0.6, 0.6] so that many tokens fall outside the clip
    /// range on both sides; about 30% of positions masked, row 0 fully masked when `b > 2`.
    fn random_inputs(rng: &mut Rng, b: usize, t: usize) -> ScalarInputs {
        let logprobs = rng.matrix(b, t, -4.0, -0.01);
        let shift = |rng: &mut Rng, m: &[Vec<f64>], s: f64| -> Vec<Vec<f64>> {
            m.iter()
                .map(|r| r.iter().map(|x| x + rng.uniform(-s, s)).collect())
                .collect()
        };
        let old_logprobs = shift(rng, &logprobs, 0.6);
        let sampler = shift(rng, &old_logprobs, 0.9);
        let reference = shift(rng, &logprobs, 0.5);
        let mut mask: Vec<Vec<f64>> = (0..b)
            .map(|_| {
                (0..t)
                    .map(|_| f64::from(u8::from(rng.uniform(0.0, 1.0) < 0.7)))
                    .collect()
            })
            .collect();
        if b > 2 {
            mask[0] = vec![0.0; t];
        }
        ScalarInputs {
            logprobs,
            old_logprobs,
            advantages: rng.matrix(b, t, -2.0, 2.0),
            mask,
            sampler_logprobs: Some(sampler),
            ref_logprobs: Some(reference),
        }
    }

    /// All combinations of aggregation, correction and KL for one clip range.
    fn configs(clip: ClipRange) -> Vec<PolicyLossConfig> {
        let mut out = Vec::new();
        for aggregation in [
            LossAggregation::TokenMean,
            LossAggregation::SeqMeanTokenMean,
            LossAggregation::Constant(37.0),
        ] {
            for correction in [
                SamplerCorrection::None,
                SamplerCorrection::TruncatedIs { cap: 1.5 },
            ] {
                for kl in [KlPenalty::None, KlPenalty::K3 { coef: 0.05 }] {
                    out.push(PolicyLossConfig {
                        clip,
                        aggregation,
                        correction,
                        kl,
                    });
                }
            }
        }
        out
    }

    /// The fast loss on `inputs`: (loss, grad, metrics).
    fn fast(
        inputs: &ScalarInputs,
        config: &PolicyLossConfig,
    ) -> (f64, Vec<Vec<f64>>, loss::LossMetrics) {
        let lp = tensor(&inputs.logprobs).set_requires_grad(true);
        let (old, adv, mask) = (
            tensor(&inputs.old_logprobs),
            tensor(&inputs.advantages),
            tensor(&inputs.mask),
        );
        let sampler = inputs.sampler_logprobs.as_deref().map(tensor);
        let reference = inputs.ref_logprobs.as_deref().map(tensor);
        let fast_inputs = PolicyLossInputs {
            logprobs: &lp,
            old_logprobs: &old,
            advantages: &adv,
            mask: &mask,
            sampler_logprobs: sampler.as_ref(),
            ref_logprobs: reference.as_ref(),
            entropies: None,
        };
        let out = loss::policy_loss(&fast_inputs, config).unwrap();
        out.loss.backward();
        let grad = Vec::<Vec<f64>>::try_from(&lp.grad()).unwrap();
        (out.loss.double_value(&[]), grad, out.metrics)
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs())) || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn fast_loss_matches_reference_on_random_inputs() {
        let mut rng = Rng(20_240_607);
        let shapes = [(1, 1), (2, 5), (3, 7), (4, 16), (8, 33)];
        let clips = [
            ClipRange::DAPO,
            ClipRange::STAGE1,
            ClipRange {
                eps_low: 0.1,
                eps_high: 0.1,
            },
        ];
        let mut cases = 0;
        let (mut clipped_low, mut clipped_high) = (0.0, 0.0);
        for (b, t) in shapes {
            let inputs = random_inputs(&mut rng, b, t);
            for clip in clips {
                for config in configs(clip) {
                    let want = policy_loss(&inputs, &config);
                    let (loss, grad, m) = fast(&inputs, &config);
                    let case = format!("shape ({b}, {t}), {config:?}");
                    assert!(
                        close(loss, want.loss, 1e-12),
                        "{case}: loss {loss} vs {}",
                        want.loss
                    );
                    for (g, w) in grad.iter().flatten().zip(want.grad.iter().flatten()) {
                        assert!(close(*g, *w, 1e-12), "{case}: grad {g} vs {w}");
                    }
                    assert_metrics(&m, &want, &case);
                    clipped_low += want.clip_low * want.tokens;
                    clipped_high += want.clip_high * want.tokens;
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 5 * 3 * 12);
        // The random data must exercise both clip branches, or the comparison proves little.
        assert!(
            clipped_low > 0.0 && clipped_high > 0.0,
            "{clipped_low} {clipped_high}"
        );
    }

    fn assert_metrics(m: &loss::LossMetrics, want: &ScalarLoss, case: &str) {
        let pairs = [
            (m.clip_low, want.clip_low),
            (m.clip_high, want.clip_high),
            (m.ratio_mean, want.ratio_mean),
            (m.ratio_min, want.ratio_min),
            (m.ratio_max, want.ratio_max),
            (m.kl_sampler_trainer_k1.unwrap(), want.kl_k1.unwrap()),
            (m.kl_sampler_trainer_k3.unwrap(), want.kl_k3.unwrap()),
            (m.tokens, want.tokens),
        ];
        for (i, (got, want)) in pairs.into_iter().enumerate() {
            assert!(
                close(got, want, 1e-12),
                "{case}: metric {i}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn fast_gradient_matches_finite_differences() {
        let mut rng = Rng(7);
        let h = 1e-6;
        for (b, t) in [(2, 3), (3, 6)] {
            let inputs = random_inputs(&mut rng, b, t);
            for config in configs(ClipRange::DAPO) {
                let (_, grad, _) = fast(&inputs, &config);
                for (i, j) in (0..b).flat_map(|i| (0..t).map(move |j| (i, j))) {
                    let at = |delta: f64| {
                        let mut moved = inputs.clone();
                        moved.logprobs[i][j] += delta;
                        fast(&moved, &config).0
                    };
                    let numeric = (at(h) - at(-h)) / (2.0 * h);
                    assert!(
                        (numeric - grad[i][j]).abs() < 1e-7,
                        "({b}, {t}) [{i}][{j}] {config:?}: autograd {} vs finite difference {numeric}",
                        grad[i][j]
                    );
                }
            }
        }
    }

    #[test]
    fn fast_loss_keeps_the_f64_dtype() {
        // The comparison above is only tight because both sides run in f64; make sure the
        // fast path kept the dtype it was given instead of silently downcasting.
        let inputs = random_inputs(&mut Rng(3), 2, 4);
        let lp = tensor(&inputs.logprobs);
        assert_eq!(lp.kind(), Kind::Double);
        let adv = tensor(&inputs.advantages);
        let mask = tensor(&inputs.mask);
        let fast_inputs = PolicyLossInputs {
            logprobs: &lp,
            old_logprobs: &lp,
            advantages: &adv,
            mask: &mask,
            sampler_logprobs: None,
            ref_logprobs: None,
            entropies: None,
        };
        let out = loss::policy_loss(&fast_inputs, &PolicyLossConfig::new(ClipRange::DAPO)).unwrap();
        assert_eq!(out.loss.kind(), Kind::Double);
    }
}
