//! Batched generation over token ids with a KV cache.
//!
//! Prompts of different lengths are left-padded to one width; padding keys are masked and
//! position ids restart at each prompt's first real token, so every sequence sees exactly
//! what it would see alone. Each request has its own seeded random stream, so its samples do
//! not depend on the global torch RNG or on the other requests in the batch.
//!
//! [`generate_reusing`] also takes keys and values already computed for a prefix of each
//! prompt (a multi-turn episode's earlier turns) and returns those of every sequence, so a
//! caller can skip re-running the shared history through the model at every turn.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::qwen2::{positions_from_mask, KvCache, Qwen2, SequenceKv};
use crate::sampling::{sample, SamplingError, SamplingParams};

/// Asked after each new token with the tokens generated so far for one request; true ends
/// that request (decode the tokens and look for stop strings there).
pub type StopFn<'a> = &'a dyn Fn(&[u32]) -> bool;

/// One prompt to continue.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    /// Prompt token ids (non-empty).
    pub prompt: Vec<u32>,
    /// Seed of this request's sampling stream.
    pub seed: u64,
}

/// Settings shared by a batch.
#[derive(Debug, Clone)]
pub struct GenerationConfig {
    pub sampling: SamplingParams,
    /// Upper bound on new tokens per request.
    pub max_new_tokens: usize,
    /// Ids that end a sequence (kept as its last token), e.g. the config's EOS ids.
    pub stop_token_ids: Vec<u32>,
    /// Only ids below this are ever sampled, and log-probs are of the distribution over
    /// them. A checkpoint may pad its embedding matrix beyond its tokenizer (Qwen2.5:
    /// 151936 rows, 151665 tokens); the padded ids decode to nothing. None = every id.
    pub sample_vocab: Option<usize>,
}

impl GenerationConfig {
    /// `sampling` for up to `max_new_tokens`, stopping at the model config's EOS ids.
    pub fn with_eos(
        config: &crate::config::Qwen2Config,
        sampling: SamplingParams,
        max_new_tokens: usize,
    ) -> Self {
        GenerationConfig {
            sampling,
            max_new_tokens,
            stop_token_ids: config.eos_token_ids.clone(),
            sample_vocab: None,
        }
    }
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// It produced one of `stop_token_ids`.
    StopToken,
    /// The stop callback (stop strings) said so.
    StopCallback,
    /// It reached `max_new_tokens`.
    Length,
}

/// One request's continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOutput {
    /// Sampled ids, including the stop token if one ended it.
    pub tokens: Vec<u32>,
    /// Each token's log-prob under the full distribution at the sampling temperature
    /// (temperature 1 for greedy).
    pub logprobs: Vec<f32>,
    pub finish: FinishReason,
}

/// A request the batch cannot run.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("request {index} has an empty prompt; generation needs at least one token")]
    EmptyPrompt { index: usize },
    #[error("request {index}: prompt ({prompt} tokens) + max_new_tokens ({max_new}) exceeds the model's {limit} positions")]
    TooLong {
        index: usize,
        prompt: usize,
        max_new: usize,
        limit: usize,
    },
    #[error("request {index}: token id {id} is outside the vocabulary of {vocab}")]
    BadToken { index: usize, id: u32, vocab: usize },
    #[error("sample_vocab is 0; at least one id must be sampleable")]
    EmptySampleVocab,
    #[error("request {index}: its cached prefix does not fit this model or prompt: {why}")]
    BadPrefix { index: usize, why: String },
    #[error(transparent)]
    Sampling(#[from] SamplingError),
}

/// Keys and values already computed for the first `len` tokens of a request's prompt, by
/// the same weights (e.g. the sequence of an earlier turn that this prompt continues).
#[derive(Debug, Clone, Copy)]
pub struct CachedPrefix<'a> {
    pub kv: &'a SequenceKv,
    pub len: usize,
}

