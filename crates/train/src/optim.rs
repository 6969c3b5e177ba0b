//! AdamW with explicit, checkpointable state, and global gradient-norm clipping.
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

/// AdamW over a fixed list of parameters (the order is the identity of each state slot).
#[derive(Debug)]
pub struct AdamW {
    pub config: AdamWConfig,
    /// Number of updates taken so far (`t` in the bias correction).
    pub step: u64,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
}

impl AdamW {
    /// Zero moments shaped like `params`, kept in f32 whatever the parameter dtype so that
    /// bf16 training does not lose the small second moments.
    pub fn new(config: AdamWConfig, params: &[Tensor]) -> Self {
        let zeros = |p: &Tensor| Tensor::zeros(p.size(), (Kind::Float, p.device()));
        AdamW {
            config,
            step: 0,
            exp_avg: params.iter().map(zeros).collect(),
            exp_avg_sq: params.iter().map(zeros).collect(),
        }
    }

    /// One update of every parameter that has a gradient, at learning rate `lr`.
    pub fn step(&mut self, params: &[Tensor], lr: f64) {
        assert_eq!(
            params.len(),
            self.exp_avg.len(),
            "AdamW built for another parameter list"
        );
        self.step += 1;
        let c = self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2 = 1.0 - c.beta2.powi(self.step as i32);
        tch::no_grad(|| {
            for ((p, m), v) in params
                .iter()
                .zip(&mut self.exp_avg)
                .zip(&mut self.exp_avg_sq)
            {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                // In place, as torch.optim.AdamW's single-tensor path: a few passes over each
                // parameter and two temporaries, instead of a fresh tensor per operation.
                let g = g.to_kind(Kind::Float);
                let f32_param = p.kind() == Kind::Float;
                let mut p32 = if f32_param {
                    p.shallow_clone()
                } else {
                    p.to_kind(Kind::Float)
                };
                let _ = p32.g_mul_scalar_(1.0 - lr * c.weight_decay);
                let _ = m.lerp_(&g, 1.0 - c.beta1);
                let _ = v.lerp_(&(&g * &g), 1.0 - c.beta2);
                // p -= lr / bias1 * m / (sqrt(v) / sqrt(bias2) + eps)
                let mut denom = v.sqrt();
                let _ = denom.g_div_scalar_(bias2.sqrt());
                let _ = denom.g_add_scalar_(c.eps);
                let _ = denom.g_mul_scalar_(-bias1 / lr);
                let _ = p32.addcdiv_(m, &denom);
                if !f32_param {
                    let mut p = p.shallow_clone();
                    p.copy_(&p32);
                }
            }
        });
    }

    /// The state as named tensors, for checkpoints: `exp_avg.{i}`, `exp_avg_sq.{i}`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let moments = |name: &str, ts: &[Tensor]| -> Vec<(String, Tensor)> {
            ts.iter()
                .enumerate()
                .map(|(i, t)| (format!("{name}.{i}"), t.shallow_clone()))
                .collect()
        };
        let mut out = moments("exp_avg", &self.exp_avg);
        out.extend(moments("exp_avg_sq", &self.exp_avg_sq));
        out
    }

    /// Restores moments saved by [`AdamW::state`] (and the step count, saved separately).
    pub fn load_state(&mut self, step: u64, named: &[(String, Tensor)]) -> Result<(), String> {
        let lookup = |name: String| {
            named
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or(name)
        };
        for i in 0..self.exp_avg.len() {
            let m = lookup(format!("exp_avg.{i}")).map_err(|n| format!("missing {n}"))?;
            let v = lookup(format!("exp_avg_sq.{i}")).map_err(|n| format!("missing {n}"))?;
            if m.size() != self.exp_avg[i].size() || v.size() != self.exp_avg_sq[i].size() {
                return Err(format!(
                    "optimizer slot {i}: expected shape {:?}, found {:?}",
                    self.exp_avg[i].size(),
                    m.size()
                ));
            }
            tch::no_grad(|| {
                self.exp_avg[i].copy_(&m);
                self.exp_avg_sq[i].copy_(&v);
            });
        }
        self.step = step;
        Ok(())
    }
}

