//! LoRA adapters against Hugging Face PEFT (fixtures written by
//! crates/model/reference/make_lora_fixtures.py): log-probs of the adapted model, the merged
//! model, adapters saved and loaded again, and what training an adapter may touch.

use std::path::Path;

use swerl_model::checkpoint::forward_backward_checkpointed;
use swerl_model::generate::generate;
use swerl_model::logprobs::{logprobs_from_hidden, token_logprobs};
use swerl_model::lora::{LoraAdapter, LoraConfig, Target, ADAPTER_CONFIG_FILE, ADAPTER_FILE};
use swerl_model::qwen2::Qwen2;
use swerl_model::sampling::SamplingParams;
use tch::{Device, Kind, Tensor};

use super::{config, fixture, ids_tensor, load, max_abs, recomputed_logprobs, reference, requests};

/// (adapter fixture, its base fixture).
const ADAPTERS: [(&str, &str); 2] = [
    ("tiny-qwen2-lora", "tiny-qwen2"),
    ("tiny-qwen2-yarn-lora", "tiny-qwen2-yarn"),
];

struct Expected {
    logprobs: Tensor,
    merged_logprobs: Tensor,
}

fn expected(adapter: &str) -> Expected {
    let tensors: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(fixture(adapter).join("expected.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    Expected {
        logprobs: tensors["logprobs"].shallow_clone(),
        merged_logprobs: tensors["merged_logprobs"].shallow_clone(),
    }
}

/// The base fixture with the PEFT adapter fixture attached.
fn adapted(adapter: &str, base: &str) -> Qwen2 {
    let mut model = load(base);
    let lora = LoraAdapter::load(&fixture(adapter), &model.config, Device::Cpu).unwrap();
    model.attach_lora(lora).unwrap();
    model
}

/// Next-token log-probs [1, T-1] of the base fixture's input ids.
fn logprobs(model: &Qwen2, base: &str) -> Tensor {
    let ids = ids_tensor(&reference(base).input_ids);
    let t = ids.size()[1];
    tch::no_grad(|| token_logprobs(model, &ids.narrow(1, 0, t - 1), &ids.narrow(1, 1, t - 1), 7))
}

#[test]
fn adapted_logprobs_match_peft_within_1e5() {
    for (adapter, base) in ADAPTERS {
        let model = adapted(adapter, base);
        let want = expected(adapter).logprobs;
        let err = max_abs(&logprobs(&model, base), &want);
        assert!(err < 1e-5, "{adapter}: max abs log-prob error {err}");
        // The adapter matters: the base model alone is far from these log-probs.
        let base_err = max_abs(&logprobs(&load(base), base), &want);
        assert!(
            base_err > 0.1,
            "{adapter}: the adapter moves log-probs by only {base_err}"
        );
    }
}

#[test]
fn merged_model_equals_the_adapted_model_within_1e5() {
    for (adapter, base) in ADAPTERS {
        let mut model = adapted(adapter, base);
        let before = logprobs(&model, base);
        let lora = model.merge_lora().expect("an adapter was attached");
        assert!(model.lora().is_none());
        let merged = logprobs(&model, base);
        let err = max_abs(&merged, &before);
        assert!(err < 1e-5, "{adapter}: merged vs adapted {err}");
        let want = expected(adapter);
        let peft = max_abs(&merged, &want.merged_logprobs);
        assert!(
            peft < 1e-5,
            "{adapter}: merged vs PEFT's merge_and_unload {peft}"
        );
        // The merge wrote into the base weights; the adapter's own tensors are untouched.
        let reloaded = LoraAdapter::load(&fixture(adapter), &model.config, Device::Cpu).unwrap();
        for (name, t) in lora.named_tensors() {
            assert!(t.equal(&reloaded.named_tensors()[&name]), "{name} changed");
        }
    }
}

#[test]
fn a_saved_adapter_loads_back_with_the_same_logprobs_and_peft_fields() {
    let (adapter, base) = ADAPTERS[0];
    let model = adapted(adapter, base);
    let dir = tempfile::tempdir().unwrap();
    let lora = model.lora().unwrap();
    lora.save(dir.path()).unwrap();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(ADAPTER_CONFIG_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["task_type"], "CAUSAL_LM");
    assert_eq!(json["r"], 4);
    assert_eq!(json["lora_alpha"], 8.0);
    assert_eq!(json["target_modules"].as_array().unwrap().len(), 7);
    // Key for key what PEFT wrote.
    let ours = Tensor::read_safetensors(dir.path().join(ADAPTER_FILE)).unwrap();
    let peft = Tensor::read_safetensors(fixture(adapter).join(ADAPTER_FILE)).unwrap();
    let names = |v: &[(String, Tensor)]| {
        let mut n: Vec<String> = v.iter().map(|(n, _)| n.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&ours), names(&peft));
    let mut again = load(base);
    let loaded = LoraAdapter::load(dir.path(), &again.config, Device::Cpu).unwrap();
    assert_eq!(loaded.config, lora.config);
    again.attach_lora(loaded).unwrap();
    assert!(logprobs(&again, base).equal(&logprobs(&model, base)));
}

#[test]
fn a_fresh_adapter_computes_exactly_the_base_model() {
    let base = load("tiny-qwen2");
    let mut adapted = load("tiny-qwen2");
    tch::manual_seed(5);
    let lora = LoraAdapter::new(LoraConfig::new(8), &adapted.config, Device::Cpu);
    let a = lora.named_tensors();
    let a = &a["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"];
    assert_eq!(a.size(), [8, 128]);
    assert!(a.abs().max().double_value(&[]) <= 1.0 / 128f64.sqrt());
    adapted.attach_lora(lora).unwrap();
    assert!(logprobs(&adapted, "tiny-qwen2").equal(&logprobs(&base, "tiny-qwen2")));
}

#[test]
fn only_the_adapter_receives_gradients_and_checkpointing_agrees() {
    for (adapter, base) in ADAPTERS {
        let model = adapted(adapter, base);
        let ids = ids_tensor(&reference(base).input_ids);
        let t = ids.size()[1];
        let (inputs, targets) = (ids.narrow(1, 0, t - 1), ids.narrow(1, 1, t - 1));
        let loss = -token_logprobs(&model, &inputs, &targets, 8).mean(Kind::Float);
        loss.backward();
        for (name, p) in model.vs.variables() {
            assert!(!p.requires_grad(), "{name}: the base is frozen");
            assert!(!p.grad().defined(), "{name}: a base tensor got a gradient");
        }
        let lora = model.lora().unwrap();
        let plain: Vec<(String, Tensor)> = lora
            .named_tensors()
            .into_iter()
            .map(|(n, p)| (n, p.grad().copy()))
            .collect();
        for (name, g) in &plain {
            assert!(
                g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0,
                "{name}"
            );
        }
        for (_, mut p) in lora.named_tensors() {
            p.zero_grad();
        }
        // The layer-wise recompute gives the adapter the same gradients, with a frozen
        // embedding at the bottom.
        let checkpointed = forward_backward_checkpointed(&model, &inputs, None, |hidden| {
            let l = -logprobs_from_hidden(&model, hidden, &targets, 8, false)
                .0
                .mean(Kind::Float);
            l.backward();
            l.double_value(&[])
        });
        assert!((checkpointed - loss.double_value(&[])).abs() < 1e-6);
        for (name, p) in lora.named_tensors() {
            let want = &plain.iter().find(|(n, _)| *n == name).unwrap().1;
            let err = max_abs(&p.grad(), want) / want.abs().max().double_value(&[]).max(1e-12);
            assert!(
                err < 1e-5,
                "{adapter} {name}: relative gradient error {err}"
            );
        }
    }
}

#[test]
fn generation_with_an_adapter_reports_the_adapted_logprobs() {
    let (adapter, base) = ADAPTERS[0];
    let model = adapted(adapter, base);
    let r = reference(base);
    let out = generate(
        &model,
        &requests(&r.prompts),
        &config(SamplingParams::rollout_default(), 12),
        None,
    )
    .unwrap();
    for (prompt, o) in r.prompts.iter().zip(&out) {
        let expected = recomputed_logprobs(&model, prompt, &o.tokens, 1.0);
        let err = o
            .logprobs
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 2e-5, "max abs error {err}");
    }
}

