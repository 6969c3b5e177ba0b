//! Shared test fixtures: a seeded tiny Qwen2 and a toy environment whose reward depends only
//! on the sampled tokens, so the DAPO loop can be run end to end in seconds.

#![allow(dead_code)]

use std::path::Path;

use swerl_model::config::Qwen2Config;
use swerl_model::generate::{generate, GenerationConfig, GenerationRequest};
use swerl_model::qwen2::Qwen2;
use swerl_model::sampling::SamplingParams;
use swerl_train::dapo_loop::{BackendError, RolloutBackend, Rollouts};
use swerl_train::Learner;
use swerl_trajectory::{
    EpisodeStatus, EpisodeTimings, GradeOutcome, GradeReport, RewardParts, Trajectory, Turn,
    TurnTimings,
};
use tch::{Device, Kind, Tensor};

/// libtorch's seed is global and tests run on parallel threads: every model is seeded and
/// built under this one lock.
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn seeded(seed: i64, config: Qwen2Config) -> Qwen2 {
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    Qwen2::new(config, Device::Cpu, Kind::Float)
}

pub fn tiny_model(seed: i64) -> Qwen2 {
    seeded(seed, Qwen2Config::tiny())
}

/// The tiny model with its vocabulary cut to [`TOY_VOCAB`] ids: a near-uniform random policy
/// then samples every id often enough that a few iterations of DAPO can move probability
/// mass between them (with 512 ids each id is seen too rarely for a seconds-long test).
pub fn toy_model(seed: i64) -> Qwen2 {
    let config = Qwen2Config {
        vocab_size: TOY_VOCAB,
        ..Qwen2Config::tiny()
    };
    seeded(seed, config)
}

/// Vocabulary of [`toy_model`].
pub const TOY_VOCAB: usize = 32;

/// One single-turn trajectory: `prompt` then `sampled` (with the sampler's log-probs),
/// rewarded `reward`, graded resolved when `resolved`.
pub fn trajectory(
    task: &str,
    index: u32,
    prompt: &[u32],
    sampled: &[u32],
    logprobs: &[f32],
    reward: f64,
    resolved: bool,
) -> Trajectory {
    let n = prompt.len() + sampled.len();
    let token_ids: Vec<u32> = prompt.iter().chain(sampled).copied().collect();
    let mut loss_mask = vec![0u8; n];
    loss_mask[prompt.len()..].fill(1);
    let mut sampler_logprobs = vec![0.0f32; n];
    sampler_logprobs[prompt.len()..].copy_from_slice(logprobs);
    Trajectory {
        schema_version: swerl_trajectory::SCHEMA_VERSION,
        task_id: task.into(),
        sample_index: index,
        attempt: 1,
        policy: serde_json::Value::Null,
        prompt_len: prompt.len(),
        turns: vec![Turn {
            assistant_start: prompt.len(),
            assistant_ids: sampled.to_vec(),
            assistant_logprobs: logprobs.to_vec(),
            assistant_text: String::new(),
            truncated: false,
            action: None,
            format_error: None,
            observation_ids: vec![],
            observation_text: String::new(),
            timings: TurnTimings::default(),
        }],
        token_ids,
        loss_mask,
        sampler_logprobs,
        status: EpisodeStatus::Submitted,
        error: None,
        final_patch: Some(String::new()),
        grade: Some(GradeReport {
            instance_id: task.into(),
            outcome: GradeOutcome::Graded,
            resolved,
            reason: String::new(),
            patch_applied: true,
            fail_to_pass: Default::default(),
            pass_to_pass: Default::default(),
            timings: Default::default(),
            log_tail: String::new(),
            test_log: String::new(),
            statuses: Default::default(),
        }),
        reward: Some(RewardParts {
            resolved: reward,
            length_penalty: 0.0,
            total: reward,
        }),
        timings: EpisodeTimings::default(),
        versions: Default::default(),
        created_at_unix_s: 0,
    }
}

/// Token ids below this are "target" tokens: the toy reward is their share of a continuation
/// (1/4 of [`TOY_VOCAB`], so a random policy earns about 0.25).
pub const TARGET_BELOW: u32 = 8;

