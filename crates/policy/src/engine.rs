//! The embedded inference engine: one thread owns the model and serves a request queue,
//! batching whatever requests are waiting into one KV-cached generation.
//!
//! Many episodes run on their own threads and each asks for one turn at a time. Running
//! them one by one would leave the accelerator mostly idle; the engine instead collects all
//! waiting requests (up to `max_batch`), runs one batched [`generate`] and answers each.
//! Each request carries its own seed and the model samples each row from its own random
//! stream, so a request's tokens do not depend on which other requests shared its batch
//! (up to floating-point differences of padded vs unpadded attention, which are far below
//! what changes a sampled token in practice).
//!
//! Weight updates (the trainer's weight sync) go through the same queue and are applied
//! between batches, so a batch never sees half-updated weights.
//!
//! The keys and values of every answered sequence go to a [`PrefixCache`]: an episode's next
//! turn extends its previous prompt and turn, so only the new tokens are run through the
//! model. A weight update clears the cache.
//!
//! LoRA adapters: the model may wear an adapter of its own (a LoRA trainer's, synced by
//! copying its small factors), and named adapters can be loaded from PEFT directories
//! ([`EngineHandle::load_adapter`], vLLM's `POST /v1/load_lora_adapter` in `swerl serve`). A
//! request names the adapter it samples with; a batch holds requests of one adapter only,
//! and the model wears it unmerged (the base weights are never changed or copied). Changing
//! the adapter worn clears the prefix cache.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::path::PathBuf;
use swerl_model::generate::{
    generate, generate_reusing, CachedPrefix, FinishReason, GenerationConfig, GenerationOutput,
    GenerationRequest,
};

use swerl_model::lora::LoraAdapter;
use swerl_model::qwen2::{Qwen2, SequenceKv};
use swerl_model::sampling::SamplingParams;
use tch::Tensor;

use crate::prefix_cache::{Hit, PrefixCache};

/// How the engine batches.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most requests in one batched generation.
    pub max_batch: usize,
    /// After the first request of a batch arrives, wait this long for more (0 = run
    /// whatever is queued at once). Requests that arrive while a batch runs are batched
    /// anyway; this only helps when requests trickle in.
    pub gather: Duration,
    /// Only ids below this are sampled: the tokenizer's vocabulary, when the checkpoint pads
    /// its embedding matrix beyond it (see [`GenerationConfig::sample_vocab`]). None = all.
    pub sample_vocab: Option<usize>,
    /// Bytes of keys and values kept for reuse by later requests that extend the same
    /// tokens (0 turns the prefix cache off).
    pub prefix_cache_bytes: usize,
}

/// The default prefix cache: 1 GiB (the demo's model needs about 1.5 kB per token; a 7B
/// Qwen2.5 in bf16 about 57 kB).
pub const DEFAULT_PREFIX_CACHE_BYTES: usize = 1 << 30;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_batch: 64,
            gather: Duration::ZERO,
            sample_vocab: None,
            prefix_cache_bytes: DEFAULT_PREFIX_CACHE_BYTES,
        }
    }
}

/// One generation request: continue `prompt` by at most `max_new_tokens`.
#[derive(Debug, Clone)]
pub struct GenerateJob {
    pub prompt: Vec<u32>,
    /// Seed of this request's own sampling stream.
    pub seed: u64,
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    /// Ids that end the generation (kept as its last token).
    pub stop_token_ids: Vec<u32>,
    /// The named LoRA adapter to sample with ([`EngineHandle::load_adapter`]); None samples
    /// the model as it is (with its own adapter, if it wears one).
    pub adapter: Option<String>,
}

/// The sampled continuation of one [`GenerateJob`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutput {
    pub tokens: Vec<u32>,
    /// Each token's log-prob under the full distribution at the sampling temperature.
    pub logprobs: Vec<f32>,
    pub finish: FinishReason,
}

/// Why the engine could not serve a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The request itself is invalid (checked before it is queued).
    #[error("invalid generation request: {0}")]
    Invalid(String),
    /// The engine thread has stopped (shut down or crashed).
    #[error("the embedded engine has stopped; no more requests can be served")]
    Stopped,
    /// The batched generation failed (e.g. out of memory): every request of the batch gets this.
    #[error("batched generation failed: {0}")]
    Failed(String),
}