/// Continues every request; `stop(tokens)` is asked after each new token with the tokens
/// generated so far for that request (decode them and look for stop strings there).
pub fn generate(
    model: &Qwen2,
    requests: &[GenerationRequest],
    config: &GenerationConfig,
    stop: Option<StopFn<'_>>,
) -> Result<Vec<GenerationOutput>, GenerateError> {
    check_requests(model, requests, config)?;
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    Ok(tch::no_grad(|| {
        let mut batch = Batch::new(model, requests, &[], config);
        batch.run(stop);
        batch.finish()
    }))
}

/// [`generate`] that starts from the cached keys and values of `prefixes[i]` (at most one
/// per request; none = compute the whole prompt) and returns, with each output, the keys
/// and values of that request's prompt and all but its last sampled token (the last one
/// was never fed back through the model). A prefix is used up to one token before the
/// prompt's end, since the last prompt position must be run to get the next logits.
pub fn generate_reusing(
    model: &Qwen2,
    requests: &[GenerationRequest],
    prefixes: &[Option<CachedPrefix<'_>>],
    config: &GenerationConfig,
    stop: Option<StopFn<'_>>,
) -> Result<Vec<(GenerationOutput, SequenceKv)>, GenerateError> {
    check_requests(model, requests, config)?;
    check_prefixes(model, requests, prefixes)?;
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    Ok(tch::no_grad(|| {
        let mut batch = Batch::new(model, requests, prefixes, config);
        batch.run(stop);
        let kv = (0..requests.len())
            .map(|i| batch.sequence_kv(i))
            .collect::<Vec<_>>();
        batch.finish().into_iter().zip(kv).collect()
    }))
}

fn check_prefixes(
    model: &Qwen2,
    requests: &[GenerationRequest],
    prefixes: &[Option<CachedPrefix<'_>>],
) -> Result<(), GenerateError> {
    if prefixes.len() > requests.len() {
        return Err(GenerateError::BadPrefix {
            index: requests.len(),
            why: format!(
                "{} prefixes for {} requests",
                prefixes.len(),
                requests.len()
            ),
        });
    }
    let c = &model.config;
    let want = [c.num_key_value_heads as i64, -1, c.head_dim as i64];
    for (index, p) in prefixes.iter().enumerate() {
        let Some(p) = p else { continue };
        let bad = |why: String| Err(GenerateError::BadPrefix { index, why });
        if p.kv.layers.len() != c.num_hidden_layers {
            return bad(format!(
                "{} layers cached, the model has {}",
                p.kv.layers.len(),
                c.num_hidden_layers
            ));
        }
        if p.len as i64 > p.kv.len {
            return bad(format!("{} tokens asked of {} cached", p.len, p.kv.len));
        }
        for (k, v) in &p.kv.layers {
            let fits = |t: &Tensor| {
                let s = t.size();
                s.len() == 3 && s[0] == want[0] && s[1] >= p.len as i64 && s[2] == want[2]
            };
            if !fits(k) || !fits(v) || k.kind() != model.kind() || k.device() != model.device() {
                return bad(format!(
                    "cached keys {:?} {:?} on {:?}, expected [{}, >= {}, {}] {:?} on {:?}",
                    k.size(),
                    k.kind(),
                    k.device(),
                    want[0],
                    p.len,
                    want[2],
                    model.kind(),
                    model.device()
                ));
            }
        }
    }
    Ok(())
}

fn check_requests(
    model: &Qwen2,
    requests: &[GenerationRequest],
    config: &GenerationConfig,
) -> Result<(), GenerateError> {
    config.sampling.validate()?;
    if config.sample_vocab == Some(0) {
        return Err(GenerateError::EmptySampleVocab);
    }
    let (limit, vocab) = (model.config.max_context(), model.config.vocab_size);
    for (index, r) in requests.iter().enumerate() {
        if r.prompt.is_empty() {
            return Err(GenerateError::EmptyPrompt { index });
        }
        if r.prompt.len() + config.max_new_tokens > limit {
            return Err(GenerateError::TooLong {
                index,
                prompt: r.prompt.len(),
                max_new: config.max_new_tokens,
                limit,
            });
        }
        if let Some(&id) = r.prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(GenerateError::BadToken { index, id, vocab });
        }
    }
    Ok(())
}

/// The state of one batched generation.
struct Batch<'a> {
    model: &'a Qwen2,
    config: &'a GenerationConfig,
    width: i64,
    /// Prompt columns the prefill runs: the last `fresh` of `width` (every column before
    /// them is padding or a cached prefix in every row).
    fresh: i64,
    /// Left padding of each row.
    pads: Vec<i64>,
    /// [B, width + max_new] true at real tokens; None when no prompt is padded.
    key_valid: Option<Tensor>,
    /// Next position id of each sequence, [B, 1].
    next_pos: Tensor,
    rngs: Vec<ChaCha8Rng>,
    outputs: Vec<Option<GenerationOutput>>,
    partial: Vec<(Vec<u32>, Vec<f32>)>,
    cache: KvCache,
    prompt_ids: Tensor,
}

