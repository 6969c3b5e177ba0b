//! Benchmark kernels for `swerl bench model`: forward+backward and decode throughput, and the
//! peak memory of chunked versus naive log-probs. The PyTorch side of the comparison is
//! crates/model/reference/bench_torch.py, run on the same config and inputs.
//!
//! These functions time and measure; they assert nothing (no thresholds in tests).

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::config::Qwen2Config;
use crate::generate::{generate, GenerationConfig, GenerationRequest};
use crate::logprobs::{backward_chunked, chunked_logprobs};
use crate::qwen2::Qwen2;
use crate::sampling::SamplingParams;

/// The benchmark model shape (a small Qwen2.5-like config that runs on CPU in seconds).
pub fn bench_config() -> Qwen2Config {
    let mut c = Qwen2Config::tiny();
    c.vocab_size = 32_000;
    c.hidden_size = 512;
    c.intermediate_size = 1_408;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 2;
    c.head_dim = 64;
    c.max_position_embeddings = 4_096;
    c
}

/// Deterministic token ids [batch, len] in 3..vocab.
pub fn bench_ids(batch: i64, len: i64, vocab: i64, device: Device) -> Tensor {
    let n = batch * len;
    let ids: Vec<i64> = (0..n).map(|i| 3 + (i * 7919 + 13) % (vocab - 3)).collect();
    Tensor::from_slice(&ids)
        .view([batch, len])
        .to_device(device)
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Tokens per second of forward + backward of the mean next-token loss (chunked log-probs),
/// averaged over `iters` steps after one warm-up step.
pub fn forward_backward_tokens_per_s(model: &Qwen2, batch: i64, len: i64, iters: usize) -> f64 {
    let ids = bench_ids(
        batch,
        len + 1,
        model.config.vocab_size as i64,
        model.device(),
    );
    let (inputs, targets) = (ids.narrow(1, 0, len), ids.narrow(1, 1, len));
    let step = || {
        let hidden = model.forward_hidden(&inputs, None);
        let (lp, _) = chunked_logprobs(&hidden, model.lm_head_weight(), &targets, 1024, false);
        (-lp.mean(Kind::Float)).backward();
    };
    step();
    sync(model.device());
    let start = Instant::now();
    for _ in 0..iters {
        step();
    }
    sync(model.device());
    (batch * len) as f64 * iters as f64 / start.elapsed().as_secs_f64()
}

/// New tokens per second of greedy decoding `new_tokens` after prompts of `prompt_len`
/// (prefill included in the time, as `generate` in transformers does).
pub fn decode_tokens_per_s(
    model: &Qwen2,
    batch: usize,
    prompt_len: usize,
    new_tokens: usize,
) -> f64 {
    let ids = bench_ids(
        batch as i64,
        prompt_len as i64,
        model.config.vocab_size as i64,
        Device::Cpu,
    );
    let rows = Vec::<Vec<i64>>::try_from(ids).expect("i64 ids");
    let requests: Vec<GenerationRequest> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| GenerationRequest {
            prompt: r.into_iter().map(|t| t as u32).collect(),
            seed: i as u64,
        })
        .collect();
    let config = GenerationConfig {
        sampling: SamplingParams::greedy(),
        max_new_tokens: new_tokens,
        stop_token_ids: Vec::new(),
        sample_vocab: None,
    };
    generate(
        model,
        &requests[..1],
        &GenerationConfig {
            max_new_tokens: 2,
            ..config.clone()
        },
        None,
    )
    .expect("warm-up generation");
    let start = Instant::now();
    let out = generate(model, &requests, &config, None).expect("benchmark generation");
    let produced: usize = out.iter().map(|o| o.tokens.len()).sum();
    produced as f64 / start.elapsed().as_secs_f64()
}

/// Rise of the process's peak resident set (bytes) while `f` runs, from /proc/self/status
/// (Linux; CPU memory only). glibc may keep freed blocks resident, so this is an upper bound
/// on what `f`'s live tensors needed; set `MALLOC_MMAP_THRESHOLD_=65536` in the environment
/// for a tight number.
pub fn peak_rss_rise(f: impl FnOnce()) -> Option<u64> {
    let read = |field: &str| -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kib| kib * 1024)
    };
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    let before = read("VmRSS:")?;
    f();
    Some(read("VmHWM:")?.saturating_sub(before))
}

/// Peak RSS rise (bytes) of log-prob forward+backward over `n` positions with hidden size
/// `h` and vocabulary `v`: `(chunked with `chunk`, naive full-logits)`.
pub fn logprob_peak_memory(n: i64, h: i64, v: i64, chunk: i64) -> (Option<u64>, Option<u64>) {
    let opts = (Kind::Float, Device::Cpu);
    let hidden = Tensor::randn([n, h], opts).set_requires_grad(true);
    let lm_head = (Tensor::randn([v, h], opts) * 0.02).set_requires_grad(true);
    let targets = Tensor::randint(v, [n], (Kind::Int64, Device::Cpu));
    let chunked = peak_rss_rise(|| {
        backward_chunked(&lm_head, &hidden, &targets, chunk, false, |s, _, _| {
            -s.logprobs.sum(Kind::Float)
        });
    });
    let naive = peak_rss_rise(|| {
        let logits = hidden.matmul(&lm_head.tr());
        let lp = logits
            .log_softmax(-1, Kind::Float)
            .gather(-1, &targets.unsqueeze(-1), false);
        (-lp.sum(Kind::Float)).backward();
    });
    (chunked, naive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_run_on_a_tiny_model() {
        let model = Qwen2::new(Qwen2Config::tiny(), Device::Cpu, Kind::Float);
        assert!(forward_backward_tokens_per_s(&model, 2, 16, 1) > 0.0);
        assert!(decode_tokens_per_s(&model, 2, 4, 3) > 0.0);
        let (chunked, naive) = logprob_peak_memory(64, 8, 64, 16);
        assert!(chunked.is_some() && naive.is_some());
    }
}