/// A weight update run on the engine thread between batches.
pub type WeightUpdate = Box<dyn FnOnce(&mut Qwen2) -> Result<(), String> + Send>;

type Reply = Box<dyn FnOnce(Result<JobOutput, EngineError>) + Send>;

enum Command {
    Generate(GenerateJob, Reply),
    Update(WeightUpdate, mpsc::Sender<Result<(), String>>),
    /// Load (or replace) the named adapter from a PEFT directory.
    LoadAdapter(String, PathBuf, mpsc::Sender<Result<(), String>>),
    UnloadAdapter(String, mpsc::Sender<Result<(), String>>),
    Shutdown,
}

/// Counters the engine keeps (for tests, metrics and the server's /health).
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    requests: AtomicU64,
    tokens: AtomicU64,
    weight_version: AtomicU64,
    prompt_tokens: AtomicU64,
    reused_tokens: AtomicU64,
}

/// A snapshot of the engine's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Batched generations run.
    pub batches: u64,
    /// Requests answered with tokens.
    pub requests: u64,
    /// Tokens generated.
    pub tokens: u64,
    /// Successful weight updates so far.
    pub weight_version: u64,
    /// Prompt tokens of answered batches, and those of them whose keys and values came
    /// from the prefix cache instead of the model.
    pub prompt_tokens: u64,
    pub reused_prompt_tokens: u64,
}

/// What clients need to know about the model without touching it.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub vocab_size: usize,
    pub max_positions: usize,
}

/// A cheap, cloneable, `Send` handle to the engine thread.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    info: Arc<ModelInfo>,
}

/// The engine thread. Dropping it does not stop the thread while handles exist; the thread
/// ends when the last handle is dropped or on [`Engine::shutdown`].
#[derive(Debug)]
pub struct Engine {
    handle: EngineHandle,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Moves `model` onto a new engine thread.
    pub fn start(model: Qwen2, config: EngineConfig) -> Engine {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let info = Arc::new(ModelInfo {
            vocab_size: model.config.vocab_size,
            max_positions: model.config.max_position_embeddings,
        });
        let worker = Worker {
            model,
            rx,
            prefix: PrefixCache::new(config.prefix_cache_bytes),
            config,
            counters: counters.clone(),
            pending: VecDeque::new(),
            adapters: Adapters::default(),
        };
        let thread = std::thread::Builder::new()
            .name("swerl-engine".into())
            .spawn(move || worker.run())
            .expect("the OS can start the engine thread");
        Engine {
            handle: EngineHandle { tx, counters, info },
            thread: Some(thread),
        }
    }

    /// A new handle to the engine.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Stops the thread after the batch in progress; queued requests get [`EngineError::Stopped`].
    pub fn shutdown(mut self) {
        let _ = self.handle.tx.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl EngineHandle {
    /// The model's vocabulary size and position limit.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The counters now.
    pub fn stats(&self) -> EngineStats {
        let c = &self.counters;
        EngineStats {
            batches: c.batches.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            tokens: c.tokens.load(Ordering::Relaxed),
            weight_version: c.weight_version.load(Ordering::Relaxed),
            prompt_tokens: c.prompt_tokens.load(Ordering::Relaxed),
            reused_prompt_tokens: c.reused_tokens.load(Ordering::Relaxed),
        }
    }

    /// Queues `job`; `reply` is called on the engine thread with the result (or at once
    /// when the job is invalid or the engine has stopped). Used by async callers.
    pub fn submit(
        &self,
        job: GenerateJob,
        reply: impl FnOnce(Result<JobOutput, EngineError>) + Send + 'static,
    ) {
        if let Err(e) = self.check(&job) {
            return reply(Err(e));
        }
        if let Err(mpsc::SendError(Command::Generate(_, reply))) =
            self.tx.send(Command::Generate(job, Box::new(reply)))
        {
            reply(Err(EngineError::Stopped));
        }
    }

    /// Queues `job` and blocks until it is answered.
    pub fn generate(&self, job: GenerateJob) -> Result<JobOutput, EngineError> {
        let (tx, rx) = mpsc::channel();
        self.submit(job, move |result| {
            let _ = tx.send(result);
        });
        rx.recv().unwrap_or(Err(EngineError::Stopped))
    }

    /// Runs `update` on the model between batches and waits for it (the trainer's weight
    /// sync). The weight version counts successful updates.
    pub fn update_weights(&self, update: WeightUpdate) -> Result<(), EngineError> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Command::Update(update, tx))
            .map_err(|_| EngineError::Stopped)?;
        rx.recv()
            .map_err(|_| EngineError::Stopped)?
            .map_err(EngineError::Failed)
    }

