//! The DAPO policy step on a tiny random Qwen2.

mod common;

use common::tiny_model;

use swerl_model::logprobs::score_sequence;
use swerl_model::qwen2::Qwen2;
use swerl_rl::loss::{ClipRange, PolicyLossConfig};
use swerl_train::batch::Sequence;
use swerl_train::dapo::{policy_step, recompute_logprobs};
use swerl_train::sft::StepConfig;
use swerl_train::step::PassOptions;
use swerl_train::{AdamWConfig, Learner};
use tch::Tensor;

fn seq(len: usize, prompt: usize, salt: u32, advantage: f32) -> Sequence {
    Sequence {
        ids: (0..len as u32).map(|t| (t * 13 + salt) % 500).collect(),
        loss_mask: (0..len).map(|t| t >= prompt).collect(),
        sampler_logprobs: vec![0.0; len],
        advantage,
        source: 0,
    }
}

fn cfg(micro: usize, chunk: i64) -> StepConfig {
    StepConfig {
        micro_batch_tokens: micro,
        max_grad_norm: 1.0,
        pass: PassOptions {
            logprob_chunk: chunk,
            checkpointing: false,
            entropy: false,
        },
    }
}

/// Sum of the trained tokens' log-probs of `s` under `model`.
fn trained_logprob(model: &Qwen2, s: &Sequence) -> f64 {
    let lp = score_sequence(model, &s.ids, 64, false).logprobs;
    (1..s.ids.len())
        .filter(|&t| s.loss_mask[t])
        .map(|t| lp[t - 1] as f64)
        .sum()
}

#[test]
fn recomputed_logprobs_match_a_full_forward() {
    let model = tiny_model(3);
    let seqs = vec![seq(20, 4, 1, 1.0), seq(9, 2, 5, -1.0)];
    let old = recompute_logprobs(&model, &seqs, &cfg(16, 3));
    for (s, o) in seqs.iter().zip(&old) {
        let full = score_sequence(&model, &s.ids, 1024, false).logprobs;
        assert_eq!(o.len(), s.ids.len());
        assert_eq!(o[0], 0.0);
        for t in 1..s.ids.len() {
            assert!(
                (o[t] - full[t - 1]).abs() < 1e-5,
                "token {t}: {} vs {}",
                o[t],
                full[t - 1]
            );
        }
    }
}

#[test]
fn policy_step_moves_probability_towards_positive_advantages() {
    let adamw = AdamWConfig {
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut learner = Learner::new(tiny_model(4), adamw);
    let good = seq(24, 6, 2, 1.0);
    let bad = seq(24, 6, 9, -1.0);
    let seqs = vec![good.clone(), bad.clone()];
    let score = |l: &Learner| {
        (
            trained_logprob(&l.model, &good),
            trained_logprob(&l.model, &bad),
        )
    };
    let (g0, b0) = score(&learner);
    let loss_cfg = PolicyLossConfig::new(ClipRange::STAGE1);
    for step in 0..5 {
        let old = recompute_logprobs(&learner.model, &seqs, &cfg(4096, 64));
        let stats =
            policy_step(&mut learner, &seqs, &old, 1e-3, &cfg(4096, 64), &loss_cfg).unwrap();
        if step == 0 {
            // On-policy first step: ratio is exactly 1, so nothing is clipped.
            assert!((stats.metrics.ratio_mean - 1.0).abs() < 1e-6, "{stats:?}");
            assert_eq!(stats.metrics.clip_low + stats.metrics.clip_high, 0.0);
            assert_eq!(stats.action_tokens, 36.0);
        }
    }
    let (g1, b1) = score(&learner);
    assert!(g1 > g0 + 0.5, "positive-advantage sequence: {g0} -> {g1}");
    assert!(b1 < b0 - 0.5, "negative-advantage sequence: {b0} -> {b1}");
}

#[test]
fn micro_batched_policy_step_equals_one_batch() {
    let run = |micro: usize, chunk: i64| {
        let mut learner = Learner::new(tiny_model(5), AdamWConfig::default());
        let seqs = vec![seq(30, 5, 1, 0.7), seq(11, 3, 4, -1.2), seq(19, 9, 8, 0.5)];
        // Old log-probs slightly off the current policy, so ratios differ from 1.
        let old: Vec<Vec<f32>> = recompute_logprobs(&learner.model, &seqs, &cfg(4096, 64))
            .into_iter()
            .map(|v| v.into_iter().map(|x| x - 0.05).collect())
            .collect();
        let loss_cfg = PolicyLossConfig::new(ClipRange::STAGE1);
        let stats = policy_step(
            &mut learner,
            &seqs,
            &old,
            1e-3,
            &cfg(micro, chunk),
            &loss_cfg,
        )
        .unwrap();
        let after: Vec<Tensor> = learner
            .trainable
            .params
            .iter()
            .map(|p| p.working.detach().copy())
            .collect();
        (after, stats.loss)
    };
    let (plain, l0) = run(4096, 4096);
    let (micro, l1) = run(20, 7);
    assert!((l0 - l1).abs() < 1e-5, "loss {l0} vs {l1}");
    let d = plain
        .iter()
        .zip(&micro)
        .map(|(a, b)| (a - b).abs().max().double_value(&[]))
        .fold(0.0, f64::max);
    // Adam's first step moves weights by ~lr = 1e-3; a lost micro-batch would show at that scale.
    assert!(d < 2e-5, "micro-batched step differs by {d}");
}

/// Issue 12's bar, on DAPO steps: 8 policy steps (a new mini-batch each) at the paper's
/// learning rates in bf16 mixed precision move the weights as f32 training does; bf16 weights
/// updated in place do not.
#[test]
fn bf16_mixed_precision_tracks_f32_training_and_pure_bf16_does_not() {
    let batches: Vec<Vec<Sequence>> = (0..8u32)
        .map(|i| {
            vec![
                seq(30, 5, 1 + i, 0.7),
                seq(11, 3, 40 + i, -1.2),
                seq(19, 9, 80 + i, 0.5),
            ]
        })
        .collect();
    // Old log-probs a little off the policy (the same for every run), so ratios differ from 1.
    let model = tiny_model(21);
    let old: Vec<Vec<Vec<f32>>> = batches
        .iter()
        .map(|b| {
            recompute_logprobs(&model, b, &cfg(4096, 64))
                .into_iter()
                .map(|v| v.into_iter().map(|x| x - 0.05).collect())
                .collect()
        })
        .collect();
    let loss_cfg = PolicyLossConfig::new(ClipRange::STAGE1);
    for lr in [1e-6, 5e-6] {
        let runs = common::precision_tracking(21, batches.len(), lr, &|learner, lr, i| {
            policy_step(learner, &batches[i], &old[i], lr, &cfg(4096, 64), &loss_cfg).unwrap();
        });
        eprintln!("DAPO lr {lr:e}: {runs:?}");
        assert!(runs.mixed.tracks(), "lr {lr:e}: mixed precision {runs:?}");
        assert!(!runs.pure_bf16.tracks(), "lr {lr:e}: pure bf16 {runs:?}");
    }
}
