//! The demo's plan: every size, count and hyper-parameter of the miniature pipeline, in one
//! serialisable struct written to `<out>/demo-config.json` before anything runs. Two presets:
//! the default (six train tasks and all six held-out tasks, well under 20 minutes on 2 cores)
//! and `--quick` (a few tasks and a smaller model, under 3 minutes; the CI test runs it).
//!
//! The numbers are the paper's where they scale (L_thr 10, eps 0.2/0.3 then 0.2/0.26, AdamW wd
//! 0.1, grad clip 1.0, temperature 1 with every truncation off) and ours where the paper's
//! would not fit a 2-core machine (model width, problems per iteration, group size, context,
//! T_max, learning rates for a model that starts from a few hundred demonstration steps).

use serde::Serialize;
use serde_json::{json, Value};

/// Everything the demo runs with.
#[derive(Debug, Clone, Serialize)]
pub struct DemoPlan {
    /// `default` or `quick`.
    pub preset: &'static str,
    pub seed: u64,
    /// Train-split tasks to use (`None`: every task of the split).
    pub train_tasks: Option<Vec<String>>,
    /// Held-out tasks to evaluate (`None`: every task of the split).
    pub heldout_tasks: Option<Vec<String>>,
    /// Episodes in flight at once (also the engine's batch size).
    pub concurrency: usize,
    /// Lines of the agent's file window (SWE-agent's 100 would triple the context here).
    pub window_lines: usize,
    pub tokenizer: TokenizerPlan,
    pub model: ModelPlan,
    /// Scripted demonstrations of each train task that fix it (identical copies weigh it).
    pub demo_copies: u32,
    /// Scripted demonstrations of each train task that reproduce the issue, open the file and
    /// submit without a fix: the base model learns a real agent failure (premature
    /// submission) beside the fix, so RFT and RL have a behaviour to select by reward.
    pub premature_copies: u32,
    /// Supervised training of the starting model on scripted demonstrations.
    pub pretrain: SftPlan,
    /// Limits of evaluation episodes (stage 1's; stage 2's final evaluation uses stage 2's).
    pub eval: EvalPlan,
    /// Rejection fine-tuning: samples per train task, then SFT on the resolved ones.
    pub rft_samples: u32,
    pub rft: SftPlan,
    /// DAPO stage 1 and stage 2: `swerl train` configs (diffs of the paper's stage defaults).
    pub stage1: Value,
    pub stage2: Value,
    /// Stage 2's turn and context limits also apply to its final evaluation.
    pub stage2_eval: EvalPlan,
}

/// The byte-level BPE tokenizer trained on the bundled corpus.
#[derive(Debug, Clone, Serialize)]
pub struct TokenizerPlan {
    pub vocab_size: usize,
    pub min_frequency: u64,
}

/// The starting model's shape (Qwen2 architecture, 4 attention heads, 2 KV heads).
#[derive(Debug, Clone, Serialize)]
pub struct ModelPlan {
    pub hidden: usize,
    pub layers: usize,
    pub max_positions: usize,
}

/// One supervised fine-tuning run (`swerl rft` flags).
#[derive(Debug, Clone, Serialize)]
pub struct SftPlan {
    pub epochs: usize,
    pub lr: f64,
    pub warmup: u64,
    pub batch: usize,
}

/// The limits of an evaluation (`swerl eval` flags).
#[derive(Debug, Clone, Serialize)]
pub struct EvalPlan {
    /// k: runs per task.
    pub runs: u32,
    pub max_turns: u32,
    pub turn_threshold: u32,
    pub max_context: usize,
    pub max_new_tokens: usize,
}

/// The paper's L_thr.
const TURN_THRESHOLD: u32 = 10;

impl DemoPlan {
    /// The default preset: six train tasks, every held-out task.
    pub fn default_preset(seed: u64) -> DemoPlan {
        let eval = EvalPlan {
            runs: 5,
            max_turns: 12,
            turn_threshold: TURN_THRESHOLD,
            max_context: 8_192,
            // The longest scripted turn (moneyfmt's 12-line edit) is 170 tokens.
            max_new_tokens: 224,
        };
        let stage2_eval = EvalPlan {
            max_turns: 16,
            max_context: 12_288,
            ..eval.clone()
        };
        DemoPlan {
            preset: "default",
            seed,
            // Six of the eleven train tasks (the shorter scripts): memorising all eleven to
            // the per-token loss a temperature-1 sampler needs takes ~10 minutes here.
            train_tasks: names(&[
                "csvsniff",
                "inireader",
                "jsonpointer",
                "lrucache",
                "semverlite",
                "texttable",
            ]),
            heldout_tasks: None,
            concurrency: 16,
            window_lines: 30,
            tokenizer: TokenizerPlan {
                vocab_size: 4_096,
                min_frequency: 2,
            },
            model: ModelPlan {
                hidden: 192,
                layers: 2,
                max_positions: 16_384,
            },
            demo_copies: 2,
            premature_copies: 1,
            pretrain: SftPlan {
                epochs: 40,
                lr: 5e-3,
                warmup: 5,
                batch: 1,
            },
            rft_samples: 4,
            rft: SftPlan {
                epochs: 2,
                lr: 1e-3,
                warmup: 2,
                batch: 1,
            },
            stage1: stage_config(1, &eval, 6, 6, 4, seed),
            stage2: stage_config(2, &stage2_eval, 4, 4, 4, seed),
            eval,
            stage2_eval,
        }
    }

