//! The DAPO run configuration (docs/method.md section 6): one JSON file, unknown fields rejected,
//! validated once before anything runs. Defaults are the paper's stage 1; `"stage": 2` switches
//! the stage-dependent defaults to stage 2 (fields given explicitly still win).

use serde::{Deserialize, Serialize};
use swerl_rl::advantage::AdvantageEstimator;
use swerl_rl::filter::SampleFilter;
use swerl_rl::loss::ClipRange;

use crate::optim::AdamWConfig;
use crate::step::PassOptions;

/// A config that cannot be used, naming the field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "config {origin}: {error} (field names and types are listed in crates/train/src/config.rs)"
    )]
    Parse {
        origin: String,
        error: serde_json::Error,
    },
    #[error("config {origin}: field `{field}` = {value}: {problem}")]
    Invalid {
        origin: String,
        field: &'static str,
        value: String,
        problem: &'static str,
    },
}

/// Everything one DAPO run needs besides the model, the tasks and the rollout glue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DapoConfig {
    /// 1 or 2: which paper stage the defaults come from.
    pub stage: u8,
    pub seed: u64,
    /// Iterations to run in total (a resume continues up to this number).
    pub iterations: u64,
    /// P: problems sampled per iteration.
    pub problems_per_iteration: usize,
    /// G: rollouts per problem.
    pub group_size: usize,
    /// Trajectories per optimizer step (mini-batch).
    pub batch_trajectories: usize,
    /// Tokens per training sequence; longer ones are truncated and counted.
    pub max_context: usize,
    /// T_max of the turn penalty (also the agent's turn limit).
    pub max_turns: u32,
    /// L_thr of the turn penalty.
    pub turn_threshold: u32,
    /// The length penalty added to the outcome reward: the paper's turn penalty (from
    /// `turn_threshold` and `max_turns`) unless set; `"none"` or DAPO's
    /// `{"soft_overlong": {"max_len": 20480, "cache_len": 4096}}` instead.
    pub length_shaping: Option<swerl_rl::reward::LengthShaping>,
    pub lr: f64,
    pub adamw: AdamWConfig,
    pub max_grad_norm: f64,
    pub clip: ClipRange,
    pub advantage: AdvantageEstimator,
    /// Which samples reach the optimizer: `zero_advantage` (the paper: drop samples with
    /// advantage 0, no refill) or `dynamic_sampling` (DAPO: keep groups with
    /// 0 < #resolved < G and sample more problems until P such groups are found).
    pub sample_filter: SampleFilter,
    /// Dynamic sampling: refill collections per iteration at most.
    pub refill_rounds: u32,
    /// Dynamic sampling: a refill asks for at most this many problems per group still needed.
    pub refill_max_factor: usize,
    /// Padded tokens per micro-batch (the memory bound).
    pub micro_batch_tokens: usize,
    pub pass: PassOptions,
    /// Evaluate every this many iterations (0 = never).
    pub eval_every: u64,
    /// How many tasks (a fixed, seeded subset) the periodic evaluation uses.
    pub eval_tasks: usize,
    /// Newest checkpoints kept on disk (older ones are deleted after each save).
    pub keep_checkpoints: usize,
    /// Train a LoRA adapter instead of the whole model (None: full training), e.g.
    /// `{"rank": 16}`; see [`swerl_model::lora::LoraConfig`] for the fields and defaults.
    pub lora: Option<swerl_model::lora::LoraConfig>,
}

/// The file form: every field optional, unknown fields rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    stage: Option<u8>,
    seed: Option<u64>,
    iterations: Option<u64>,
    problems_per_iteration: Option<usize>,
    group_size: Option<usize>,
    batch_trajectories: Option<usize>,
    max_context: Option<usize>,
    max_turns: Option<u32>,
    turn_threshold: Option<u32>,
    length_shaping: Option<swerl_rl::reward::LengthShaping>,
    lr: Option<f64>,
    adamw: Option<AdamWConfig>,
    max_grad_norm: Option<f64>,
    clip: Option<ClipRange>,
    advantage: Option<AdvantageEstimator>,
    sample_filter: Option<SampleFilter>,
    refill_rounds: Option<u32>,
    refill_max_factor: Option<usize>,
    micro_batch_tokens: Option<usize>,
    pass: Option<PassOptions>,
    eval_every: Option<u64>,
    eval_tasks: Option<usize>,
    keep_checkpoints: Option<usize>,
    lora: Option<swerl_model::lora::LoraConfig>,
}

