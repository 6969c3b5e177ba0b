//! The loss on tch tensors: inputs, metrics and the formula of the parent module.

use serde::Serialize;
use tch::{Kind, Tensor};

use super::*;

/// The tensors of one (micro-)batch, all `[B, T]` unless noted, on one device.
#[derive(Debug, Clone, Copy)]
pub struct PolicyLossInputs<'a> {
    /// Current policy log-probs of the taken tokens; gradients flow into this one only.
    pub logprobs: &'a Tensor,
    /// Log-probs of the policy that `rho` is measured against (the trainer's recompute by
    /// default, or the sampler's).
    pub old_logprobs: &'a Tensor,
    /// Advantages: `[B]` (one per trajectory, broadcast over its tokens) or `[B, T]`.
    pub advantages: &'a Tensor,
    /// Loss mask: non-zero marks an action (sampled) token; any kind.
    pub mask: &'a Tensor,
    /// The sampler's log-probs: needed for truncated IS; if given, the sampler/trainer KL
    /// metrics are reported, measuring the sampler against `old_logprobs` (the trainer's
    /// recompute of the same policy by default).
    pub sampler_logprobs: Option<&'a Tensor>,
    /// Reference-policy log-probs: needed for the KL penalty.
    pub ref_logprobs: Option<&'a Tensor>,
    /// Per-token entropies of the current policy, for the entropy metric only.
    pub entropies: Option<&'a Tensor>,
}

/// Diagnostics of one loss evaluation, all over masked (action) tokens.
///
/// Serialised with the names of [`crate::metrics`]. Statistics over an empty set (no action
/// tokens) are NaN (serialised as `null` by serde_json).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LossMetrics {
    /// Fraction of tokens with `A < 0` and `rho < 1 - eps_low` (gradient cut by the low clip).
    #[serde(rename = "clip/low")]
    pub clip_low: f64,
    /// Fraction of tokens with `A > 0` and `rho > 1 + eps_high` (gradient cut by the high clip).
    #[serde(rename = "clip/high")]
    pub clip_high: f64,
    /// Mean of `rho`.
    #[serde(rename = "ratio/mean")]
    pub ratio_mean: f64,
    /// Smallest `rho`.
    #[serde(rename = "ratio/min")]
    pub ratio_min: f64,
    /// Largest `rho`.
    #[serde(rename = "ratio/max")]
    pub ratio_max: f64,
    /// Mean entropy, if entropies were given.
    #[serde(rename = "entropy", skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f64>,
    /// k1 estimate of KL(sampler || trainer): `mean(sampler_logp - old_logp)`.
    #[serde(
        rename = "kl/sampler_trainer_k1",
        skip_serializing_if = "Option::is_none"
    )]
    pub kl_sampler_trainer_k1: Option<f64>,
    /// k3 estimate of KL(sampler || trainer): `mean(exp(d) - 1 - d)`, `d = old_logp - sampler_logp`.
    #[serde(rename = "kl/sampler_trainer", skip_serializing_if = "Option::is_none")]
    pub kl_sampler_trainer_k3: Option<f64>,
    /// k3 estimate of KL(current || reference), if reference log-probs were given.
    #[serde(rename = "kl/reference", skip_serializing_if = "Option::is_none")]
    pub kl_reference: Option<f64>,
    /// Number of action tokens (sum of the mask).
    #[serde(rename = "tokens/trained")]
    pub tokens: f64,
}

/// The loss (a scalar tensor with autograd history) and its metrics.
#[derive(Debug)]
pub struct PolicyLoss {
    /// Scalar loss to call `backward` on.
    pub loss: Tensor,
    /// Diagnostics (plain numbers, no autograd).
    pub metrics: LossMetrics,
}