    /// Copies named tensors (Hugging Face names, e.g. from the trainer's VarStore) into the
    /// model's parameters; every name must exist and every shape must match.
    pub fn load_named_tensors(&self, tensors: Vec<(String, Tensor)>) -> Result<(), EngineError> {
        self.update_weights(Box::new(move |model| copy_named(model, &tensors)))
    }

    /// Copies a LoRA trainer's adapter factors (PEFT keys) into the adapter the model wears
    /// as its own: the embedded engine's weight sync in LoRA training (a few MB, not the
    /// base).
    pub fn load_adapter_tensors(&self, tensors: Vec<(String, Tensor)>) -> Result<(), EngineError> {
        self.update_weights(Box::new(move |model| {
            let lora = model
                .lora()
                .ok_or("the engine's model wears no adapter to update")?;
            lora.copy_from(&tensors).map_err(|e| e.to_string())
        }))
    }

    /// Loads the PEFT adapter in `dir` under `name` (replacing one of that name); requests
    /// with `adapter: Some(name)` then sample with it. Fails, changing nothing, when the
    /// adapter does not fit the model.
    pub fn load_adapter(&self, name: String, dir: PathBuf) -> Result<(), EngineError> {
        self.adapter_command(|tx| Command::LoadAdapter(name, dir, tx))
    }

    /// Forgets the adapter loaded under `name`.
    pub fn unload_adapter(&self, name: String) -> Result<(), EngineError> {
        self.adapter_command(|tx| Command::UnloadAdapter(name, tx))
    }

    fn adapter_command(
        &self,
        command: impl FnOnce(mpsc::Sender<Result<(), String>>) -> Command,
    ) -> Result<(), EngineError> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(command(tx))
            .map_err(|_| EngineError::Stopped)?;
        rx.recv()
            .map_err(|_| EngineError::Stopped)?
            .map_err(EngineError::Invalid)
    }

    /// Reloads the weights from a Hugging Face model directory (same architecture).
    pub fn load_weights_from_dir(&self, dir: std::path::PathBuf) -> Result<(), EngineError> {
        self.update_weights(Box::new(move |model| {
            swerl_model::weights::load_weights(model, &dir).map_err(|e| e.to_string())
        }))
    }

    /// Rejects a request the batch could not run, before it is queued, so one bad request
    /// never fails a whole batch.
    fn check(&self, job: &GenerateJob) -> Result<(), EngineError> {
        let invalid = |m: String| Err(EngineError::Invalid(m));
        if job.prompt.is_empty() {
            return invalid("the prompt is empty; generation needs at least one token".into());
        }
        if job.max_new_tokens == 0 {
            return invalid("max_new_tokens is 0; ask for at least one token".into());
        }
        let (vocab, limit) = (self.info.vocab_size, self.info.max_positions);
        if let Some(id) = job.prompt.iter().find(|&&id| id as usize >= vocab) {
            return invalid(format!(
                "prompt token id {id} is outside the vocabulary of {vocab}"
            ));
        }
        if job.prompt.len() + job.max_new_tokens > limit {
            return invalid(format!(
                "prompt ({} tokens) + max_new_tokens ({}) exceeds the model's {limit} positions; shorten the context",
                job.prompt.len(),
                job.max_new_tokens
            ));
        }
        job.sampling
            .validate()
            .map_err(|e| EngineError::Invalid(e.to_string()))
    }
}

/// Copies `tensors` into `model`'s parameters by name, checking names and shapes first so
/// that a bad update changes nothing.
fn copy_named(model: &mut Qwen2, tensors: &[(String, Tensor)]) -> Result<(), String> {
    let params = model.vs.variables();
    for (name, t) in tensors {
        let p = params
            .get(name)
            .ok_or_else(|| format!("no parameter named {name:?} in the model"))?;
        if p.size() != t.size() {
            return Err(format!(
                "{name}: shape {:?} does not match the model's {:?}",
                t.size(),
                p.size()
            ));
        }
    }
    tch::no_grad(|| {
        for (name, t) in tensors {
            let mut p = params[name].shallow_clone();
            p.copy_(&t.to_device(p.device()).to_kind(p.kind()));
        }
    });
    Ok(())
}