#[test]
fn a_shared_base_is_the_same_storage_with_an_adapter_of_its_own() {
    let (adapter, base) = ADAPTERS[0];
    let trainer = adapted(adapter, base);
    let mut engine = trainer.share_base();
    assert!(engine.lora().is_none());
    let vars = engine.vs.variables();
    for (name, t) in trainer.vs.variables() {
        assert_eq!(t.data_ptr(), vars[&name].data_ptr(), "{name} was copied");
    }
    engine
        .attach_lora(trainer.lora().unwrap().copy_to(Device::Cpu))
        .unwrap();
    assert!(logprobs(&engine, base).equal(&logprobs(&trainer, base)));
    // The copy is the engine's own: an update of the trainer's adapter reaches it only
    // through copy_from.
    let trainer_lora = trainer.lora().unwrap().named_tensors();
    let key = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
    tch::no_grad(|| {
        let _ = trainer_lora[key].shallow_clone().g_add_scalar_(0.5);
    });
    assert!(!logprobs(&engine, base).equal(&logprobs(&trainer, base)));
    let update: Vec<(String, Tensor)> = trainer_lora.into_iter().collect();
    engine.lora().unwrap().copy_from(&update).unwrap();
    assert!(logprobs(&engine, base).equal(&logprobs(&trainer, base)));
}

