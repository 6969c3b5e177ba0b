//! The DAPO loop training a LoRA adapter on the toy problem of the full-training tests: the
//! reward rises, only the adapter's factors change, and an interrupted run resumes to the
//! same adapter bit for bit.

use super::*;
use common::{flat_adapter, lora_sampler, with_lora};
use swerl_model::lora::LoraConfig;

/// The toy model as a stand-in for a pretrained base: its output head scaled up.
///
/// An adapter on the projections cannot move a frozen head, and the toy model's head is
/// random with std 0.02: with |h| = sqrt(64) after the final norm, every logit stays within
/// ~0.5 of 0, so no adapter could push the 8 target ids of 32 much above their 1/4 share.
/// A pretrained head is not like that; scaled 10x the logits span a few nats, as a real
/// model's do, and the adapter has something to steer.
fn lora_base(seed: i64) -> Qwen2 {
    let model = toy_model(seed);
    tch::no_grad(|| {
        let _ = model.lm_head_weight().shallow_clone().g_mul_scalar_(10.0);
    });
    model
}

fn lora_learner(lora: LoraConfig) -> Learner {
    Learner::new(with_lora(lora_base(5), lora, 6), AdamWConfig::default())
}

/// Runs `config` in `dir` from a fresh LoRA learner; returns it and the metrics rows.
fn run_lora(
    config: DapoConfig,
    lora: LoraConfig,
    dir: &Path,
    resume: bool,
) -> (Learner, Vec<MetricsRow>) {
    let learner = lora_learner(lora);
    let mut backend = ToyBackend::new(lora_sampler(&learner), 4);
    let mut run = DapoRun::new(config, learner, dir, pool()).unwrap();
    let rows = run.run(&mut backend, resume, &BTreeMap::new()).unwrap();
    (run.learner, rows)
}

#[test]
fn lora_dapo_raises_the_mean_reward_training_only_the_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = toy_config(10);
    config.eval_every = 0;
    config.lr = 3e-3;
    let lora = LoraConfig::new(8);
    config.lora = Some(lora.clone());
    let base_before = flat_weights(&lora_learner(lora.clone()).model);
    let (learner, rows) = run_lora(config, lora, dir.path(), false);
    let reward: Vec<f64> = rows.iter().map(|r| r.values["reward/mean"]).collect();
    let first = (reward[0] + reward[1]) / 2.0;
    let last = (reward[8] + reward[9]) / 2.0;
    eprintln!("LoRA: mean reward per iteration: {reward:?}");
    // The untrained policy earns about 1/4 (0.32 with this seed); the adapter must lift it.
    assert!(reward[0] < 0.4, "toy task solved at the start: {reward:?}");
    assert!(last > first + 0.3, "reward did not rise: {reward:?}");
    assert!(
        base_before == flat_weights(&learner.model),
        "a base tensor changed"
    );
    // The sampler shares the base and is synced with the adapter: no sampler/trainer gap.
    assert!(rows
        .iter()
        .all(|r| r.values["kl/sampler_trainer"].abs() < 1e-6));
    // Checkpoints hold the adapter in PEFT's layout, not a model.
    let ckpt = dir.path().join("checkpoints/iter-000010");
    assert!(ckpt.join("adapter/adapter_model.safetensors").is_file());
    assert!(!ckpt.join("model").exists());
}

/// With dropout on (its masks seeded by the optimizer step), an interrupted LoRA run resumes
/// to the same adapter and moments, bit for bit.
#[test]
fn interrupted_and_resumed_lora_run_ends_with_the_identical_adapter() {
    let lora = LoraConfig {
        dropout: 0.1,
        ..LoraConfig::new(4)
    };
    let config = |iterations| {
        let mut c = toy_config(iterations);
        c.lr = 2e-2;
        c.lora = Some(lora.clone());
        c
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (straight, _) = run_lora(config(3), lora.clone(), a.path(), false);
    run_lora(config(1), lora.clone(), b.path(), false);
    let (resumed, rows) = run_lora(config(3), lora.clone(), b.path(), true);
    assert_eq!(rows.len(), 2, "resume starts at iteration 1");
    assert!(flat_adapter(&straight.model) == flat_adapter(&resumed.model));
    let moments = |l: &Learner| -> Vec<Vec<f32>> {
        l.trainable
            .state()
            .iter()
            .map(|(_, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())
            .collect()
    };
    assert!(moments(&straight) == moments(&resumed), "moments differ");
    // A full-training learner cannot resume a LoRA run: the error says why.
    let learner = Learner::new(toy_model(5), AdamWConfig::default());
    let mut backend = ToyBackend::new(toy_model(5), 4);
    let mut run = DapoRun::new(toy_config(4), learner, b.path(), pool()).unwrap();
    let err = run.run(&mut backend, true, &BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("trained a LoRA adapter"), "{err}");
}

#[test]
fn lora_dropout_with_checkpointing_is_refused_by_the_config() {
    let err = DapoConfig::from_json_str(r#"{"lora": {"rank": 8, "dropout": 0.05}}"#, "c.json")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lora.dropout") && err.contains("checkpointing"),
        "{err}"
    );
    let ok = DapoConfig::from_json_str(
        r#"{"lora": {"rank": 8, "dropout": 0.05}, "pass": {"checkpointing": false}}"#,
        "c.json",
    )
    .unwrap();
    assert_eq!(ok.lora.unwrap().alpha, 16.0);
}
