//! AdamW's update and global gradient-norm clipping, on f32 tensors; the state they act on
//! (masters, gradients, moments, step count) is [`crate::trainable::Trainable`].
//!
//! Written out rather than taken from `tch::nn::Optimizer` because a bit-for-bit resume needs
//! the moments and the step count saved and restored exactly, and the trainer owns its
//! parameters as plain tensors. The update is PyTorch's `torch.optim.AdamW` (decoupled weight
//! decay, bias-corrected moments):
//!
//! ```text
//! p <- p * (1 - lr * wd)
//! m <- b1 * m + (1 - b1) * g          v <- b2 * v + (1 - b2) * g^2
//! p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//! ```

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// AdamW hyper-parameters. Defaults are the paper's (docs/method.md sections 5-6): betas
/// (0.9, 0.999), eps 1e-8, weight decay 0.1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// One AdamW update of the f32 tensor `p` with the f32 gradient `g` and moments `(m, v)`, at
/// learning rate `lr`, `step` being the 1-based count of updates including this one.
///
/// Only f32 tensors are accepted: a bf16 parameter is trained through its f32 master
/// ([`crate::trainable`]), never updated in place.
pub fn adamw_update(
    p: &Tensor,
    g: &Tensor,
    (m, v): (&mut Tensor, &mut Tensor),
    lr: f64,
    step: u64,
    c: &AdamWConfig,
) {
    assert!(
        p.kind() == Kind::Float && g.kind() == Kind::Float,
        "AdamW updates f32 tensors only (got {:?} with a {:?} gradient)",
        p.kind(),
        g.kind()
    );
    let bias1 = 1.0 - c.beta1.powi(step as i32);
    let bias2 = 1.0 - c.beta2.powi(step as i32);
    tch::no_grad(|| {
        // In place, as torch.optim.AdamW's single-tensor path: a few passes over each
        // parameter and two temporaries, instead of a fresh tensor per operation.
        let mut p = p.shallow_clone();
        let _ = p.g_mul_scalar_(1.0 - lr * c.weight_decay);
        let _ = m.lerp_(g, 1.0 - c.beta1);
        let _ = v.lerp_(&(g * g), 1.0 - c.beta2);
        // p -= lr / bias1 * m / (sqrt(v) / sqrt(bias2) + eps)
        let mut denom = v.sqrt();
        let _ = denom.g_div_scalar_(bias2.sqrt());
        let _ = denom.g_add_scalar_(c.eps);
        let _ = denom.g_mul_scalar_(-bias1 / lr);
        let _ = p.addcdiv_(m, &denom);
    });
}

/// Scales the f32 gradients `grads` in place so that their global L2 norm is at most
/// `max_norm` (PyTorch's `clip_grad_norm_`: coefficient `max_norm / (norm + 1e-6)`, applied
/// only when below 1). Returns the norm before clipping, which the metrics report.
pub fn clip_grad_norm(grads: &[Tensor], max_norm: f64) -> f64 {
    let total = global_norm(grads);
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        tch::no_grad(|| {
            for g in grads {
                let _ = g.shallow_clone().g_mul_scalar_(coef);
            }
        });
    }
    total
}

/// The L2 norm of all of `grads` together (f32 tensors; squares summed in f64).
pub fn global_norm(grads: &[Tensor]) -> f64 {
    grads
        .iter()
        .map(|g| {
            assert_eq!(g.kind(), Kind::Float, "gradients are clipped in f32");
            g.norm().double_value(&[]).powi(2)
        })
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Scalar reference of the same update in f64, written from the formula in the docs.
    pub(crate) fn reference(p0: f64, grads: &[f64], lr: f64, c: AdamWConfig) -> f64 {
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (t, g) in grads.iter().enumerate() {
            let t = (t + 1) as i32;
            p *= 1.0 - lr * c.weight_decay;
            m = c.beta1 * m + (1.0 - c.beta1) * g;
            v = c.beta2 * v + (1.0 - c.beta2) * g * g;
            p -=
                lr * (m / (1.0 - c.beta1.powi(t))) / ((v / (1.0 - c.beta2.powi(t))).sqrt() + c.eps);
        }
        p
    }

    #[test]
    fn adamw_update_matches_scalar_reference_over_several_steps() {
        let c = AdamWConfig::default();
        let p = Tensor::from_slice(&[0.5f32, -1.5]);
        let (mut m, mut v) = (p.zeros_like(), p.zeros_like());
        let grads = [[0.1f32, -2.0], [0.3, 0.5], [-0.2, 1.0]];
        for (t, g) in grads.iter().enumerate() {
            let g = Tensor::from_slice(g);
            adamw_update(&p, &g, (&mut m, &mut v), 1e-2, t as u64 + 1, &c);
        }
        for (i, p0) in [0.5f64, -1.5].iter().enumerate() {
            let gs: Vec<f64> = grads.iter().map(|g| g[i] as f64).collect();
            let want = reference(*p0, &gs, 1e-2, c);
            let got = p.double_value(&[i as i64]);
            assert!(
                (got - want).abs() < 1e-6,
                "param {i}: got {got}, want {want}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "AdamW updates f32 tensors only")]
    fn a_bf16_tensor_is_never_updated_in_place() {
        let p = Tensor::from_slice(&[0.5f32]).to_kind(Kind::BFloat16);
        let g = Tensor::from_slice(&[0.1f32]);
        let (mut m, mut v) = (g.zeros_like(), g.zeros_like());
        adamw_update(&p, &g, (&mut m, &mut v), 1e-6, 1, &AdamWConfig::default());
    }

    #[test]
    fn clip_scales_to_max_norm_and_reports_the_original() {
        let g = Tensor::from_slice(&[3.0f32, 4.0]);
        let norm = clip_grad_norm(std::slice::from_ref(&g), 1.0);
        assert!((norm - 5.0).abs() < 1e-6);
        let clipped = (g.double_value(&[0]).powi(2) + g.double_value(&[1]).powi(2)).sqrt();
        assert!((clipped - 1.0).abs() < 1e-5, "clipped norm {clipped}");
        // Below the threshold nothing changes.
        let norm2 = clip_grad_norm(std::slice::from_ref(&g), 10.0);
        assert!((norm2 - clipped).abs() < 1e-6);
    }
}