/// The toy environment: a task `tK` is the prompt `[1, 10 + K]`; the policy samples
/// `new_tokens` tokens (no EOS stop) from its own copy of the weights; the reward is the
/// share of target tokens. Seeds come from (iteration, task, sample), so it is deterministic.
pub struct ToyBackend {
    pub sampler: Qwen2,
    pub new_tokens: usize,
    pub syncs: usize,
}

impl ToyBackend {
    pub fn new(sampler: Qwen2, new_tokens: usize) -> Self {
        ToyBackend {
            sampler,
            new_tokens,
            syncs: 0,
        }
    }

    fn prompt(task: &str) -> Vec<u32> {
        let k: u32 = task.trim_start_matches('t').parse().expect("task tK");
        vec![1, 10 + k]
    }

    fn rollouts(&self, salt: u64, tasks: &[String], g: usize) -> Result<Rollouts, BackendError> {
        let mut requests = Vec::new();
        for (ti, task) in tasks.iter().enumerate() {
            for s in 0..g {
                let seed = salt * 1_000_003 + (ti * 1000 + s) as u64;
                requests.push(GenerationRequest {
                    prompt: Self::prompt(task),
                    seed,
                });
            }
        }
        let config = GenerationConfig {
            sampling: SamplingParams::rollout_default(),
            max_new_tokens: self.new_tokens,
            stop_token_ids: vec![],
            sample_vocab: None,
        };
        let outs = generate(&self.sampler, &requests, &config, None)?;
        let trajectories = outs
            .iter()
            .zip(&requests)
            .enumerate()
            .map(|(i, (o, r))| {
                let hits = o.tokens.iter().filter(|&&t| t < TARGET_BELOW).count();
                let reward = hits as f64 / o.tokens.len() as f64;
                let task = &tasks[i / g];
                trajectory(
                    task,
                    (i % g) as u32,
                    &r.prompt,
                    &o.tokens,
                    &o.logprobs,
                    reward,
                    false,
                )
            })
            .collect();
        Ok(Rollouts {
            trajectories,
            ..Rollouts::default()
        })
    }
}

impl RolloutBackend for ToyBackend {
    fn collect(
        &mut self,
        iteration: u64,
        tasks: &[String],
        g: usize,
    ) -> Result<Rollouts, BackendError> {
        self.rollouts(iteration + 1, tasks, g)
    }

    fn sync(&mut self, learner: &Learner, _checkpoint: &Path) -> Result<(), BackendError> {
        match learner.model.lora() {
            // LoRA: the sampler shares the frozen base and copies the adapter's factors.
            Some(lora) => {
                let factors: Vec<(String, Tensor)> = lora.named_tensors().into_iter().collect();
                self.sampler
                    .lora()
                    .ok_or("the sampler of a LoRA learner wears no adapter")?
                    .copy_from(&factors)?;
            }
            None => copy_weights(&learner.model, &mut self.sampler),
        }
        self.syncs += 1;
        Ok(())
    }

    fn evaluate(&mut self, iteration: u64, tasks: &[String]) -> Result<Rollouts, BackendError> {
        self.rollouts(1 << 32 | iteration, tasks, 4)
    }
}

/// `model` wearing a fresh LoRA adapter of `config` (A drawn from `seed`), under the seed lock.
pub fn with_lora(mut model: Qwen2, config: swerl_model::lora::LoraConfig, seed: i64) -> Qwen2 {
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    let adapter = swerl_model::lora::LoraAdapter::new(config, &model.config, Device::Cpu);
    model
        .attach_lora(adapter)
        .expect("a fresh adapter fits its model");
    model
}

/// A sampler for a LoRA learner, as the embedded engine holds one: the learner's base tensors
/// (shared, not copied) wearing a copy of its adapter.
pub fn lora_sampler(learner: &Learner) -> Qwen2 {
    let mut sampler = learner.model.share_base();
    let lora = learner.model.lora().expect("a LoRA learner");
    sampler
        .attach_lora(lora.copy_to(Device::Cpu))
        .expect("the learner's adapter fits its base");
    sampler
}

/// The factors of the adapter `model` wears, flattened, in key order.
pub fn flat_adapter(model: &Qwen2) -> Vec<(String, Vec<f32>)> {
    model
        .lora()
        .expect("a model wearing an adapter")
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect()
}

