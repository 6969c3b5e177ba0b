//! The trainable state and the one optimizer step over it.
//!
//! Mixed precision as PyTorch FSDP's `MixedPrecision(param_dtype=bf16, reduce_dtype=f32)`
//! with an f32 optimizer does it. Every trained tensor has
//! - a *working* copy: the model's own variable, what forward and backward compute with (bf16
//!   or f32);
//! - an f32 *master* copy, which AdamW updates, present only when the working copy is not f32
//!   (an f32 parameter is its own master: no copy, so f32 training is exactly what it was);
//! - an f32 gradient, accumulated across micro-batches ([`Trainable::grads_to_f32`] after each
//!   backward), again only when the working copy is not f32, allocated at the first backward
//!   that reaches the tensor (as autograd allocates `.grad`, so a tensor no backward reached
//!   is skipped by AdamW in both precisions);
//! - its AdamW moments, always f32.
//!
//! The step is a list of named stages, each public so that a distributed trainer can put its
//! collectives between them: gradients to f32 -> global-norm clip -> AdamW on the masters ->
//! refresh the working copies from the masters ([`Trainable::step`] composes them).
//!
//! Rejected alternative: applying AdamW's update to bf16 weights in place (what this crate
//! once did). At the paper's learning rates (1e-6 .. 5e-6) the update of a weight of magnitude
//! 1e-2 is ~1e-4 relative, below half a bf16 ulp (~2e-3 relative), so nearly every update
//! rounds away and the run learns nothing while its loss curve looks healthy.
//! Also rejected: accumulating micro-batch gradients in bf16 and converting at the step (as
//! FSDP's `no_sync` accumulation does): it saves 4 bytes per parameter but rounds every
//! micro-batch's contribution to 8 bits of mantissa; Megatron-LM keeps f32 `main_grad`
//! buffers for the same reason.

use tch::{Kind, Tensor};

use crate::optim::{adamw_update, clip_grad_norm, AdamWConfig};

/// One trained tensor: its working copy, f32 master and gradient (when the working copy is not
/// f32) and AdamW moments.
#[derive(Debug)]
pub struct Param {
    /// Checkpoint key (e.g. `model.layers.0.mlp.up_proj.weight`).
    pub name: String,
    /// The tensor the model computes with (a variable of its `VarStore`).
    pub working: Tensor,
    master: Option<Tensor>,
    /// The f32 gradient of a tensor with a master, once a backward has reached it.
    grad: Option<Tensor>,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

impl Param {
    fn new(name: String, working: Tensor) -> Self {
        let f32_zeros = || Tensor::zeros(working.size(), (Kind::Float, working.device()));
        let master = (working.kind() != Kind::Float)
            .then(|| tch::no_grad(|| working.detach().to_kind(Kind::Float)));
        Param {
            name,
            master,
            grad: None,
            exp_avg: f32_zeros(),
            exp_avg_sq: f32_zeros(),
            working,
        }
    }

    /// The f32 values that training updates: the master copy, or the working copy when that is
    /// f32 already.
    pub fn master(&self) -> &Tensor {
        self.master.as_ref().unwrap_or(&self.working)
    }

    /// Whether the working copy is a rounded image of an f32 master (mixed precision).
    pub fn has_master(&self) -> bool {
        self.master.is_some()
    }

    /// The accumulated f32 gradient, or `None` when no backward reached this tensor.
    pub fn f32_grad(&self) -> Option<Tensor> {
        if self.master.is_some() {
            return self.grad.as_ref().map(Tensor::shallow_clone);
        }
        let g = self.working.grad();
        g.defined().then_some(g)
    }
}

/// The working parameters, their f32 masters and gradients, AdamW's moments and step count,
/// in a fixed order (the order is the identity of each optimizer slot in checkpoints).
#[derive(Debug)]
pub struct Trainable {
    pub params: Vec<Param>,
    pub adamw: AdamWConfig,
    /// Updates taken so far (`t` in AdamW's bias correction).
    pub step: u64,
}

impl Trainable {
    /// Trainable state over `named` working tensors: f32 masters are copied from the working
    /// values where those are not f32; moments start at zero.
    pub fn new(named: Vec<(String, Tensor)>, adamw: AdamWConfig) -> Self {
        Trainable {
            params: named.into_iter().map(|(n, t)| Param::new(n, t)).collect(),
            adamw,
            step: 0,
        }
    }

    /// Checkpoint keys in slot order.
    pub fn names(&self) -> Vec<String> {
        self.params.iter().map(|p| p.name.clone()).collect()
    }

    /// Clears every gradient (working and f32) before a new step's backward passes.
    pub fn zero_grad(&self) {
        for p in &self.params {
            zero_if_defined(p.working.grad());
            if let Some(g) = &p.grad {
                zero_if_defined(g.shallow_clone());
            }
        }
    }

