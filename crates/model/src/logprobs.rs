//! Log-probabilities of chosen tokens, computed a chunk of positions at a time.
//!
//! The naive way (`log_softmax(hidden @ W^T)` then gather) builds an [N, V] tensor for all N
//! positions; at 32k tokens and V = 152k that is 20 GB in f32. Here each chunk of positions
//! goes through lm_head -> log_softmax -> gather on its own, so the largest temporary is
//! [chunk, V].
//!
//! Under autograd, chunking the forward is not enough: every chunk's softmax is kept for the
//! backward pass, which adds back up to [N, V]. [`backward_chunked`] therefore finishes each
//! chunk's backward before the next chunk's forward (exact, because the token-level losses of
//! docs/method.md are sums over positions); [`token_logprobs`] with a graph is for short sequences
//! and tests.

use tch::{Kind, Tensor};

use crate::qwen2::Qwen2;

/// Per-position results of one chunk: log-prob of the target and, if asked, the entropy of
/// the whole distribution (both [n], f32).
#[derive(Debug)]
pub struct ChunkStats {
    pub logprobs: Tensor,
    pub entropy: Option<Tensor>,
}

/// Log-probs (and optionally entropies) of `targets` [n] given `hidden` [n, H] rows and the
/// output projection `lm_head` [V, H], at `temperature` (1.0 = the model's distribution).
/// Builds one [n, V] temporary; callers keep n to a chunk. The log-probs are differentiable;
/// the entropies never carry a gradient.
pub fn chunk_stats(
    hidden: &Tensor,
    lm_head: &Tensor,
    targets: &Tensor,
    temperature: f64,
    entropy: bool,
) -> ChunkStats {
    let logits = hidden.matmul(&lm_head.tr()).to_kind(Kind::Float); // [n, V]
    let logits = if temperature == 1.0 {
        logits
    } else {
        logits / temperature
    };
    let log_probs = logits.log_softmax(-1, Kind::Float);
    let chosen = log_probs
        .gather(-1, &targets.unsqueeze(-1), false)
        .squeeze_dim(-1); // [n]
                          // The entropy is a metric (the paper has no entropy bonus), so it is computed without
                          // autograd: under a graph, `exp` and the product would keep two more [n, V] tensors alive
                          // until the chunk's backward, doubling the chunk's peak memory for nothing.
    let entropy = entropy.then(|| {
        tch::no_grad(|| {
            let log_probs = log_probs.detach();
            -(log_probs.exp() * &log_probs).sum_dim_intlist(-1, false, Kind::Float)
        })
    });
    ChunkStats {
        logprobs: chosen,
        entropy,
    }
}

/// Flattens [B, T, H] hidden states and [B, T] targets to [N, H] and [N].
fn flatten(hidden: &Tensor, targets: &Tensor) -> (Tensor, Tensor) {
    let h = *hidden
        .size()
        .last()
        .expect("hidden states have a last dimension");
    (hidden.reshape([-1, h]), targets.reshape([-1]))
}

/// Log-probs of `targets` [B, T] under the model's distributions at hidden states
/// [B, T, H] (final-normed, as [`Qwen2::forward_hidden`] returns), `chunk` positions at a time.
/// Returns log-probs [B, T] (differentiable) and, if `with_entropy`, entropies [B, T] (f32,
/// no gradient).
pub fn logprobs_from_hidden(
    model: &Qwen2,
    hidden: &Tensor,
    targets: &Tensor,
    chunk: i64,
    with_entropy: bool,
) -> (Tensor, Option<Tensor>) {
    chunked_logprobs(hidden, model.lm_head_weight(), targets, chunk, with_entropy)
}

/// [`logprobs_from_hidden`] for any output projection `lm_head` [V, H].
pub fn chunked_logprobs(
    hidden: &Tensor,
    lm_head: &Tensor,
    targets: &Tensor,
    chunk: i64,
    with_entropy: bool,
) -> (Tensor, Option<Tensor>) {
    let shape = targets.size();
    let (hidden, targets) = flatten(hidden, targets);
    let n = targets.size()[0];
    let chunk = chunk.max(1);
    let (mut lps, mut ents) = (Vec::new(), Vec::new());
    for start in (0..n).step_by(chunk as usize) {
        let len = chunk.min(n - start);
        let stats = chunk_stats(
            &hidden.narrow(0, start, len),
            lm_head,
            &targets.narrow(0, start, len),
            1.0,
            with_entropy,
        );
        lps.push(stats.logprobs);
        ents.extend(stats.entropy);
    }
    let entropy = with_entropy.then(|| Tensor::cat(&ents, 0).view(shape.as_slice()));
    (Tensor::cat(&lps, 0).view(shape.as_slice()), entropy)
}

/// Log-probs [B, T] of `targets` [B, T] given `input_ids` [B, T] (targets are usually the
/// inputs shifted by one). Keeps the autograd graph when gradients are enabled.
pub fn token_logprobs(model: &Qwen2, input_ids: &Tensor, targets: &Tensor, chunk: i64) -> Tensor {
    let hidden = model.forward_hidden(input_ids, None);
    logprobs_from_hidden(model, &hidden, targets, chunk, false).0
}