/// The named adapters and which adapter the model wears now.
#[derive(Default)]
struct Adapters {
    /// Loaded adapters not worn at the moment.
    named: BTreeMap<String, LoraAdapter>,
    /// The model's own adapter while a named one is worn.
    parked: Option<LoraAdapter>,
    /// The name of the adapter worn (None: the model's own, or none).
    worn: Option<String>,
}

impl Adapters {
    fn has(&self, name: &str) -> bool {
        self.named.contains_key(name) || self.worn.as_deref() == Some(name)
    }

    /// Makes `model` wear adapter `name` (None: its own); true when that changed what the
    /// model computes.
    fn wear(&mut self, model: &mut Qwen2, name: Option<&str>) -> Result<bool, String> {
        if self.worn.as_deref() == name {
            return Ok(false);
        }
        if let Some(n) = name.filter(|n| !self.named.contains_key(*n)) {
            return Err(format!(
                "no LoRA adapter is loaded under the name `{n}`; load it first (POST /v1/load_lora_adapter)"
            ));
        }
        let off = model.detach_lora();
        match self.worn.take() {
            Some(worn) => {
                self.named
                    .insert(worn, off.expect("a named adapter was worn"));
            }
            None => self.parked = off,
        }
        let on = match name {
            Some(n) => self.named.remove(n),
            None => self.parked.take(),
        };
        if let Some(adapter) = on {
            model.attach_lora(adapter).map_err(|e| e.to_string())?;
        }
        self.worn = name.map(str::to_string);
        Ok(true)
    }

    /// Loads `dir` under `name`; the model wears the new one at once if it wore the old one.
    fn load(
        &mut self,
        model: &mut Qwen2,
        name: String,
        dir: &std::path::Path,
    ) -> Result<(), String> {
        let adapter = LoraAdapter::load(dir, &model.config, model.device())
            .map_err(|e| format!("cannot load the adapter `{name}`: {e}"))?;
        if self.worn.as_deref() == Some(name.as_str()) {
            model.attach_lora(adapter).map_err(|e| e.to_string())?;
        } else {
            adapter
                .check_fits(&model.config)
                .map_err(|e| e.to_string())?;
            self.named.insert(name, adapter);
        }
        Ok(())
    }

    fn unload(&mut self, model: &mut Qwen2, name: &str) -> Result<(), String> {
        if !self.has(name) {
            return Err(format!("no LoRA adapter is loaded under the name `{name}`"));
        }
        if self.worn.as_deref() == Some(name) {
            self.wear(model, None)?;
        }
        self.named.remove(name);
        Ok(())
    }
}