/// In-memory weight sync (what the embedded engine does): copy every variable.
pub fn copy_weights(from: &Qwen2, to: &mut Qwen2) {
    let src = from.vs.variables();
    let mut dst = to.vs.variables();
    tch::no_grad(|| {
        for (name, t) in dst.iter_mut() {
            t.copy_(&src[name]);
        }
    });
}

/// All weights of `model`, flattened, in name order (for bit-exact comparison).
pub fn flat_weights(model: &Qwen2) -> Vec<(String, Vec<f32>)> {
    let mut vars: Vec<_> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter()
        .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect()
}

/// How one run's weight deltas compare with the f32 run's.
#[derive(Debug, Clone, Copy)]
pub struct Tracking {
    pub cosine: f64,
    /// |delta| / |f32 delta|.
    pub norm_ratio: f64,
}

impl Tracking {
    /// The bar of issue 12: cosine >= 0.99 and a norm ratio within 10%.
    pub fn tracks(&self) -> bool {
        self.cosine >= 0.99 && (0.9..=1.1).contains(&self.norm_ratio)
    }
}

/// The three precisions of [`precision_tracking`].
#[derive(Debug, Clone, Copy)]
pub struct PrecisionRuns {
    /// bf16 working weights with f32 masters (what `--dtype bfloat16` trains with).
    pub mixed: Tracking,
    /// The counterexample: bf16 weights updated in place, no master.
    pub pure_bf16: Tracking,
}

/// `steps` optimizer steps at `lr` (`step(learner, lr)` is one) from the same start, the
/// tiny model of `seed` rounded to bf16, three ways: in f32; in bf16 mixed precision; and with
/// pure-bf16 updates, emulated by resetting every master to its rounded working copy after
/// each step (exactly what updating bf16 weights in place leaves). The mixed run's deltas are
/// its masters' (what it trains); the pure run's are its weights'.
pub fn precision_tracking(
    seed: i64,
    steps: usize,
    lr: f64,
    step: &dyn Fn(&mut Learner, f64, usize),
) -> PrecisionRuns {
    let start = tiny_model(seed);
    tch::no_grad(|| {
        for (_, v) in start.vs.variables() {
            v.shallow_clone().copy_(&v.to_kind(Kind::BFloat16));
        }
    });
    let init: Vec<Tensor> = named(&start).iter().map(|t| t.detach().copy()).collect();
    let run = |kind: Kind, pure: bool| -> Vec<Tensor> {
        let mut model = tiny_model(seed);
        model.vs.copy(&start.vs).unwrap();
        if kind != Kind::Float {
            model.vs.set_kind(kind);
        }
        let mut learner = Learner::new(model, swerl_train::AdamWConfig::default());
        for i in 0..steps {
            step(&mut learner, lr, i);
            if pure {
                for p in &learner.trainable.params {
                    let master = p.master().shallow_clone();
                    tch::no_grad(|| master.shallow_clone().copy_(&p.working));
                }
            }
        }
        let params = &learner.trainable.params;
        params
            .iter()
            .zip(&init)
            .map(|(p, i0)| p.master() - i0)
            .collect()
    };
    let f32_delta = run(Kind::Float, false);
    let compare = |delta: Vec<Tensor>| {
        let dot = |a: &[Tensor], b: &[Tensor]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(x, y)| {
                    (x.to_kind(Kind::Double) * y.to_kind(Kind::Double))
                        .sum(Kind::Double)
                        .double_value(&[])
                })
                .sum()
        };
        let (ab, aa, bb) = (
            dot(&delta, &f32_delta),
            dot(&delta, &delta),
            dot(&f32_delta, &f32_delta),
        );
        Tracking {
            cosine: ab / (aa.sqrt() * bb.sqrt()).max(f64::MIN_POSITIVE),
            norm_ratio: (aa / bb).sqrt(),
        }
    };
    PrecisionRuns {
        mixed: compare(run(Kind::BFloat16, false)),
        pure_bf16: compare(run(Kind::BFloat16, true)),
    }
}

fn named(model: &Qwen2) -> Vec<Tensor> {
    swerl_train::step::named_parameters(model)
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}