#[test]
fn bf16_base_with_f32_adapter_is_close_to_f32() {
    let (adapter, base) = ADAPTERS[0];
    let f32_model = adapted(adapter, base);
    let mut bf16 =
        swerl_model::weights::load_model(&fixture(base), Device::Cpu, Some(Kind::BFloat16))
            .unwrap();
    let lora = LoraAdapter::load(&fixture(adapter), &bf16.config, Device::Cpu).unwrap();
    bf16.attach_lora(lora).unwrap();
    let a = bf16.lora().unwrap().named_tensors();
    assert!(
        a.values().all(|t| t.kind() == Kind::Float),
        "adapters stay f32"
    );
    let err = max_abs(&logprobs(&bf16, base), &logprobs(&f32_model, base));
    assert!(err.is_finite() && err < 0.5, "bf16 vs f32 log-probs {err}");
}

/// A copy of the fixture adapter with `edit` applied to its config JSON.
fn edited_adapter(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let src = fixture("tiny-qwen2-lora");
    std::fs::copy(src.join(ADAPTER_FILE), dir.join(ADAPTER_FILE)).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join(ADAPTER_CONFIG_FILE)).unwrap())
            .unwrap();
    edit(&mut json);
    std::fs::write(dir.join(ADAPTER_CONFIG_FILE), json.to_string()).unwrap();
}

fn load_error(dir: &Path) -> String {
    let config = load("tiny-qwen2").config;
    LoraAdapter::load(dir, &config, Device::Cpu)
        .unwrap_err()
        .to_string()
}