/// The engine thread's state.
struct Worker {
    model: Qwen2,
    rx: mpsc::Receiver<Command>,
    config: EngineConfig,
    counters: Arc<Counters>,
    pending: VecDeque<(GenerateJob, Reply)>,
    prefix: PrefixCache,
    adapters: Adapters,
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.pending.is_empty() {
                let accepted = self.rx.recv().is_ok_and(|command| self.accept(command));
                if !accepted {
                    return self.stop();
                }
            }
            if !self.gather() {
                return self.stop();
            }
            let limit = self.model.config.max_position_embeddings;
            let batch = take_batch(&mut self.pending, self.config.max_batch, limit);
            if !batch.is_empty() {
                self.run_batch(batch);
            }
        }
    }

    /// Takes every waiting command without blocking, and keeps waiting for more until
    /// `config.gather` has passed or the batch is full. Returns false on shutdown. When
    /// every handle is gone it returns true so the queued requests are still served.
    fn gather(&mut self) -> bool {
        let deadline = Instant::now() + self.config.gather;
        loop {
            let command = match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() && self.pending.len() < self.config.max_batch => self
                    .rx
                    .recv_timeout(left)
                    .map_err(|e| e == mpsc::RecvTimeoutError::Disconnected),
                _ => self
                    .rx
                    .try_recv()
                    .map_err(|e| e == mpsc::TryRecvError::Disconnected),
            };
            match command {
                Ok(command) => {
                    if !self.accept(command) {
                        return false;
                    }
                }
                // Disconnected: serve what is queued first; the next recv() ends the loop.
                Err(true) => return true,
                Err(false)
                    if Instant::now() >= deadline
                        || self.pending.len() >= self.config.max_batch =>
                {
                    return true
                }
                Err(false) => {}
            }
        }
    }

    /// Queues a request or applies a weight update; false on shutdown.
    fn accept(&mut self, command: Command) -> bool {
        match command {
            Command::Generate(job, reply) => self.pending.push_back((job, reply)),
            Command::Update(update, done) => {
                // Cached keys and values belong to the old weights, even after a failed
                // update that may have changed some of them.
                self.prefix.clear();
                // An update is of the model's own weights (and own adapter), not of a named
                // adapter it happens to wear.
                let model = &mut self.model;
                let adapters = &mut self.adapters;
                let result = catch_unwind(AssertUnwindSafe(|| {
                    adapters.wear(model, None)?;
                    update(model)
                }))
                .unwrap_or_else(|p| Err(panic_message(&p)));
                if result.is_ok() {
                    self.counters.weight_version.fetch_add(1, Ordering::Relaxed);
                }
                let _ = done.send(result);
            }
            Command::LoadAdapter(name, dir, done) => {
                if self.adapters.worn.as_deref() == Some(name.as_str()) {
                    self.prefix.clear();
                }
                let _ = done.send(self.adapters.load(&mut self.model, name, &dir));
            }
            Command::UnloadAdapter(name, done) => {
                if self.adapters.worn.as_deref() == Some(name.as_str()) {
                    self.prefix.clear();
                }
                let _ = done.send(self.adapters.unload(&mut self.model, &name));
            }
            Command::Shutdown => return false,
        }
        true
    }

    fn stop(self) {
        for (_, reply) in self.pending {
            reply(Err(EngineError::Stopped));
        }
    }

    /// One batched generation, answered request by request; a failed or panicking
    /// generation fails this batch's requests instead of the engine.
    fn run_batch(&mut self, batch: Vec<(GenerateJob, Reply)>) {
        match self
            .adapters
            .wear(&mut self.model, batch[0].0.adapter.as_deref())
        {
            // Cached keys and values belong to the adapter that computed them.
            Ok(true) => self.prefix.clear(),
            Ok(false) => {}
            Err(e) => {
                let e = EngineError::Invalid(e);
                return batch
                    .into_iter()
                    .for_each(|(_, reply)| reply(Err(e.clone())));
            }
        }
        let longest = batch
            .iter()
            .map(|(j, _)| j.max_new_tokens)
            .max()
            .unwrap_or(0);
        let config = GenerationConfig {
            sampling: batch[0].0.sampling.clone(),
            max_new_tokens: longest,
            stop_token_ids: batch[0].0.stop_token_ids.clone(),
            sample_vocab: self.config.sample_vocab,
        };
        let requests: Vec<GenerationRequest> = batch
            .iter()
            .map(|(j, _)| GenerationRequest {
                prompt: j.prompt.clone(),
                seed: j.seed,
            })
            .collect();
        let result = self.generate_batch(&requests, &config);
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(outputs) => self.answer(batch, outputs),
            Err(e) => batch
                .into_iter()
                .for_each(|(_, reply)| reply(Err(e.clone()))),
        }
    }

    /// The batched generation, through the prefix cache when it is on (without it, no
    /// sequence's keys and values are copied out).
    fn generate_batch(
        &mut self,
        requests: &[GenerationRequest],
        config: &GenerationConfig,
    ) -> Result<Vec<GenerationOutput>, EngineError> {
        let prompt: usize = requests.iter().map(|r| r.prompt.len()).sum();
        self.counters
            .prompt_tokens
            .fetch_add(prompt as u64, Ordering::Relaxed);
        if self.prefix.disabled() {
            return catching(|| generate(&self.model, requests, config, None));
        }
        let hits = self.lookup_prefixes(requests);
        let prefixes: Vec<Option<CachedPrefix<'_>>> = hits
            .iter()
            .map(|h| {
                h.as_ref().map(|h| CachedPrefix {
                    kv: &h.kv,
                    len: h.len,
                })
            })
            .collect();
        let outputs =
            catching(|| generate_reusing(&self.model, requests, &prefixes, config, None))?;
        Ok(self.keep_prefixes(requests, outputs))
    }

    /// The cached prefix of each request's prompt, counted in the stats.
    fn lookup_prefixes(&mut self, requests: &[GenerationRequest]) -> Vec<Option<Hit>> {
        let hits: Vec<Option<Hit>> = requests
            .iter()
            .map(|r| self.prefix.lookup(&r.prompt))
            .collect();
        let reused: usize = hits.iter().flatten().map(|h| h.len).sum();
        self.counters
            .reused_tokens
            .fetch_add(reused as u64, Ordering::Relaxed);
        hits
    }

    /// Caches each sequence's keys and values (prompt and all sampled tokens but the last)
    /// and returns the outputs.
    fn keep_prefixes(
        &mut self,
        requests: &[GenerationRequest],
        outputs: Vec<(GenerationOutput, SequenceKv)>,
    ) -> Vec<GenerationOutput> {
        outputs
            .into_iter()
            .zip(requests)
            .map(|((out, kv), request)| {
                let mut tokens = request.prompt.clone();
                tokens.extend(&out.tokens[..out.tokens.len().saturating_sub(1)]);
                self.prefix.insert(tokens, kv);
                out
            })
            .collect()
    }

    /// Cuts each output to its own request's budget (the batch ran to the longest one)
    /// and replies.
    fn answer(
        &self,
        batch: Vec<(GenerateJob, Reply)>,
        outputs: Vec<swerl_model::generate::GenerationOutput>,
    ) {
        for ((job, reply), out) in batch.into_iter().zip(outputs) {
            let mut out = JobOutput {
                tokens: out.tokens,
                logprobs: out.logprobs,
                finish: out.finish,
            };
            if out.tokens.len() > job.max_new_tokens {
                // Rows are independent, so the first m tokens of a longer run are exactly
                // what a run limited to m would have sampled; none of them is a stop token.
                out.tokens.truncate(job.max_new_tokens);
                out.logprobs.truncate(job.max_new_tokens);
                out.finish = FinishReason::Length;
            }
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            self.counters
                .tokens
                .fetch_add(out.tokens.len() as u64, Ordering::Relaxed);
            reply(Ok(out));
        }
    }
}