impl<'a> Batch<'a> {
    fn new(
        model: &'a Qwen2,
        requests: &[GenerationRequest],
        prefixes: &[Option<CachedPrefix<'_>>],
        config: &'a GenerationConfig,
    ) -> Self {
        let device = model.device();
        let b = requests.len() as i64;
        let width = requests.iter().map(|r| r.prompt.len()).max().unwrap_or(0) as i64;
        let capacity = width + config.max_new_tokens as i64;
        let padded = requests.iter().any(|r| r.prompt.len() as i64 != width);
        let pads: Vec<i64> = requests
            .iter()
            .map(|r| width - r.prompt.len() as i64)
            .collect();
        // Cached tokens of each row, leaving the prompt's last token to be run.
        let cached: Vec<i64> = (0..requests.len())
            .map(|i| match prefixes.get(i).copied().flatten() {
                Some(p) => p.len.min(requests[i].prompt.len() - 1) as i64,
                None => 0,
            })
            .collect();
        let fresh = (0..requests.len())
            .map(|i| width - pads[i] - cached[i])
            .max()
            .unwrap_or(width);
        let mut cache = KvCache::new(&model.config, b, capacity, model.kind(), device);
        for (i, p) in prefixes.iter().enumerate() {
            if let Some(p) = p.filter(|_| cached[i] > 0) {
                cache.write_prefix(i as i64, pads[i], p.kv, cached[i]);
            }
        }
        cache.skip_to(width - fresh);
        let mut ids = Vec::with_capacity((b * width) as usize);
        let mut valid = Vec::with_capacity((b * capacity) as usize);
        for r in requests {
            let pad = width as usize - r.prompt.len();
            ids.extend(
                std::iter::repeat_n(0i64, pad).chain(r.prompt.iter().map(|&t| i64::from(t))),
            );
            valid.extend((0..capacity as usize).map(|i| i >= pad));
        }
        let lengths: Vec<i64> = requests.iter().map(|r| r.prompt.len() as i64).collect();
        Batch {
            model,
            config,
            width,
            fresh,
            pads,
            key_valid: padded.then(|| {
                Tensor::from_slice(&valid)
                    .view([b, capacity])
                    .to_device(device)
            }),
            next_pos: Tensor::from_slice(&lengths).view([b, 1]).to_device(device),
            rngs: requests
                .iter()
                .map(|r| ChaCha8Rng::seed_from_u64(r.seed))
                .collect(),
            outputs: vec![None; requests.len()],
            partial: vec![(Vec::new(), Vec::new()); requests.len()],
            cache,
            prompt_ids: Tensor::from_slice(&ids).view([b, width]).to_device(device),
        }
    }

    fn run(&mut self, stop: Option<StopFn<'_>>) {
        let mut logits = self.prefill();
        for _ in 0..self.config.max_new_tokens {
            let uniforms: Vec<f32> = self.rngs.iter_mut().map(|r| r.random::<f32>()).collect();
            let sampled = sample(
                &logits,
                &self.config.sampling,
                &Tensor::from_slice(&uniforms),
            );
            let ids =
                Vec::<i64>::try_from(sampled.ids.to_device(tch::Device::Cpu)).expect("ids are i64");
            let lps = Vec::<f32>::try_from(sampled.logprobs.to_device(tch::Device::Cpu))
                .expect("log-probs are f32");
            self.record(&ids, &lps, stop);
            if self.outputs.iter().all(Option::is_some) {
                break;
            }
            logits = self.decode(&sampled.ids);
        }
    }

    /// Runs the padded prompts' uncached columns through the model; returns next-token
    /// logits [B, V].
    fn prefill(&mut self) -> Tensor {
        let (start, b) = (self.width - self.fresh, self.next_pos.size()[0]);
        let valid = self.key_valid.as_ref().map(|v| v.narrow(1, 0, self.width));
        let positions = match &valid {
            Some(v) => positions_from_mask(v),
            None => Tensor::arange(self.width, (Kind::Int64, self.model.device()))
                .expand([b, self.width], false),
        };
        let hidden = self.model.forward_cached(
            &self.prompt_ids.narrow(1, start, self.fresh),
            &positions.narrow(1, start, self.fresh),
            valid.as_ref(),
            &mut self.cache,
        );
        self.logits(&hidden)
    }

    /// Keys and values of row `i`'s prompt and all its sampled tokens but the last.
    fn sequence_kv(&self, i: usize) -> SequenceKv {
        let sampled = match &self.outputs[i] {
            Some(out) => out.tokens.len(),
            None => self.partial[i].0.len(),
        } as i64;
        let prompt = self.width - self.pads[i];
        self.cache
            .read_row(i as i64, self.pads[i], prompt + (sampled - 1).max(0))
    }

    /// Feeds the sampled ids [B] back in; returns the next logits [B, V].
    fn decode(&mut self, ids: &Tensor) -> Tensor {
        let len = self.cache.len() + 1;
        let valid = self.key_valid.as_ref().map(|v| v.narrow(1, 0, len));
        let hidden = self.model.forward_cached(
            &ids.unsqueeze(-1),
            &self.next_pos,
            valid.as_ref(),
            &mut self.cache,
        );
        self.next_pos += 1;
        self.logits(&hidden)
    }

    /// Logits of the last position, in f32: hidden [B, T, H] -> [B, V], or [B, sample_vocab]
    /// when the config limits the sampled ids.
    fn logits(&self, hidden: &Tensor) -> Tensor {
        let t = hidden.size()[1];
        let logits = hidden
            .narrow(1, t - 1, 1)
            .squeeze_dim(1)
            .matmul(&self.model.lm_head_weight().tr());
        let vocab = logits.size()[1];
        match self.config.sample_vocab {
            Some(n) if (n as i64) < vocab => logits.narrow(1, 0, n as i64),
            _ => logits,
        }
        .to_kind(Kind::Float)
    }

    /// Appends one step's tokens to the unfinished sequences and ends those that stop.
    fn record(&mut self, ids: &[i64], lps: &[f32], stop: Option<StopFn<'_>>) {
        for (i, (&id, &lp)) in ids.iter().zip(lps).enumerate() {
            if self.outputs[i].is_some() {
                continue;
            }
            let (tokens, logprobs) = &mut self.partial[i];
            let id = id as u32;
            tokens.push(id);
            logprobs.push(lp);
            let finish = if self.config.stop_token_ids.contains(&id) {
                Some(FinishReason::StopToken)
            } else if stop.is_some_and(|f| f(tokens)) {
                Some(FinishReason::StopCallback)
            } else if tokens.len() >= self.config.max_new_tokens {
                Some(FinishReason::Length)
            } else {
                None
            };
            if let Some(finish) = finish {
                self.outputs[i] = Some(GenerationOutput {
                    tokens: std::mem::take(tokens),
                    logprobs: std::mem::take(logprobs),
                    finish,
                });
            }
        }
    }

    fn finish(self) -> Vec<GenerationOutput> {
        self.outputs
            .into_iter()
            .zip(self.partial)
            .map(|(done, (tokens, logprobs))| {
                done.unwrap_or(GenerationOutput {
                    tokens,
                    logprobs,
                    finish: FinishReason::Length,
                })
            })
            .collect()
    }
}