/// Scales all gradients so that their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`: coefficient `max_norm / (norm + 1e-6)`, applied only when below 1).
/// Returns the norm before clipping, which the metrics report.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> f64 {
    let grads: Vec<Tensor> = params
        .iter()
        .map(|p| p.grad())
        .filter(|g| g.defined())
        .collect();
    let total: f64 = grads
        .iter()
        .map(|g| {
            // One reduction per gradient, without a converted copy of it.
            let norm = if g.kind() == Kind::Float {
                g.norm()
            } else {
                g.to_kind(Kind::Float).norm()
            };
            norm.double_value(&[]).powi(2)
        })
        .sum::<f64>()
        .sqrt();
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        tch::no_grad(|| {
            for g in &grads {
                let _ = g.shallow_clone().g_mul_scalar_(coef);
            }
        });
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scalar reference of the same update in f64, written from the formula in the docs.
    fn reference(p0: f64, grads: &[f64], lr: f64, c: AdamWConfig) -> f64 {
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

    fn param(values: &[f32]) -> Tensor {
        Tensor::from_slice(values).set_requires_grad(true)
    }

    fn set_grad(p: &Tensor, g: &[f32]) {
        let mut grad = p.grad();
        if !grad.defined() {
            // Populate .grad through a backward pass of sum(p * g).
            (p * Tensor::from_slice(g)).sum(Kind::Float).backward();
        } else {
            tch::no_grad(|| grad.copy_(&Tensor::from_slice(g)));
        }
    }

    #[test]
    fn adamw_matches_scalar_reference_over_several_steps() {
        let c = AdamWConfig::default();
        let p = param(&[0.5, -1.5]);
        let mut opt = AdamW::new(c, std::slice::from_ref(&p));
        let grads = [[0.1f32, -2.0], [0.3, 0.5], [-0.2, 1.0]];
        for g in &grads {
            set_grad(&p, g);
            opt.step(std::slice::from_ref(&p), 1e-2);
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
    fn state_round_trip_continues_identically() {
        let c = AdamWConfig::default();
        let (a, b) = (param(&[1.0, 2.0, 3.0]), param(&[1.0, 2.0, 3.0]));
        let mut oa = AdamW::new(c, std::slice::from_ref(&a));
        set_grad(&a, &[0.1, 0.2, 0.3]);
        oa.step(std::slice::from_ref(&a), 1e-3);
        // Copy a's parameter and optimizer state into b, then take the same step on both.
        tch::no_grad(|| b.shallow_clone().copy_(&a));
        let mut ob = AdamW::new(c, std::slice::from_ref(&b));
        ob.load_state(oa.step, &oa.state()).unwrap();
        set_grad(&a, &[-0.3, 0.0, 0.9]);
        set_grad(&b, &[-0.3, 0.0, 0.9]);
        oa.step(std::slice::from_ref(&a), 1e-3);
        ob.step(std::slice::from_ref(&b), 1e-3);
        assert!(a.equal(&b), "resumed optimizer diverged: {a} vs {b}");
    }

    #[test]
    fn load_state_rejects_wrong_shapes() {
        let a = param(&[1.0, 2.0]);
        let b = param(&[1.0, 2.0, 3.0]);
        let oa = AdamW::new(AdamWConfig::default(), std::slice::from_ref(&a));
        let mut ob = AdamW::new(AdamWConfig::default(), std::slice::from_ref(&b));
        let err = ob.load_state(0, &oa.state()).unwrap_err();
        assert!(err.contains("expected shape [3]"), "{err}");
    }

    #[test]
    fn clip_scales_to_max_norm_and_reports_the_original() {
        let p = param(&[0.0, 0.0]);
        set_grad(&p, &[3.0, 4.0]);
        let norm = clip_grad_norm(std::slice::from_ref(&p), 1.0);
        assert!((norm - 5.0).abs() < 1e-6);
        let g = p.grad();
        let clipped = (g.double_value(&[0]).powi(2) + g.double_value(&[1]).powi(2)).sqrt();
        assert!((clipped - 1.0).abs() < 1e-5, "clipped norm {clipped}");
        // Below the threshold nothing changes.
        let norm2 = clip_grad_norm(std::slice::from_ref(&p), 10.0);
        assert!((norm2 - clipped).abs() < 1e-6);
    }
}