/// The next batch: up to `max` queued jobs that share the first job's sampling settings,
/// stop ids and adapter, and whose budget fits next to every other member's prompt.
///
/// The batch runs to M = the largest budget, capped by the room the longest prompt leaves;
/// jobs asking for more than M wait for a later batch. The job with the longest prompt
/// always fits (it was validated against the position limit), so every call makes progress.
fn take_batch(
    pending: &mut VecDeque<(GenerateJob, Reply)>,
    max: usize,
    limit: usize,
) -> Vec<(GenerateJob, Reply)> {
    let Some((first, _)) = pending.front() else {
        return Vec::new();
    };
    let key = (
        first.sampling.clone(),
        first.stop_token_ids.clone(),
        first.adapter.clone(),
    );
    let (mut batch, mut rest) = (Vec::new(), VecDeque::new());
    while let Some(item) = pending.pop_front() {
        let same =
            item.0.sampling == key.0 && item.0.stop_token_ids == key.1 && item.0.adapter == key.2;
        if same && batch.len() < max.max(1) {
            batch.push(item);
        } else {
            rest.push_back(item);
        }
    }
    let (fits, wait): (Vec<_>, Vec<_>) = {
        let room = batch
            .iter()
            .map(|(j, _)| limit.saturating_sub(j.prompt.len()))
            .min()
            .unwrap_or(0);
        batch
            .into_iter()
            .partition(|(j, _)| j.max_new_tokens <= room)
    };
    for item in wait.into_iter().rev() {
        rest.push_front(item);
    }
    *pending = rest;
    fits
}

/// Runs a generation; its error, or a panic inside libtorch (out of memory, a device
/// error), fails the batch's requests instead of the engine.
fn catching<T>(
    f: impl FnOnce() -> Result<T, swerl_model::generate::GenerateError>,
) -> Result<T, EngineError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(EngineError::Failed(e.to_string())),
        Err(panic) => Err(EngineError::Failed(panic_message(&panic))),
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic in the model".into())
}