/// The clipped policy loss of the module formula, with its metrics.
pub fn policy_loss(
    inputs: &PolicyLossInputs<'_>,
    config: &PolicyLossConfig,
) -> Result<PolicyLoss, LossError> {
    config.validate()?;
    check_inputs(inputs, config)?;
    let kind = inputs.logprobs.kind();
    let mask = inputs.mask.ne(0.0);
    let advantages = per_token_advantages(inputs.advantages, inputs.logprobs).to_kind(kind);
    let ratio = masked_log_diff(inputs.logprobs, inputs.old_logprobs, &mask).exp();
    let per_token = clipped_objective(&ratio, &advantages, config.clip).neg();
    let per_token = match (config.correction, inputs.sampler_logprobs) {
        (SamplerCorrection::TruncatedIs { cap }, Some(sampler)) => {
            per_token * truncated_is_weight(inputs.old_logprobs, sampler, &mask, cap)
        }
        _ => per_token,
    };
    let per_token = match (config.kl, inputs.ref_logprobs) {
        (KlPenalty::K3 { coef }, Some(reference)) => {
            per_token + k3(reference, inputs.logprobs, &mask) * coef
        }
        _ => per_token,
    };
    let loss = aggregate(&per_token, &mask, config.aggregation);
    let metrics = tch::no_grad(|| loss_metrics(inputs, &mask, &ratio, &advantages, config.clip));
    Ok(PolicyLoss { loss, metrics })
}

/// `min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A)` per token.
pub fn clipped_objective(ratio: &Tensor, advantages: &Tensor, clip: ClipRange) -> Tensor {
    let clipped = ratio.clamp(1.0 - clip.eps_low, 1.0 + clip.eps_high);
    (ratio * advantages).minimum(&(clipped * advantages))
}

/// TIS weight `min(exp(old_logp - sampler_logp), cap)`, without gradient; 1 where masked out.
pub fn truncated_is_weight(old: &Tensor, sampler: &Tensor, mask: &Tensor, cap: f64) -> Tensor {
    masked_log_diff(old, sampler, mask)
        .exp()
        .clamp_max(cap)
        .detach()
}

/// k3 estimator of `KL(pi || ref)` per token: `exp(r) - r - 1` with `r = ref_logp - logp`;
/// 0 where masked out.
pub fn k3(reference: &Tensor, logprobs: &Tensor, mask: &Tensor) -> Tensor {
    let r = masked_log_diff(reference, logprobs, mask);
    r.exp() - &r - 1.0
}

/// Reduces per-token losses `[B, T]` with the boolean `mask` by `aggregation`.
pub fn aggregate(per_token: &Tensor, mask: &Tensor, aggregation: LossAggregation) -> Tensor {
    let kind = per_token.kind();
    let masked = per_token.where_self(mask, &per_token.zeros_like());
    let mask_f = mask.to_kind(kind);
    match aggregation {
        LossAggregation::TokenMean => masked.sum(kind) / mask_f.sum(kind).clamp_min(1.0),
        LossAggregation::SeqMeanTokenMean => {
            let seq_tokens = mask_f.sum_dim_intlist(1, false, kind);
            let seq_loss = masked.sum_dim_intlist(1, false, kind) / seq_tokens.clamp_min(1.0);
            let non_empty = seq_tokens.gt(0.0).to_kind(kind).sum(kind).clamp_min(1.0);
            seq_loss.sum(kind) / non_empty
        }
        LossAggregation::Constant(c) => masked.sum(kind) / c,
    }
}

/// `a - b` where `mask`, 0 elsewhere, so that `exp` never sees padding values such as -inf.
fn masked_log_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> Tensor {
    let diff = a - b;
    diff.where_self(mask, &diff.zeros_like())
}

/// `[B]` advantages broadcast to `[B, T]`; `[B, T]` ones returned as they are.
fn per_token_advantages(advantages: &Tensor, like: &Tensor) -> Tensor {
    if advantages.dim() == 1 {
        advantages.unsqueeze(1).expand_as(like)
    } else {
        advantages.shallow_clone()
    }
}