    /// Stage 1, after each micro-batch's backward: adds the working copies' gradients into
    /// the f32 gradients and clears them. A no-op for f32 parameters, whose `.grad()` already
    /// accumulates in f32.
    pub fn grads_to_f32(&mut self) {
        tch::no_grad(|| {
            for p in self.params.iter_mut().filter(|p| p.master.is_some()) {
                let g = p.working.grad();
                if !g.defined() {
                    continue;
                }
                match &mut p.grad {
                    Some(acc) => {
                        let _ = acc.g_add_(&g);
                    }
                    None => p.grad = Some(g.to_kind(Kind::Float)),
                }
                zero_if_defined(g);
            }
        });
    }

    /// The f32 gradient of every slot (`None` where no backward reached it), for stage 2.
    pub fn f32_grads(&self) -> Vec<Option<Tensor>> {
        self.params.iter().map(Param::f32_grad).collect()
    }

    /// Stage 3: one AdamW update of every master that has a gradient, at learning rate `lr`.
    pub fn apply_adamw(&mut self, grads: &[Option<Tensor>], lr: f64) {
        assert_eq!(grads.len(), self.params.len(), "one gradient per slot");
        self.step += 1;
        for (p, g) in self.params.iter_mut().zip(grads) {
            if let Some(g) = g {
                let master = p.master.as_ref().unwrap_or(&p.working);
                adamw_update(
                    master,
                    g,
                    (&mut p.exp_avg, &mut p.exp_avg_sq),
                    lr,
                    self.step,
                    &self.adamw,
                );
            }
        }
    }

    /// Stage 4: each working copy becomes its master rounded to the working dtype (round to
    /// nearest even, as `tensor.to(torch.bfloat16)`).
    pub fn refresh_working(&self) {
        tch::no_grad(|| {
            for p in &self.params {
                if let Some(master) = &p.master {
                    p.working.shallow_clone().copy_(master);
                }
            }
        });
    }

    /// One optimizer step on the accumulated gradients: to f32, clip to `max_grad_norm` on
    /// the global norm, AdamW on the masters, refresh the working copies. Returns the global
    /// gradient norm before clipping.
    pub fn step(&mut self, lr: f64, max_grad_norm: f64) -> f64 {
        self.grads_to_f32();
        let grads = self.f32_grads();
        let defined: Vec<Tensor> = grads.iter().flatten().map(Tensor::shallow_clone).collect();
        let norm = clip_grad_norm(&defined, max_grad_norm);
        self.apply_adamw(&grads, lr);
        self.refresh_working();
        norm
    }

    /// The state as named tensors, for checkpoints: `exp_avg.{i}`, `exp_avg_sq.{i}` and, for
    /// slots with an f32 master, `master.{i}` (the working copy is saved with the model).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            out.push((format!("exp_avg.{i}"), p.exp_avg.shallow_clone()));
            out.push((format!("exp_avg_sq.{i}"), p.exp_avg_sq.shallow_clone()));
            if let Some(m) = &p.master {
                out.push((format!("master.{i}"), m.shallow_clone()));
            }
        }
        out
    }

    /// Restores what [`Trainable::state`] saved (and the step count, saved separately), then
    /// refreshes the working copies from the restored masters, so a resumed run continues from
    /// the f32 values and not from their rounded images.
    pub fn load_state(&mut self, step: u64, named: &[(String, Tensor)]) -> Result<(), String> {
        for (i, p) in self.params.iter_mut().enumerate() {
            let slot = format!("optimizer slot {i} ({})", p.name);
            restore(named, &format!("exp_avg.{i}"), &mut p.exp_avg, &slot)?;
            restore(named, &format!("exp_avg_sq.{i}"), &mut p.exp_avg_sq, &slot)?;
            let key = format!("master.{i}");
            let saved = named.iter().any(|(n, _)| *n == key);
            match (&mut p.master, saved) {
                (Some(master), true) => restore(named, &key, master, &slot)?,
                (None, false) => {}
                (Some(_), false) => {
                    return Err(format!(
                        "{slot}: no f32 master weights saved (the run trained in float32); \
                         load the model in float32 to resume it"
                    ))
                }
                (None, true) => {
                    return Err(format!(
                        "{slot}: f32 master weights saved (the run trained with bfloat16 \
                         working weights); load the model in bfloat16 to resume it"
                    ))
                }
            }
        }
        self.step = step;
        self.refresh_working();
        Ok(())
    }
}

/// Copies the saved tensor `key` into `into`, checking its shape.
fn restore(
    named: &[(String, Tensor)],
    key: &str,
    into: &mut Tensor,
    slot: &str,
) -> Result<(), String> {
    let (_, t) = named
        .iter()
        .find(|(n, _)| n == key)
        .ok_or_else(|| format!("{slot}: missing {key}"))?;
    if t.size() != into.size() {
        return Err(format!(
            "{slot}: {key} has shape {:?}, expected shape {:?}",
            t.size(),
            into.size()
        ));
    }
    tch::no_grad(|| into.copy_(t));
    Ok(())
}