#[test]
fn adapters_that_do_not_fit_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    edited_adapter(dir.path(), |j| j["use_dora"] = true.into());
    let err = load_error(dir.path());
    assert!(
        err.contains("use_dora") && err.contains("adapter_config.json"),
        "{err}"
    );

    edited_adapter(dir.path(), |j| {
        j["target_modules"] = serde_json::json!(["q_proj", "lm_head"])
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("lm_head") && err.contains("not a Qwen2 projection"),
        "{err}"
    );

    // Fewer targets in the config than tensors in the file: the extra key is named.
    edited_adapter(dir.path(), |j| {
        j["target_modules"] = serde_json::json!(["q_proj"])
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("unexpected tensor") && err.contains("mlp.down_proj"),
        "{err}"
    );

    // Another rank than the tensors have: the shape error names the key.
    edited_adapter(dir.path(), |j| j["r"] = 8.into());
    let err = load_error(dir.path());
    assert!(
        err.contains("lora_A.weight") && err.contains("shape"),
        "{err}"
    );

    // A projection the config names but the file lacks.
    edited_adapter(dir.path(), |_| {});
    let mut tensors = Tensor::read_safetensors(dir.path().join(ADAPTER_FILE)).unwrap();
    tensors.retain(|(n, _)| !n.contains("layers.1.mlp.up_proj.lora_B"));
    Tensor::write_safetensors(&tensors, dir.path().join(ADAPTER_FILE)).unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains("lacks 1") && err.contains("layers.1.mlp.up_proj.lora_B"),
        "{err}"
    );
}

#[test]
fn run_config_block_takes_defaults_and_rejects_unknown_fields() {
    let c: LoraConfig = serde_json::from_str(r#"{"rank": 16}"#).unwrap();
    assert_eq!((c.rank, c.alpha, c.dropout), (16, 32.0, 0.0));
    assert_eq!(c.target_modules, Target::ALL.to_vec());
    let c: LoraConfig =
        serde_json::from_str(r#"{"rank": 4, "alpha": 4, "target_modules": ["v_proj", "q_proj"]}"#)
            .unwrap();
    assert_eq!(c.scale(), 1.0);
    assert_eq!(c.target_modules, vec![Target::QProj, Target::VProj]);
    let err = serde_json::from_str::<LoraConfig>(r#"{"rank": 4, "alpah": 4}"#).unwrap_err();
    assert!(err.to_string().contains("alpah"), "{err}");
    let err = serde_json::from_str::<LoraConfig>(r#"{"rank": 0}"#).unwrap_err();
    assert!(err.to_string().contains("rank is 0"), "{err}");
    // The resolved form round-trips.
    let again: LoraConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(again, c);
}

#[test]
fn parameter_count_is_rank_times_in_plus_out_per_projection() {
    let config = load("tiny-qwen2").config;
    let lora = LoraAdapter::new(LoraConfig::new(4), &config, Device::Cpu);
    let stored: i64 = lora
        .named_tensors()
        .values()
        .map(|t| t.numel() as i64)
        .sum();
    assert_eq!(LoraConfig::new(4).parameter_count(&config), stored as u64);
    // hidden 64, q 64, k/v 32, MLP 128: 4 x (128 + 96 + 96 + 128 + 192 + 192 + 192) x 2 layers.
    assert_eq!(stored, 4 * 1024 * 2);
}

#[test]
fn save_merged_writes_the_merged_model_and_leaves_the_adapted_one_alone() {
    let (adapter, base) = ADAPTERS[0];
    let model = adapted(adapter, base);
    let before: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    let dir = tempfile::tempdir().unwrap();
    swerl_model::weights::save_merged(&model, dir.path(), 200_000).unwrap();
    for (name, t) in &before {
        assert!(model.vs.variables()[name].equal(t), "{name} changed");
    }
    assert!(model.lora().is_some());
    let written = swerl_model::weights::load_model(dir.path(), Device::Cpu, None).unwrap();
    let mut merged = adapted(adapter, base);
    merged.merge_lora();
    for (name, t) in merged.vs.variables() {
        assert!(written.vs.variables()[&name].equal(&t), "{name}");
    }
    let err = max_abs(&logprobs(&written, base), &expected(adapter).logprobs);
    assert!(err < 1e-5, "{err}");
}