impl DapoConfig {
    /// The paper's stage 1: 65k context, 300 problems/iter, G = 10, batch 128,
    /// eps (0.2, 0.3), T_max 40, L_thr 10, LR 1e-6, AdamW (0.9, 0.999, 1e-8, wd 0.1), clip 1.0.
    pub fn stage1() -> Self {
        DapoConfig {
            stage: 1,
            seed: 0,
            iterations: 100,
            problems_per_iteration: 300,
            group_size: 10,
            batch_trajectories: 128,
            max_context: 65_536,
            max_turns: swerl_rl::reward::STAGE1_MAX_TURNS,
            turn_threshold: swerl_rl::reward::DEFAULT_TURN_THRESHOLD,
            length_shaping: None,
            lr: 1e-6,
            adamw: AdamWConfig::default(),
            max_grad_norm: 1.0,
            clip: ClipRange::STAGE1,
            advantage: AdvantageEstimator::default(),
            sample_filter: SampleFilter::ZeroAdvantage,
            refill_rounds: 3,
            refill_max_factor: 3,
            micro_batch_tokens: 65_536,
            pass: PassOptions {
                checkpointing: true,
                ..PassOptions::default()
            },
            eval_every: 10,
            eval_tasks: 50,
            keep_checkpoints: 3,
            lora: None,
        }
    }

    /// The paper's stage 2: 131k context, T_max 80, eps (0.2, 0.26), 100 problems/iter,
    /// batch 256; the rest as stage 1.
    pub fn stage2() -> Self {
        DapoConfig {
            stage: 2,
            problems_per_iteration: 100,
            batch_trajectories: 256,
            max_context: 131_072,
            max_turns: swerl_rl::reward::STAGE2_MAX_TURNS,
            clip: ClipRange::STAGE2,
            micro_batch_tokens: 131_072,
            ..Self::stage1()
        }
    }

    /// Parses and validates a JSON config; `origin` (the file name) appears in errors.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|error| ConfigError::Parse {
            origin: origin.to_string(),
            error,
        })?;
        let config = Self::from_raw(raw, origin)?;
        config.validate(origin)?;
        Ok(config)
    }

    fn from_raw(r: RawConfig, origin: &str) -> Result<Self, ConfigError> {
        let base = match r.stage.unwrap_or(1) {
            1 => Self::stage1(),
            2 => Self::stage2(),
            s => return Err(invalid(origin, "stage", s, "must be 1 or 2")),
        };
        Ok(DapoConfig {
            stage: base.stage,
            seed: r.seed.unwrap_or(base.seed),
            iterations: r.iterations.unwrap_or(base.iterations),
            problems_per_iteration: r
                .problems_per_iteration
                .unwrap_or(base.problems_per_iteration),
            group_size: r.group_size.unwrap_or(base.group_size),
            batch_trajectories: r.batch_trajectories.unwrap_or(base.batch_trajectories),
            max_context: r.max_context.unwrap_or(base.max_context),
            max_turns: r.max_turns.unwrap_or(base.max_turns),
            turn_threshold: r.turn_threshold.unwrap_or(base.turn_threshold),
            length_shaping: r.length_shaping.or(base.length_shaping),
            lr: r.lr.unwrap_or(base.lr),
            adamw: r.adamw.unwrap_or(base.adamw),
            max_grad_norm: r.max_grad_norm.unwrap_or(base.max_grad_norm),
            clip: r.clip.unwrap_or(base.clip),
            advantage: r.advantage.unwrap_or(base.advantage),
            sample_filter: r.sample_filter.unwrap_or(base.sample_filter),
            refill_rounds: r.refill_rounds.unwrap_or(base.refill_rounds),
            refill_max_factor: r.refill_max_factor.unwrap_or(base.refill_max_factor),
            micro_batch_tokens: r.micro_batch_tokens.unwrap_or(base.micro_batch_tokens),
            pass: r.pass.unwrap_or(base.pass),
            eval_every: r.eval_every.unwrap_or(base.eval_every),
            eval_tasks: r.eval_tasks.unwrap_or(base.eval_tasks),
            keep_checkpoints: r.keep_checkpoints.unwrap_or(base.keep_checkpoints),
            lora: r.lora.or(base.lora),
        })
    }

    /// Checks every number once, so a bad value fails before hours of rollouts.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let positive = [
            ("problems_per_iteration", self.problems_per_iteration),
            ("group_size", self.group_size),
            ("batch_trajectories", self.batch_trajectories),
            ("max_context", self.max_context),
            ("micro_batch_tokens", self.micro_batch_tokens),
            ("keep_checkpoints", self.keep_checkpoints),
            ("refill_max_factor", self.refill_max_factor),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(invalid(origin, field, v, "must be at least 1"));
            }
        }
        if self.group_size < 2 {
            let p = "must be at least 2: a group of one always has advantage 0";
            return Err(invalid(origin, "group_size", self.group_size, p));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid(
                origin,
                "lr",
                self.lr,
                "must be a finite number > 0",
            ));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm > 0.0) {
            let p = "must be a finite number > 0";
            return Err(invalid(origin, "max_grad_norm", self.max_grad_norm, p));
        }
        if self.pass.logprob_chunk < 1 {
            let p = "must be at least 1";
            return Err(invalid(
                origin,
                "pass.logprob_chunk",
                self.pass.logprob_chunk,
                p,
            ));
        }
        if self.turn_threshold >= self.max_turns {
            let p = "must be below max_turns (the penalty divides by their difference)";
            return Err(invalid(origin, "turn_threshold", self.turn_threshold, p));
        }
        if let Some(lora) = self.lora.as_ref().filter(|l| l.dropout > 0.0) {
            if self.pass.checkpointing {
                let p = "LoRA dropout needs pass.checkpointing false: the layer recompute would draw other masks than the forward";
                return Err(invalid(origin, "lora.dropout", lora.dropout, p));
            }
        }
        self.validate_clip(origin)
    }

    fn validate_clip(&self, origin: &str) -> Result<(), ConfigError> {
        let ClipRange { eps_low, eps_high } = self.clip;
        if !(0.0..1.0).contains(&eps_low) {
            return Err(invalid(
                origin,
                "clip.eps_low",
                eps_low,
                "must be in [0, 1)",
            ));
        }
        if !(eps_high.is_finite() && eps_high >= 0.0) {
            let p = "must be a finite number >= 0";
            return Err(invalid(origin, "clip.eps_high", eps_high, p));
        }
        Ok(())
    }
}