/// Runs a per-token loss over hidden states chunk by chunk, finishing each chunk's backward
/// before the next one, so peak extra memory is one [chunk, V] block however long N is.
///
/// `hidden` [B, T, H] must be a leaf that requires grad (detach the model's output and call
/// `set_requires_grad(true)`); its `.grad()` then holds dLoss/dHidden for the layers below,
/// and the gradient of `lm_head` [V, H] (pass [`Qwen2::lm_head_weight`]) is accumulated as
/// usual. `loss_fn(stats, start, len)` gets the
/// chunk's stats over flattened positions `start..start + len` and returns that chunk's share
/// of the (sum-decomposable) loss as a scalar. Returns the total loss (no graph).
pub fn backward_chunked(
    lm_head: &Tensor,
    hidden: &Tensor,
    targets: &Tensor,
    chunk: i64,
    with_entropy: bool,
    mut loss_fn: impl FnMut(&ChunkStats, i64, i64) -> Tensor,
) -> f64 {
    let targets = targets.reshape([-1]);
    let n = targets.size()[0];
    let chunk = chunk.max(1);
    let mut total = 0.0;
    for start in (0..n).step_by(chunk as usize) {
        let len = chunk.min(n - start);
        // Flattened afresh per chunk so each backward walks a graph of its own.
        let (flat_hidden, _) = flatten(hidden, &targets);
        let stats = chunk_stats(
            &flat_hidden.narrow(0, start, len),
            lm_head,
            &targets.narrow(0, start, len),
            1.0,
            with_entropy,
        );
        let loss = loss_fn(&stats, start, len);
        total += loss.double_value(&[]);
        // Frees this chunk's [len, V] softmax before the next chunk allocates its own. The
        // graph from `hidden` (a leaf) upwards is rebuilt per chunk, so no retain is needed.
        loss.backward();
    }
    total
}

/// Per-token scores of one sequence, for cross-checking other implementations.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceScore {
    /// log p(token i | tokens < i) for i >= 1 (the first token has no prediction).
    pub logprobs: Vec<f32>,
    /// Logits [T][V] at every position (position i predicts token i + 1), if asked.
    pub logits: Option<Vec<Vec<f32>>>,
}

/// Scores `tokens` with one forward pass, without gradients.
pub fn score_sequence(
    model: &Qwen2,
    tokens: &[u32],
    chunk: i64,
    with_logits: bool,
) -> SequenceScore {
    if tokens.is_empty() {
        return SequenceScore {
            logprobs: Vec::new(),
            logits: with_logits.then(Vec::new),
        };
    }
    let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
    let ids = Tensor::from_slice(&ids)
        .unsqueeze(0)
        .to_device(model.device());
    let t = ids.size()[1];
    tch::no_grad(|| {
        let hidden = model.forward_hidden(&ids, None); // [1, T, H]
        let logprobs = match t {
            0 | 1 => Vec::new(),
            _ => {
                let (lp, _) = logprobs_from_hidden(
                    model,
                    &hidden.narrow(1, 0, t - 1),
                    &ids.narrow(1, 1, t - 1),
                    chunk,
                    false,
                );
                Vec::<f32>::try_from(lp.flatten(0, -1).to_device(tch::Device::Cpu))
                    .expect("f32 log-probs")
            }
        };
        let logits = with_logits.then(|| {
            let all = hidden
                .squeeze_dim(0)
                .matmul(&model.lm_head_weight().tr())
                .to_kind(Kind::Float);
            Vec::<Vec<f32>>::try_from(all.to_device(tch::Device::Cpu)).expect("f32 logits")
        });
        SequenceScore { logprobs, logits }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entropy written out per row from the definition, in f64.
    fn entropy_by_hand(logits: &[f64]) -> f64 {
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
        logits
            .iter()
            .map(|l| {
                let lp = l - max - z.ln();
                -lp.exp() * lp
            })
            .sum()
    }

    #[test]
    fn entropy_is_the_distributions_and_carries_no_gradient() {
        tch::manual_seed(3);
        let hidden = Tensor::randn([5, 4], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let lm_head =
            Tensor::randn([7, 4], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let targets = Tensor::from_slice(&[0i64, 6, 3, 3, 1]);
        let stats = chunk_stats(&hidden, &lm_head, &targets, 1.0, true);
        let entropy = stats.entropy.expect("asked for entropy");
        assert!(stats.logprobs.requires_grad(), "log-probs are trained");
        assert!(!entropy.requires_grad(), "the entropy is a metric only");
        let logits = Vec::<Vec<f64>>::try_from(
            hidden
                .detach()
                .matmul(&lm_head.detach().tr())
                .to_kind(Kind::Double),
        )
        .unwrap();
        let got = Vec::<f32>::try_from(entropy).unwrap();
        for (row, (g, l)) in got.iter().zip(&logits).enumerate() {
            let want = entropy_by_hand(l);
            assert!(
                (f64::from(*g) - want).abs() < 1e-5,
                "row {row}: {g} vs {want}"
            );
        }
    }
}
