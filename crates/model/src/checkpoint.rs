//! Layer-wise activation checkpointing: keep only each decoder layer's input during the
//! forward pass and recompute the layer during the backward pass.
//!
//! tch has no `torch.utils.checkpoint`, so the backward is walked by hand: the forward runs
//! under `no_grad` saving each layer's (detached) input; the loss is then differentiated
//! with respect to the final hidden states; and each layer, from the top down, is re-run from
//! its saved input with gradients on and back-propagated with the gradient that came from
//! above, `(out * grad_out).sum().backward()`, which accumulates the parameter gradients and
//! yields the gradient for the layer below. Memory: L saved [B, T, H] inputs plus one
//! layer's activations, instead of every layer's activations.

use tch::Tensor;

use crate::qwen2::Qwen2;

/// Forward and backward through `model` with layer-wise recompute; parameter gradients are
/// accumulated into `.grad()` as a plain `loss.backward()` would.
///
/// `loss_fn(hidden)` gets the final-normed hidden states [B, T, H] and must call `backward`
/// on its loss itself, returning the loss value: this lets it use
/// [`crate::logprobs::backward_chunked`] so no [T, V] tensor is alive at once. For a simple
/// loss write `|h| { let l = f(h); l.backward(); l.double_value(&[]) }`.
///
/// The adapter's dropout stays off here: the recompute would draw other masks than the
/// first pass, and the gradient would belong to neither (the trainer refuses LoRA dropout
/// with checkpointing rather than saving and restoring the generator's state per layer).
pub fn forward_backward_checkpointed(
    model: &Qwen2,
    input_ids: &Tensor,
    attention_mask: Option<&Tensor>,
    loss_fn: impl FnOnce(&Tensor) -> f64,
) -> f64 {
    let inputs = tch::no_grad(|| model.layer_inputs(input_ids, attention_mask));
    let (saved, top) = tch::no_grad(|| {
        let mut saved = Vec::with_capacity(model.num_layers());
        let mut x = model.embed(input_ids);
        for i in 0..model.num_layers() {
            let next = model.layer_forward(i, &x, &inputs);
            saved.push(x);
            x = next;
        }
        (saved, x)
    });
    let top = top.detach().set_requires_grad(true);
    let loss = loss_fn(&model.final_norm(&top));
    let mut grad = top.grad();
    for (i, x) in saved.iter().enumerate().rev() {
        let x = x.detach().set_requires_grad(true);
        let out = model.layer_forward(i, &x, &inputs);
        (out * &grad).sum(grad.kind()).backward();
        grad = x.grad();
    }
    let embedded = model.embed(input_ids);
    // A frozen embedding (LoRA training) has nothing to receive this gradient.
    if embedded.requires_grad() {
        (embedded * &grad).sum(grad.kind()).backward();
    }
    loss
}