    /// The quick preset: two train tasks and one held-out task, a smaller model, one DAPO
    /// iteration per stage.
    pub fn quick_preset(seed: u64) -> DemoPlan {
        let eval = EvalPlan {
            runs: 2,
            max_turns: 10,
            // Below T_max = 10; the quick tasks' demonstrations take 7 turns.
            turn_threshold: 8,
            max_context: 6_144,
            max_new_tokens: 144,
        };
        let stage2_eval = EvalPlan {
            max_turns: 12,
            max_context: 8_192,
            ..eval.clone()
        };
        DemoPlan {
            preset: "quick",
            train_tasks: names(&["inireader", "jsonpointer"]),
            heldout_tasks: names(&["romans"]),
            concurrency: 6,
            demo_copies: 1,
            premature_copies: 1,
            tokenizer: TokenizerPlan {
                vocab_size: 2_048,
                min_frequency: 2,
            },
            model: ModelPlan {
                hidden: 128,
                layers: 2,
                max_positions: 16_384,
            },
            pretrain: SftPlan {
                epochs: 40,
                lr: 5e-3,
                warmup: 4,
                batch: 1,
            },
            rft_samples: 2,
            rft: SftPlan {
                epochs: 1,
                lr: 1e-3,
                warmup: 1,
                batch: 1,
            },
            stage1: stage_config(1, &eval, 1, 2, 2, seed),
            stage2: stage_config(2, &stage2_eval, 1, 2, 2, seed),
            eval,
            stage2_eval,
            ..DemoPlan::default_preset(seed)
        }
    }
}

/// The bundled tasks' instance ids of these library names.
fn names(libraries: &[&str]) -> Option<Vec<String>> {
    Some(
        libraries
            .iter()
            .map(|n| format!("swerl-bundled__{n}-1"))
            .collect(),
    )
}

/// A `swerl train` config for one stage: the stage's paper defaults (clip range, advantage,
/// AdamW) with the miniature's sizes and a learning rate for a model this small.
fn stage_config(
    stage: u8,
    eval: &EvalPlan,
    iterations: u64,
    problems: usize,
    group: usize,
    seed: u64,
) -> Value {
    json!({
        "stage": stage,
        "seed": seed,
        "iterations": iterations,
        "problems_per_iteration": problems,
        "group_size": group,
        "batch_trajectories": problems * group / 2,
        "max_context": eval.max_context,
        "max_turns": eval.max_turns,
        "turn_threshold": eval.turn_threshold,
        // Higher than the paper's 1e-6 (a 72B model): this model has 2M parameters and was
        // made by a few hundred SFT steps at 5e-3. 1e-3 made its policy collapse within six
        // iterations here (entropy up, resolved rate to 0); 2e-4 keeps it stable.
        "lr": 2e-4,
        "micro_batch_tokens": 2 * eval.max_context,
        "pass": {"logprob_chunk": 1024, "checkpointing": false, "entropy": true},
        "eval_every": 0,
        "keep_checkpoints": 2
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use swerl_train::config::DapoConfig;

    #[test]
    fn stage_configs_are_valid_train_configs() {
        for plan in [DemoPlan::default_preset(0), DemoPlan::quick_preset(0)] {
            for (stage, cfg) in [(1, &plan.stage1), (2, &plan.stage2)] {
                let parsed = DapoConfig::from_json_str(&cfg.to_string(), "demo plan").unwrap();
                assert_eq!(parsed.stage, stage);
                assert!(parsed.batch_trajectories >= 1);
            }
        }
    }

    #[test]
    fn stage2_is_longer_than_stage1() {
        for plan in [DemoPlan::default_preset(0), DemoPlan::quick_preset(0)] {
            assert!(plan.stage2_eval.max_turns > plan.eval.max_turns);
            assert!(plan.stage2_eval.max_context > plan.eval.max_context);
            assert_eq!(
                plan.stage2["clip"],
                Value::Null,
                "stage 2's clip is the paper default"
            );
        }
    }
}
