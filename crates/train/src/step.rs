//! One gradient-accumulation pass over a micro-batch, shared by the SFT and DAPO steps.
//!
//! Memory is bounded by configuration, not by trajectory length (docs/method.md section 10,
//! point 6): the log-probs are computed `chunk` positions at a time with each chunk's backward
//! finished before the next (`swerl_model::logprobs::backward_chunked`), and with activation
//! checkpointing only each layer's input is kept. Losses must therefore be sums over tokens
//! (any normaliser is a constant of the whole mini-batch), which both of ours are.

use swerl_model::logprobs::{backward_chunked, ChunkStats};
use swerl_model::qwen2::Qwen2;
use tch::{Kind, Tensor};

use crate::batch::Padded;

/// How a micro-batch is pushed through the model.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassOptions {
    /// Positions per log-softmax chunk: peak extra memory is one [chunk, vocab] block.
    pub logprob_chunk: i64,
    /// Recompute each decoder layer in the backward pass instead of storing activations.
    pub checkpointing: bool,
    /// Also compute per-token entropies (for metrics).
    pub entropy: bool,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions {
            logprob_chunk: 1024,
            checkpointing: false,
            entropy: false,
        }
    }
}

/// A padded micro-batch as tensors, shifted for next-token prediction: position `t` of
/// `input` predicts `targets[t]`, and every per-token array refers to the target.
#[derive(Debug)]
pub struct MicroTensors {
    /// [B, T-1] ids fed to the model.
    pub input: Tensor,
    /// [B, T-1] ids predicted.
    pub targets: Tensor,
    /// \[N\] flattened loss mask (f32), N = B * (T-1).
    pub mask: Tensor,
    /// \[N\] per-token advantages.
    pub advantages: Tensor,
    /// \[N\] sampler log-probs of the targets.
    pub sampler_logprobs: Tensor,
}

impl MicroTensors {
    /// Shifts a padded batch by one position and moves it to `device`.
    pub fn new(p: &Padded, device: tch::Device) -> Self {
        let (b, t) = (p.batch as i64, p.len as i64);
        let ids = Tensor::from_slice(&p.ids).view([b, t]).to_device(device);
        MicroTensors {
            input: ids.narrow(1, 0, t - 1),
            targets: ids.narrow(1, 1, t - 1),
            mask: Self::shifted(p, &p.mask, device),
            advantages: Self::shifted(p, &p.advantages, device),
            sampler_logprobs: Self::shifted(p, &p.sampler_logprobs, device),
        }
    }

    /// Per-token `values` laid out like `p` ([batch, len], row-major), shifted like the
    /// targets and flattened to \[N\] on `device`.
    pub fn shifted(p: &Padded, values: &[f32], device: tch::Device) -> Tensor {
        let (b, t) = (p.batch as i64, p.len as i64);
        Tensor::from_slice(values)
            .view([b, t])
            .narrow(1, 1, t - 1)
            .reshape([-1])
            .to_device(device)
    }
}

/// Forward + backward of one micro-batch. `chunk_loss(stats, start, len)` returns the loss
/// share of flattened target positions `start..start + len` (a scalar with graph); gradients
/// accumulate into the parameters' `.grad()`. Returns the summed loss value.
pub fn accumulate(
    model: &Qwen2,
    mb: &MicroTensors,
    opts: &PassOptions,
    chunk_loss: impl FnMut(&ChunkStats, i64, i64) -> Tensor,
) -> f64 {
    let head = |hidden: &Tensor| -> f64 {
        // Cut the graph at the final hidden states so the vocabulary projection can be
        // differentiated chunk by chunk, then push the collected gradient through the layers.
        let leaf = hidden.detach().set_requires_grad(true);
        let total = backward_chunked(
            model.lm_head_weight(),
            &leaf,
            &mb.targets,
            opts.logprob_chunk,
            opts.entropy,
            chunk_loss,
        );
        (hidden * leaf.grad()).sum(Kind::Float).backward();
        total
    };
    if opts.checkpointing {
        assert!(
            lora_dropout(model) == 0.0,
            "LoRA dropout with checkpointing: the recompute would draw other masks"
        );
        swerl_model::checkpoint::forward_backward_checkpointed(model, &mb.input, None, head)
    } else {
        head(&model.forward_hidden_train(&mb.input))
    }
}

/// What training updates, in a fixed order (by key) so optimizer slots and checkpoints line
/// up across runs: the factors of the LoRA adapter the model wears (its base is frozen), else
/// every parameter of the model.
pub fn named_parameters(model: &Qwen2) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = match model.lora() {
        Some(lora) => lora.named_tensors().into_iter().collect(),
        None => model.vs.variables().into_iter().collect(),
    };
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// The dropout of the adapter the model wears (0 without one).
pub fn lora_dropout(model: &Qwen2) -> f64 {
    model.lora().map_or(0.0, |l| l.config.dropout)
}

/// Seeds libtorch's generator from the optimizer step before a step whose adapter has
/// dropout, so its masks are a function of the step: a resumed run draws the same ones.
/// (Nothing else in the trainer draws from that generator.)
pub fn seed_dropout(model: &Qwen2, optimizer_step: u64) {
    if lora_dropout(model) > 0.0 {
        let mixed = optimizer_step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED_D50F;
        tch::manual_seed((mixed >> 1) as i64);
    }
}