fn zero_if_defined(mut t: Tensor) {
    if t.defined() {
        let _ = t.zero_();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trainable(values: &[f32], kind: Kind) -> Trainable {
        let p = Tensor::from_slice(values)
            .to_kind(kind)
            .set_requires_grad(true);
        Trainable::new(vec![("w".into(), p)], AdamWConfig::default())
    }

    /// Adds `g` to the working copy's gradient through a backward pass of `sum(w * g)`.
    fn backward(t: &Trainable, g: &[f32]) {
        let w = &t.params[0].working;
        let g = Tensor::from_slice(g).to_kind(w.kind());
        (w * g).sum(Kind::Float).backward();
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap()
    }

    #[test]
    fn an_f32_parameter_is_its_own_master() {
        let t = trainable(&[1.0, 2.0], Kind::Float);
        assert!(!t.params[0].has_master());
        assert!(t.params[0].master().equal(&t.params[0].working));
        assert_eq!(t.state().len(), 2, "moments only: {:?}", t.names());
    }

    #[test]
    fn bf16_updates_below_half_an_ulp_accumulate_in_the_master() {
        // bf16 resolves 2^-7 near 1.0: a pure-bf16 AdamW step of ~1e-4 would round away every
        // time and leave 1.0 forever.
        let c = AdamWConfig::default();
        let mut t = trainable(&[1.0, -1.0], Kind::BFloat16);
        let grads = [1.0f32, -0.5];
        for _ in 0..40 {
            t.zero_grad();
            backward(&t, &grads);
            t.step(1e-4, 10.0);
        }
        for (i, (p0, g)) in [(1.0, 1.0), (-1.0, -0.5)].into_iter().enumerate() {
            let want = crate::optim::tests::reference(p0, &[g; 40], 1e-4, c);
            let master = values(t.params[0].master())[i];
            // f32 rounding of 40 updates near 1.0 (ulp 1.2e-7); bf16 in place would be 4e-3 off.
            assert!((master - want).abs() < 1e-5, "master {master}, want {want}");
        }
        let rounded = t.params[0].master().to_kind(Kind::BFloat16);
        assert!(
            t.params[0].working.equal(&rounded),
            "working = round(master)"
        );
        assert_ne!(values(&t.params[0].working), vec![1.0, -1.0]);
    }

    #[test]
    fn micro_batch_gradients_accumulate_in_f32() {
        let mut t = trainable(&[1.0], Kind::BFloat16);
        assert!(t.f32_grads()[0].is_none(), "no backward yet, no gradient");
        t.zero_grad();
        backward(&t, &[1.0]);
        t.grads_to_f32();
        backward(&t, &[1e-3]);
        t.grads_to_f32();
        let g = values(&t.f32_grads()[0].as_ref().unwrap().shallow_clone());
        // In bf16, 1 + 1e-3 is 1.
        assert!((g[0] - 1.001).abs() < 1e-6, "{g:?}");
        assert_eq!(values(&t.params[0].working.grad()), vec![0.0]);
    }

    #[test]
    fn state_round_trip_continues_identically() {
        for kind in [Kind::Float, Kind::BFloat16] {
            let (mut a, mut b) = (
                trainable(&[1.0, 2.0, 3.0], kind),
                trainable(&[5.0, 5.0, 5.0], kind),
            );
            backward(&a, &[0.1, 0.2, 0.3]);
            a.step(1e-3, 1.0);
            // b gets a's state (the working copy from the "model directory", then the rest).
            tch::no_grad(|| {
                b.params[0]
                    .working
                    .shallow_clone()
                    .copy_(&a.params[0].working)
            });
            b.load_state(a.step, &a.state()).unwrap();
            for t in [&a, &b] {
                t.zero_grad();
                backward(t, &[-0.3, 0.0, 0.9]);
            }
            a.step(1e-3, 1.0);
            b.step(1e-3, 1.0);
            let (pa, pb) = (&a.params[0], &b.params[0]);
            assert!(pa.master().equal(pb.master()), "{kind:?}: masters diverged");
            assert!(pa.working.equal(&pb.working), "{kind:?}: working diverged");
        }
    }

    #[test]
    fn load_state_names_what_does_not_fit() {
        let a = trainable(&[1.0, 2.0], Kind::Float);
        let mut b = trainable(&[1.0, 2.0, 3.0], Kind::Float);
        let err = b.load_state(0, &a.state()).unwrap_err();
        assert!(err.contains("expected shape [3]"), "{err}");
        let mut bf = trainable(&[1.0, 2.0], Kind::BFloat16);
        let err = bf.load_state(0, &a.state()).unwrap_err();
        assert!(err.contains("load the model in float32"), "{err}");
        let mut f = trainable(&[1.0, 2.0], Kind::Float);
        let err = f
            .load_state(0, &trainable(&[1.0, 2.0], Kind::BFloat16).state())
            .unwrap_err();
        assert!(err.contains("load the model in bfloat16"), "{err}");
    }
}