fn invalid(
    origin: &str,
    field: &'static str,
    value: impl std::fmt::Display,
    problem: &'static str,
) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        field,
        value: value.to_string(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage1_defaults_are_the_papers() {
        let c = DapoConfig::from_json_str("{}", "t").unwrap();
        assert_eq!(c, DapoConfig::stage1());
        assert_eq!(c.lr, 1e-6);
        let a = c.adamw;
        assert_eq!(
            (a.beta1, a.beta2, a.eps, a.weight_decay),
            (0.9, 0.999, 1e-8, 0.1)
        );
        assert_eq!(c.max_grad_norm, 1.0);
        assert_eq!((c.clip.eps_low, c.clip.eps_high), (0.2, 0.3));
        assert_eq!((c.max_turns, c.turn_threshold), (40, 10));
        assert_eq!((c.problems_per_iteration, c.group_size), (300, 10));
        assert_eq!((c.batch_trajectories, c.max_context), (128, 65_536));
        assert_eq!(c.advantage, AdvantageEstimator::default());
    }

    #[test]
    fn stage2_preset_is_the_papers() {
        let c = DapoConfig::from_json_str(r#"{"stage": 2}"#, "t").unwrap();
        assert_eq!((c.max_context, c.max_turns), (131_072, 80));
        assert_eq!((c.clip.eps_low, c.clip.eps_high), (0.2, 0.26));
        assert_eq!((c.problems_per_iteration, c.batch_trajectories), (100, 256));
        assert_eq!((c.lr, c.group_size, c.turn_threshold), (1e-6, 10, 10));
    }

    #[test]
    fn explicit_fields_override_the_stage() {
        let c = DapoConfig::from_json_str(r#"{"stage": 2, "group_size": 4}"#, "t").unwrap();
        assert_eq!((c.group_size, c.max_turns), (4, 80));
    }

    #[test]
    fn sample_filter_and_length_shaping_are_options() {
        let c = DapoConfig::from_json_str("{}", "t").unwrap();
        assert_eq!(c.sample_filter, SampleFilter::ZeroAdvantage);
        assert_eq!(c.length_shaping, None, "the turn penalty of the stage");
        let text = r#"{"sample_filter": "dynamic_sampling", "refill_rounds": 2,
            "length_shaping": {"soft_overlong": {"max_len": 20480, "cache_len": 4096}}}"#;
        let c = DapoConfig::from_json_str(text, "t").unwrap();
        assert_eq!(
            (c.sample_filter, c.refill_rounds),
            (SampleFilter::DynamicSampling, 2)
        );
        let shaping = c.length_shaping.expect("set");
        let length = |tokens| swerl_rl::reward::EpisodeLength {
            turns: 1,
            response_tokens: tokens,
        };
        assert_eq!(shaping.penalty(length(16_384)), 0.0);
        assert_eq!(shaping.penalty(length(20_481)), -1.0);
        let bad = r#"{"length_shaping": {"soft_overlong": {"max_len": 10, "cache_len": 20}}}"#;
        let msg = DapoConfig::from_json_str(bad, "t").unwrap_err().to_string();
        assert!(msg.contains("cache_len"), "{msg}");
    }

    #[test]
    fn unknown_field_is_named() {
        let e = DapoConfig::from_json_str(r#"{"grup_size": 4}"#, "run.json").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("grup_size") && msg.contains("run.json"),
            "{msg}"
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            (r#"{"group_size": 1}"#, "group_size"),
            (r#"{"lr": -1.0}"#, "lr"),
            (r#"{"stage": 3}"#, "stage"),
            (
                r#"{"clip": {"eps_low": 1.5, "eps_high": 0.3}}"#,
                "clip.eps_low",
            ),
            (r#"{"turn_threshold": 50}"#, "turn_threshold"),
            (r#"{"batch_trajectories": 0}"#, "batch_trajectories"),
        ];
        for (text, field) in cases {
            let msg = DapoConfig::from_json_str(text, "t")
                .unwrap_err()
                .to_string();
            assert!(msg.contains(&format!("`{field}`")), "{text}: {msg}");
        }
    }
}