/// Shapes, devices and the inputs the configuration needs.
fn check_inputs(inputs: &PolicyLossInputs<'_>, config: &PolicyLossConfig) -> Result<(), LossError> {
    let shape = inputs.logprobs.size();
    if shape.len() != 2 {
        let expected = "[B, T] (batch x tokens)".to_string();
        return Err(LossError::Shape {
            name: "logprobs",
            found: shape,
            expected,
        });
    }
    let same = format!("{shape:?} like `logprobs`");
    let mut named = vec![("old_logprobs", inputs.old_logprobs), ("mask", inputs.mask)];
    let optional = [
        ("sampler_logprobs", inputs.sampler_logprobs),
        ("ref_logprobs", inputs.ref_logprobs),
        ("entropies", inputs.entropies),
    ];
    named.extend(optional.into_iter().filter_map(|(n, t)| t.map(|t| (n, t))));
    for (name, tensor) in &named {
        if tensor.size() != shape {
            return Err(LossError::Shape {
                name,
                found: tensor.size(),
                expected: same.clone(),
            });
        }
    }
    let adv = inputs.advantages.size();
    if adv != shape && adv != shape[..1] {
        let expected = format!("[{}] (per trajectory) or {shape:?} (per token)", shape[0]);
        return Err(LossError::Shape {
            name: "advantages",
            found: adv,
            expected,
        });
    }
    named.push(("advantages", inputs.advantages));
    check_devices(inputs.logprobs, &named)?;
    check_needed_inputs(inputs, config)
}

