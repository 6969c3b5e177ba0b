//! Checkpoints restore a learner exactly: a resumed run continues bit-for-bit, in f32 and in
//! bf16 mixed precision (whose checkpoint carries the f32 masters).

use swerl_model::config::Qwen2Config;
use swerl_model::qwen2::Qwen2;
use swerl_train::batch::Sequence;
use swerl_train::checkpoint::{latest, load, save, TrainState};
use swerl_train::sft::{sft_step, StepConfig};
use swerl_train::step::PassOptions;
use swerl_train::{AdamWConfig, Learner};
use tch::{Device, Kind, Tensor};

fn learner(seed: i64, kind: Kind) -> Learner {
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    Learner::new(
        Qwen2::new(Qwen2Config::tiny(), Device::Cpu, kind),
        AdamWConfig::default(),
    )
}

fn batch(salt: u32) -> Vec<Sequence> {
    vec![Sequence {
        ids: (0..16u32).map(|t| (t * 5 + salt) % 500).collect(),
        loss_mask: (0..16).map(|t| t >= 4).collect(),
        sampler_logprobs: vec![0.0; 16],
        advantage: 1.0,
        source: 0,
    }]
}

const CFG: StepConfig = StepConfig {
    micro_batch_tokens: 4096,
    max_grad_norm: 1.0,
    pass: PassOptions {
        logprob_chunk: 64,
        checkpointing: false,
        entropy: false,
    },
};

/// Three steps uninterrupted vs. one step, checkpoint, resume into a differently seeded model,
/// two more steps: masters and working weights are equal bit for bit. `lr` is the paper's RFT
/// rate in bf16, where the masters carry what the bf16 weights cannot.
fn resume_is_bit_for_bit(kind: Kind, lr: f64) {
    let dir = tempfile::tempdir().unwrap();
    let mut a = learner(11, kind);
    for salt in 0..3 {
        sft_step(&mut a, &batch(salt), lr, &CFG);
    }
    let mut b = learner(11, kind);
    sft_step(&mut b, &batch(0), lr, &CFG);
    let state = TrainState {
        iteration: 1,
        optimizer_step: b.trainable.step,
        data_cursor: 1,
        seed: 11,
        param_names: b.trainable.names(),
    };
    let written = save(dir.path(), &b, &state).unwrap();
    assert_eq!(
        latest(dir.path()).unwrap().as_deref(),
        Some(written.as_path())
    );
    assert!(
        written.join("model/config.json").is_file()
            && written.join("model/model.safetensors").is_file()
    );
    drop(b);
    let mut c = learner(99, kind);
    let restored = load(&written, &mut c).unwrap();
    assert_eq!(restored, state);
    for salt in restored.data_cursor as u32..3 {
        sft_step(&mut c, &batch(salt), lr, &CFG);
    }
    for (pa, pc) in a.trainable.params.iter().zip(&c.trainable.params) {
        assert!(
            pa.master().equal(pc.master()),
            "{kind:?} {}: master differs after resume",
            pa.name
        );
        assert!(
            pa.working.equal(&pc.working),
            "{kind:?} {}: weights differ after resume",
            pa.name
        );
    }
}

#[test]
fn resume_from_checkpoint_is_bit_for_bit() {
    resume_is_bit_for_bit(Kind::Float, 1e-3);
}

#[test]
fn bf16_resume_continues_from_the_f32_masters_bit_for_bit() {
    resume_is_bit_for_bit(Kind::BFloat16, 5e-6);
}

#[test]
fn a_bf16_checkpoint_is_a_bf16_model_directory_with_f32_masters_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = learner(5, Kind::BFloat16);
    sft_step(&mut b, &batch(0), 5e-6, &CFG);
    let state = TrainState {
        iteration: 1,
        optimizer_step: 1,
        data_cursor: 1,
        seed: 5,
        param_names: b.trainable.names(),
    };
    let written = save(dir.path(), &b, &state).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(written.join("model/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
    let weights = Tensor::read_safetensors(written.join("model/model.safetensors")).unwrap();
    assert!(weights.iter().all(|(_, t)| t.kind() == Kind::BFloat16));
    let opt = Tensor::read_safetensors(written.join("optimizer.safetensors")).unwrap();
    let masters: Vec<_> = opt
        .iter()
        .filter(|(n, _)| n.starts_with("master."))
        .collect();
    assert_eq!(masters.len(), b.trainable.params.len());
    assert!(masters.iter().all(|(_, t)| t.kind() == Kind::Float));
    // The saved bf16 weights are the masters rounded: what serving loads is what trained.
    for (i, p) in b.trainable.params.iter().enumerate() {
        let saved = &weights.iter().find(|(n, _)| *n == p.name).unwrap().1;
        let master = &opt
            .iter()
            .find(|(n, _)| *n == format!("master.{i}"))
            .unwrap()
            .1;
        assert!(saved.equal(&master.to_kind(Kind::BFloat16)), "{}", p.name);
    }
}

#[test]
fn latest_is_none_without_checkpoints_and_ignores_torn_ones() {
    let dir = tempfile::tempdir().unwrap();
    assert!(latest(dir.path()).unwrap().is_none());
    // A crash mid-write leaves only a .tmp directory, which is never pointed at.
    std::fs::create_dir_all(dir.path().join("iter-000001.tmp/model")).unwrap();
    assert!(latest(dir.path()).unwrap().is_none());
}