fn check_devices(logprobs: &Tensor, named: &[(&'static str, &Tensor)]) -> Result<(), LossError> {
    let expected = logprobs.device();
    match named.iter().find(|(_, t)| t.device() != expected) {
        Some((name, t)) => Err(LossError::Device {
            name,
            found: format!("{:?}", t.device()),
            expected: format!("{expected:?}"),
        }),
        None => Ok(()),
    }
}

fn check_needed_inputs(
    inputs: &PolicyLossInputs<'_>,
    config: &PolicyLossConfig,
) -> Result<(), LossError> {
    if matches!(config.correction, SamplerCorrection::TruncatedIs { .. })
        && inputs.sampler_logprobs.is_none()
    {
        let feature = "truncated importance sampling";
        return Err(LossError::MissingInput {
            feature,
            name: "sampler_logprobs",
        });
    }
    if matches!(config.kl, KlPenalty::K3 { .. }) && inputs.ref_logprobs.is_none() {
        return Err(LossError::MissingInput {
            feature: "the KL penalty",
            name: "ref_logprobs",
        });
    }
    Ok(())
}

/// The metrics of [`LossMetrics`], computed without gradient.
fn loss_metrics(
    inputs: &PolicyLossInputs<'_>,
    mask: &Tensor,
    ratio: &Tensor,
    advantages: &Tensor,
    clip: ClipRange,
) -> LossMetrics {
    let tokens = mask
        .to_kind(Kind::Double)
        .sum(Kind::Double)
        .double_value(&[]);
    let mean = |x: &Tensor| masked_mean(x, mask, tokens);
    let low = advantages
        .lt(0.0)
        .logical_and(&ratio.lt(1.0 - clip.eps_low));
    let high = advantages
        .gt(0.0)
        .logical_and(&ratio.gt(1.0 + clip.eps_high));
    let sampler_gap = inputs
        .sampler_logprobs
        .map(|s| masked_log_diff(inputs.old_logprobs, s, mask));
    LossMetrics {
        clip_low: mean(&low),
        clip_high: mean(&high),
        ratio_mean: mean(ratio),
        ratio_min: masked_extreme(ratio, mask, tokens, Tensor::min),
        ratio_max: masked_extreme(ratio, mask, tokens, Tensor::max),
        entropy: inputs.entropies.map(mean),
        kl_sampler_trainer_k1: sampler_gap.as_ref().map(|d| mean(&d.neg())),
        kl_sampler_trainer_k3: sampler_gap.as_ref().map(|d| mean(&(d.exp() - d - 1.0))),
        kl_reference: inputs
            .ref_logprobs
            .map(|r| mean(&k3(r, inputs.logprobs, mask))),
        tokens,
    }
}

/// `sum(x * mask) / tokens` in f64; NaN when there are no tokens.
fn masked_mean(x: &Tensor, mask: &Tensor, tokens: f64) -> f64 {
    let x = x.to_kind(Kind::Double);
    let masked = x.where_self(mask, &x.zeros_like());
    masked.sum(Kind::Double).double_value(&[]) / tokens
}

/// `reduce` (min or max) over masked entries; NaN when there are none.
fn masked_extreme(x: &Tensor, mask: &Tensor, tokens: f64, reduce: fn(&Tensor) -> Tensor) -> f64 {
    if tokens == 0.0 {
        return f64::NAN;
    }
    reduce(&x.masked_select(mask)).double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-12;

    fn t2(rows: &[&[f64]]) -> Tensor {
        let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
    }

    fn rows(t: &Tensor) -> Vec<Vec<f64>> {
        Vec::<Vec<f64>>::try_from(t).unwrap()
    }

    fn assert_rows(got: &[Vec<f64>], want: &[&[f64]]) {
        for (b, (g, w)) in got.iter().zip(want).enumerate() {
            for (t, (g, w)) in g.iter().zip(w.iter()).enumerate() {
                assert!(
                    (g - w).abs() < TOL,
                    "[{b}][{t}]: got {g}, want {w} (all: {got:?})"
                );
            }
        }
    }

    fn inputs<'a>(
        lp: &'a Tensor,
        old: &'a Tensor,
        adv: &'a Tensor,
        mask: &'a Tensor,
    ) -> PolicyLossInputs<'a> {
        PolicyLossInputs {
            logprobs: lp,
            old_logprobs: old,
            advantages: adv,
            mask,
            sampler_logprobs: None,
            ref_logprobs: None,
            entropies: None,
        }
    }

    /// Loss value and `d loss / d logprobs` for `logprobs` given as rows.
    fn run(
        logprobs: &[&[f64]],
        make: impl Fn(&Tensor) -> Result<PolicyLoss, LossError>,
    ) -> (f64, Vec<Vec<f64>>, LossMetrics) {
        let lp = t2(logprobs).set_requires_grad(true);
        let out = make(&lp).unwrap();
        out.loss.backward();
        (out.loss.double_value(&[]), rows(&lp.grad()), out.metrics)
    }

    #[test]
    fn clipping_golden_both_sides_both_signs() {
        // eps (0.2, 0.28): clip range [0.8, 1.28]. old = -1, logp = -1 + ln(rho).
        // t0: rho 1.5, A +1: min(1.5, 1.28) = 1.28, clipped high, no gradient.
        // t1: rho 0.5, A -1: min(-0.5, -0.8) = -0.8, clipped low, no gradient.
        // t2: rho 0.5, A +1: min(0.5, 0.8) = 0.5, unclipped: d/dlogp = A * rho = 0.5.
        // t3: rho 1.5, A -2: min(-3, -2.56) = -3, unclipped (a high ratio with A < 0 is not
        //     clipped): d/dlogp = A * rho = -3.
        // objective = (1.28 - 0.8 + 0.5 - 3) / 4 = -2.02 / 4 = -0.505, loss = 0.505.
        // grad of loss = -(d objective) / 4 = [0, 0, -0.125, 0.75].
        let rho = [1.5f64, 0.5, 0.5, 1.5];
        let lp: Vec<f64> = rho.iter().map(|r| -1.0 + r.ln()).collect();
        let old = t2(&[&[-1.0; 4]]);
        let adv = t2(&[&[1.0, -1.0, 1.0, -2.0]]);
        let mask = t2(&[&[1.0; 4]]);
        let config = PolicyLossConfig::new(ClipRange::DAPO);
        let (loss, grad, m) = run(&[&lp], |lp| {
            policy_loss(&inputs(lp, &old, &adv, &mask), &config)
        });
        assert!((loss - 0.505).abs() < TOL, "loss {loss}");
        assert_rows(&grad, &[&[0.0, 0.0, -0.125, 0.75]]);
        // One of four tokens clipped on each side; ratios 1.5, 0.5, 0.5, 1.5.
        assert!(
            (m.clip_low - 0.25).abs() < TOL && (m.clip_high - 0.25).abs() < TOL,
            "{m:?}"
        );
        assert!((m.ratio_mean - 1.0).abs() < TOL, "{m:?}");
        assert!(
            (m.ratio_min - 0.5).abs() < TOL && (m.ratio_max - 1.5).abs() < TOL,
            "{m:?}"
        );
        assert_eq!(m.tokens, 4.0);
        assert_eq!(
            (m.entropy, m.kl_sampler_trainer_k1, m.kl_reference),
            (None, None, None)
        );
    }

    /// Two sequences of 3 and 1 action tokens (T = 4), on-policy (rho = 1), per-sequence
    /// advantages [1, -2]; the objective per token is A. Masked positions hold -inf.
    fn uneven_lengths(aggregation: LossAggregation) -> (f64, Vec<Vec<f64>>) {
        let ninf = f64::NEG_INFINITY;
        let lp: [&[f64]; 2] = [&[-0.5, -1.0, -2.0, ninf], &[-0.3, ninf, ninf, ninf]];
        let old = t2(&[&[-0.5, -1.0, -2.0, 0.0], &[-0.3, 0.0, 0.0, 0.0]]);
        let adv = Tensor::from_slice(&[1.0f64, -2.0]);
        let mask = t2(&[&[1.0, 1.0, 1.0, 0.0], &[1.0, 0.0, 0.0, 0.0]]);
        let mut config = PolicyLossConfig::new(ClipRange::DAPO);
        config.aggregation = aggregation;
        let (loss, grad, _) = run(&lp, |lp| {
            policy_loss(&inputs(lp, &old, &adv, &mask), &config)
        });
        (loss, grad)
    }

    #[test]
    fn token_mean_divides_by_all_action_tokens_of_the_batch() {
        // sum of objectives = 3 * 1 + 1 * (-2) = 1 over 4 tokens: loss = -1 / 4 = -0.25.
        // grad = -A * rho / 4: -0.25 on seq 0's tokens, +2 / 4 = 0.5 on seq 1's; 0 masked.
        let (loss, grad) = uneven_lengths(LossAggregation::TokenMean);
        assert!((loss + 0.25).abs() < TOL, "loss {loss}");
        assert_rows(&grad, &[&[-0.25, -0.25, -0.25, 0.0], &[0.5, 0.0, 0.0, 0.0]]);
    }

    #[test]
    fn seq_mean_token_mean_weighs_sequences_equally() {
        // per-sequence means 3 / 3 = 1 and -2 / 1 = -2; their mean -0.5; loss = 0.5.
        // grad = -A / (len * 2): -1 / 6 on seq 0, +2 / 2 = 1 on seq 1.
        let (loss, grad) = uneven_lengths(LossAggregation::SeqMeanTokenMean);
        assert!((loss - 0.5).abs() < TOL, "loss {loss}");
        let s = -1.0 / 6.0;
        assert_rows(&grad, &[&[s, s, s, 0.0], &[1.0, 0.0, 0.0, 0.0]]);
    }

    #[test]
    fn constant_normaliser_divides_by_c() {
        // sum 1 over c = 8: loss = -1 / 8 = -0.125; grad = -A / 8: -0.125 and 0.25.
        let (loss, grad) = uneven_lengths(LossAggregation::Constant(8.0));
        assert!((loss + 0.125).abs() < TOL, "loss {loss}");
        assert_rows(
            &grad,
            &[&[-0.125, -0.125, -0.125, 0.0], &[0.25, 0.0, 0.0, 0.0]],
        );
    }

    #[test]
    fn truncated_is_weights_and_sampler_trainer_kl_golden() {
        // On-policy (rho = 1), A = 1 on two tokens; old = -1.
        // sampler = -1 - ln 3: w = min(exp(ln 3), 2) = min(3, 2) = 2.
        // sampler = -1 + ln 2: w = min(exp(-ln 2), 2) = 0.5.
        // loss = -(2 * 1 + 0.5 * 1) / 2 = -1.25; grad = -w * A * rho / 2 = [-1, -0.25].
        // d = old - sampler = [ln 3, -ln 2]:
        // k1 = mean(-d) = (ln 2 - ln 3) / 2; k3 = mean(e^d - 1 - d)
        //    = ((3 - 1 - ln 3) + (0.5 - 1 + ln 2)) / 2.
        let old = t2(&[&[-1.0, -1.0]]);
        let sampler = t2(&[&[-1.0 - 3f64.ln(), -1.0 + 2f64.ln()]]);
        let adv = Tensor::from_slice(&[1.0f64]);
        let mask = t2(&[&[1.0, 1.0]]);
        let mut config = PolicyLossConfig::new(ClipRange::STAGE1);
        config.correction = SamplerCorrection::TruncatedIs { cap: 2.0 };
        let (loss, grad, m) = run(&[&[-1.0, -1.0]], |lp| {
            let mut i = inputs(lp, &old, &adv, &mask);
            i.sampler_logprobs = Some(&sampler);
            policy_loss(&i, &config)
        });
        assert!((loss + 1.25).abs() < TOL, "loss {loss}");
        assert_rows(&grad, &[&[-1.0, -0.25]]);
        let (ln2, ln3) = (2f64.ln(), 3f64.ln());
        assert!(
            (m.kl_sampler_trainer_k1.unwrap() - (ln2 - ln3) / 2.0).abs() < TOL,
            "{m:?}"
        );
        let k3 = ((2.0 - ln3) + (-0.5 + ln2)) / 2.0;
        assert!((m.kl_sampler_trainer_k3.unwrap() - k3).abs() < TOL, "{m:?}");
    }

    #[test]
    fn k3_penalty_golden() {
        // A = 0, so only the KL term: r = ref - logp = ln 2, k3 = 2 - ln 2 - 1 = 1 - ln 2;
        // loss = 0.1 * (1 - ln 2); grad = 0.1 * (1 - e^r) = 0.1 * (1 - 2) = -0.1.
        let old = t2(&[&[-2.0]]);
        let reference = t2(&[&[-2.0 + 2f64.ln()]]);
        let adv = Tensor::from_slice(&[0.0f64]);
        let mask = t2(&[&[1.0]]);
        let entropies = t2(&[&[0.7]]);
        let mut config = PolicyLossConfig::new(ClipRange::DAPO);
        config.kl = KlPenalty::K3 { coef: 0.1 };
        let (loss, grad, m) = run(&[&[-2.0]], |lp| {
            let mut i = inputs(lp, &old, &adv, &mask);
            i.ref_logprobs = Some(&reference);
            i.entropies = Some(&entropies);
            policy_loss(&i, &config)
        });
        assert!((loss - 0.1 * (1.0 - 2f64.ln())).abs() < TOL, "loss {loss}");
        assert_rows(&grad, &[&[-0.1]]);
        assert!(
            (m.kl_reference.unwrap() - (1.0 - 2f64.ln())).abs() < TOL,
            "{m:?}"
        );
        assert!((m.entropy.unwrap() - 0.7).abs() < TOL, "{m:?}");
    }

    #[test]
    fn f32_log_probs_with_bool_mask_match_f64() {
        // The trainer passes f32 log-probs and a bool mask; the result must be the f64 one
        // to f32 precision: here the example of `uneven_lengths`, loss -0.25.
        let lp = t2(&[&[-0.5, -1.0, -2.0, 0.0], &[-0.3, 0.0, 0.0, 0.0]]).to_kind(Kind::Float);
        let lp = lp.set_requires_grad(true);
        let adv = Tensor::from_slice(&[1.0f64, -2.0]);
        let mask = t2(&[&[1.0, 1.0, 1.0, 0.0], &[1.0, 0.0, 0.0, 0.0]]).to_kind(Kind::Bool);
        let config = PolicyLossConfig::new(ClipRange::DAPO);
        let out = policy_loss(&inputs(&lp, &lp.detach(), &adv, &mask), &config).unwrap();
        assert_eq!(out.loss.kind(), Kind::Float);
        assert!((out.loss.double_value(&[]) + 0.25).abs() < 1e-6);
        assert_eq!(out.metrics.tokens, 4.0);
        out.loss.backward();
        assert!((lp.grad().double_value(&[1, 0]) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn empty_mask_gives_zero_loss_and_nan_statistics() {
        let lp = t2(&[&[-1.0, -2.0]]);
        let adv = Tensor::from_slice(&[1.0f64]);
        let mask = t2(&[&[0.0, 0.0]]);
        let out = policy_loss(
            &inputs(&lp, &lp, &adv, &mask),
            &PolicyLossConfig::new(ClipRange::DAPO),
        )
        .unwrap();
        assert_eq!(out.loss.double_value(&[]), 0.0);
        assert_eq!(out.metrics.tokens, 0.0);
        assert!(out.metrics.ratio_min.is_nan() && out.metrics.clip_low.is_nan());
    }

    #[test]
    fn bad_inputs_are_named_errors() {
        let lp = t2(&[&[-1.0, -2.0]]);
        let short = t2(&[&[-1.0]]);
        let adv = Tensor::from_slice(&[1.0f64]);
        let mask = t2(&[&[1.0, 1.0]]);
        let config = PolicyLossConfig::new(ClipRange::DAPO);
        let err = policy_loss(&inputs(&lp, &short, &adv, &mask), &config).unwrap_err();
        assert!(
            matches!(
                err,
                LossError::Shape {
                    name: "old_logprobs",
                    ..
                }
            ),
            "{err}"
        );
        let three = Tensor::from_slice(&[1.0f64, 2.0, 3.0]);
        let err = policy_loss(&inputs(&lp, &lp, &three, &mask), &config).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected [1] (per trajectory) or [1, 2]"),
            "{err}"
        );
        let mut tis = config;
        tis.correction = SamplerCorrection::TruncatedIs { cap: 2.0 };
        let err = policy_loss(&inputs(&lp, &lp, &adv, &mask), &tis).unwrap_err();
        assert_eq!(
            err,
            LossError::MissingInput {
                feature: "truncated importance sampling",
                name: "sampler_logprobs"
            }
        );
        let bad_eps = PolicyLossConfig::new(ClipRange {
            eps_low: 1.0,
            eps_high: 0.2,
        });
        assert!(matches!(
            bad_eps.validate(),
            Err(LossError::BadParameter {
                name: "eps_low",
                ..
            })
        ));
        let mut zero_c = config;
        zero_c.aggregation = LossAggregation::Constant(0.0);
        assert!(zero_c.validate().is_err());
    }

    #[test]
    fn metric_keys_are_registered_names() {
        let m = LossMetrics {
            clip_low: 0.0,
            clip_high: 0.0,
            ratio_mean: 1.0,
            ratio_min: 1.0,
            ratio_max: 1.0,
            entropy: Some(0.0),
            kl_sampler_trainer_k1: Some(0.0),
            kl_sampler_trainer_k3: Some(0.0),
            kl_reference: Some(0.0),
            tokens: 1.0,
        };
        let value = serde_json::to_value(m).unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 10);
        for key in keys {
            assert!(
                crate::metrics::ALL.contains(&key.as_str()),
                "{key} is not in metrics::ALL"
            );
        }
    }

    #[test]
    fn config_parses_with_defaults() {
        let c: PolicyLossConfig =
            serde_json::from_str(r#"{"clip":{"eps_low":0.2,"eps_high":0.28}}"#).unwrap();
        assert_eq!(c, PolicyLossConfig::new(ClipRange::DAPO));
        let c: PolicyLossConfig = serde_json::from_str(
            r#"{"clip":{"eps_low":0.2,"eps_high":0.3},"aggregation":{"constant":4096},
                "correction":{"truncated_is":{"cap":2}},"kl":{"k3":{"coef":0.01}}}"#,
        )
        .unwrap();
        assert_eq!(c.aggregation, LossAggregation::Constant(4096.0));
        assert_eq!(c.correction, SamplerCorrection::TruncatedIs { cap: 2.0 });
        assert_eq!(c.kl, KlPenalty::K3 { coef: 0.01 });
    }
}
