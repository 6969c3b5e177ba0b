//! The Qwen2 model against Hugging Face transformers (fixtures written by
//! crates/model/reference/make_fixtures.py), and its own invariants: generation log-probs
//! equal a full forward's, checkpointed gradients equal plain ones, checkpoints round-trip.

use std::path::{Path, PathBuf};

use swerl_model::checkpoint::forward_backward_checkpointed;
use swerl_model::generate::{
    generate, generate_reusing, CachedPrefix, FinishReason, GenerationConfig, GenerationRequest,
};
use swerl_model::logprobs::{backward_chunked, logprobs_from_hidden, token_logprobs};
use swerl_model::qwen2::Qwen2;
use swerl_model::sampling::SamplingParams;
use swerl_model::weights::{load_model, save_model, DEFAULT_SHARD_BYTES, INDEX_FILE, SINGLE_FILE};
use tch::{Device, Kind, Tensor};

#[path = "qwen2/lora.rs"]
mod lora;

const VARIANTS: [&str; 2] = ["tiny-qwen2", "tiny-qwen2-yarn"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Reference {
    input_ids: Vec<Vec<i64>>,
    prompts: Vec<Vec<u32>>,
    max_new_tokens: usize,
    greedy_alone: Vec<Vec<u32>>,
    greedy_batch: Vec<Vec<u32>>,
    logits: Tensor,
    logprobs: Tensor,
}

fn reference(name: &str) -> Reference {
    let text = std::fs::read_to_string(fixture(name).join("reference.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let get = |k: &str| json[k].clone();
    let expected: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(fixture(name).join("expected.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    Reference {
        input_ids: serde_json::from_value(get("input_ids")).unwrap(),
        prompts: serde_json::from_value(get("prompts")).unwrap(),
        max_new_tokens: serde_json::from_value(get("max_new_tokens")).unwrap(),
        greedy_alone: serde_json::from_value(get("greedy_alone")).unwrap(),
        greedy_batch: serde_json::from_value(get("greedy_batch")).unwrap(),
        logits: expected["logits"].shallow_clone(),
        logprobs: expected["logprobs"].shallow_clone(),
    }
}

fn load(name: &str) -> Qwen2 {
    load_model(&fixture(name), Device::Cpu, None).unwrap()
}

fn ids_tensor(rows: &[Vec<i64>]) -> Tensor {
    let flat: Vec<i64> = rows.concat();
    Tensor::from_slice(&flat).view([rows.len() as i64, -1])
}

/// Largest |a - b| relative to the largest |b|.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let diff = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[]);
    diff / b.abs().max().double_value(&[]).max(1e-12)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

fn requests(prompts: &[Vec<u32>]) -> Vec<GenerationRequest> {
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| GenerationRequest {
            prompt: p.clone(),
            seed: 100 + i as u64,
        })
        .collect()
}

fn config(sampling: SamplingParams, max_new_tokens: usize) -> GenerationConfig {
    GenerationConfig {
        sampling,
        max_new_tokens,
        stop_token_ids: Vec::new(),
        sample_vocab: None,
    }
}

#[test]
fn logits_match_transformers_within_1e4_relative() {
    for name in VARIANTS {
        let (model, r) = (load(name), reference(name));
        let logits = tch::no_grad(|| model.forward(&ids_tensor(&r.input_ids)));
        let err = rel_err(&logits, &r.logits);
        // Elementwise too: every logit within 1e-4 of the reference, relative to its own size.
        let elementwise = ((&logits - &r.logits).abs() - (r.logits.abs() * 1e-4 + 1e-5))
            .max()
            .double_value(&[]);
        assert!(
            err < 1e-4 && elementwise <= 0.0,
            "{name}: relative error {err}, worst elementwise excess {elementwise}"
        );
    }
}

#[test]
fn chunked_logprobs_match_transformers() {
    for name in VARIANTS {
        let (model, r) = (load(name), reference(name));
        let ids = ids_tensor(&r.input_ids);
        let t = ids.size()[1];
        for chunk in [1, 7, 4096] {
            let lp = tch::no_grad(|| {
                token_logprobs(
                    &model,
                    &ids.narrow(1, 0, t - 1),
                    &ids.narrow(1, 1, t - 1),
                    chunk,
                )
            });
            let err = max_abs(&lp, &r.logprobs);
            assert!(err < 1e-4, "{name} chunk {chunk}: max abs error {err}");
        }
    }
}

#[test]
fn greedy_generation_matches_transformers_alone_and_batched() {
    for name in VARIANTS {
        let (model, r) = (load(name), reference(name));
        let cfg = config(SamplingParams::greedy(), r.max_new_tokens);
        for (prompt, expected) in r.prompts.iter().zip(&r.greedy_alone) {
            let out =
                generate(&model, &requests(std::slice::from_ref(prompt)), &cfg, None).unwrap();
            assert_eq!(&out[0].tokens, expected, "{name}: prompt {prompt:?} alone");
            assert_eq!(out[0].finish, FinishReason::Length);
        }
        let out = generate(&model, &requests(&r.prompts), &cfg, None).unwrap();
        let got: Vec<Vec<u32>> = out.into_iter().map(|o| o.tokens).collect();
        assert_eq!(got, r.greedy_batch, "{name}: left-padded batch");
    }
}

/// Log-probs of `tokens` after `prompt`, from one full forward without cache.
fn recomputed_logprobs(
    model: &Qwen2,
    prompt: &[u32],
    tokens: &[u32],
    temperature: f64,
) -> Vec<f32> {
    let all: Vec<i64> = prompt.iter().chain(tokens).map(|&t| i64::from(t)).collect();
    let ids = Tensor::from_slice(&all).unsqueeze(0);
    let n = all.len() as i64;
    let (p, k) = (prompt.len() as i64, tokens.len() as i64);
    tch::no_grad(|| {
        let hidden = model
            .forward_hidden(&ids.narrow(1, 0, n - 1), None)
            .narrow(1, p - 1, k);
        let logits = hidden.matmul(&model.lm_head_weight().tr()) / temperature;
        let lp = logits.log_softmax(-1, Kind::Float).gather(
            -1,
            &ids.narrow(1, p, k).unsqueeze(-1),
            false,
        );
        Vec::<f32>::try_from(lp.flatten(0, -1)).unwrap()
    })
}

#[test]
fn generation_logprobs_equal_full_forward_logprobs() {
    let truncated = SamplingParams {
        top_k: 50,
        top_p: 0.9,
        min_p: 0.01,
        temperature: 0.8,
    };
    for name in VARIANTS {
        let (model, r) = (load(name), reference(name));
        for sampling in [
            SamplingParams::rollout_default(),
            truncated.clone(),
            SamplingParams::greedy(),
        ] {
            let temperature = if sampling.is_greedy() {
                1.0
            } else {
                sampling.temperature
            };
            for batch in [&r.prompts[..1], &r.prompts[..]] {
                let out = generate(
                    &model,
                    &requests(batch),
                    &config(sampling.clone(), 16),
                    None,
                )
                .unwrap();
                for (prompt, o) in batch.iter().zip(&out) {
                    assert_eq!(o.tokens.len(), 16);
                    let expected = recomputed_logprobs(&model, prompt, &o.tokens, temperature);
                    let err = o
                        .logprobs
                        .iter()
                        .zip(&expected)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(
                        err < 2e-5,
                        "{name} {sampling:?} batch {}: max abs error {err}",
                        batch.len()
                    );
                }
            }
        }
    }
}

/// A checkpoint whose embedding matrix is padded beyond its tokenizer (real Qwen2.5) must
/// never sample a padded id: with `sample_vocab` only ids below it come out, and their
/// log-probs are those of the distribution renormalised over the allowed ids.
#[test]
fn sample_vocab_excludes_padded_ids_and_renormalises() {
    let (model, r) = (load("tiny-qwen2"), reference("tiny-qwen2"));
    let vocab = model.config.vocab_size;
    let allowed = vocab / 2;
    let free = generate(
        &model,
        &requests(&r.prompts),
        &config(SamplingParams::rollout_default(), 48),
        None,
    )
    .unwrap();
    assert!(
        free.iter()
            .flat_map(|o| &o.tokens)
            .any(|&t| t as usize >= allowed),
        "without a limit a random model samples from the upper half too"
    );
    let limited = GenerationConfig {
        sample_vocab: Some(allowed),
        ..config(SamplingParams::rollout_default(), 48)
    };
    let out = generate(&model, &requests(&r.prompts), &limited, None).unwrap();
    for (prompt, o) in r.prompts.iter().zip(&out) {
        assert!(
            o.tokens.iter().all(|&t| (t as usize) < allowed),
            "{:?}",
            o.tokens
        );
        let all: Vec<i64> = prompt
            .iter()
            .chain(&o.tokens)
            .map(|&t| i64::from(t))
            .collect();
        let ids = Tensor::from_slice(&all).unsqueeze(0);
        let (p, k, n) = (prompt.len() as i64, o.tokens.len() as i64, all.len() as i64);
        let expected = tch::no_grad(|| {
            let hidden = model
                .forward_hidden(&ids.narrow(1, 0, n - 1), None)
                .narrow(1, p - 1, k);
            let logits = hidden
                .matmul(&model.lm_head_weight().tr())
                .narrow(2, 0, allowed as i64);
            let lp = logits.log_softmax(-1, Kind::Float).gather(
                -1,
                &ids.narrow(1, p, k).unsqueeze(-1),
                false,
            );
            Vec::<f32>::try_from(lp.flatten(0, -1)).unwrap()
        });
        let err = o
            .logprobs
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 2e-5, "max abs error {err}");
    }
    let empty = GenerationConfig {
        sample_vocab: Some(0),
        ..limited
    };
    assert!(generate(&model, &requests(&r.prompts), &empty, None).is_err());
}

#[test]
fn seeded_sampling_is_reproducible_and_independent_of_the_batch() {
    let (model, r) = (load("tiny-qwen2"), reference("tiny-qwen2"));
    let cfg = config(SamplingParams::rollout_default(), 20);
    let batch = generate(&model, &requests(&r.prompts), &cfg, None).unwrap();
    let again = generate(&model, &requests(&r.prompts), &cfg, None).unwrap();
    assert_eq!(batch, again);
    let alone = generate(&model, &requests(&r.prompts[..1]), &cfg, None).unwrap();
    assert_eq!(alone[0].tokens, batch[0].tokens);
    let reseeded = vec![GenerationRequest {
        prompt: r.prompts[0].clone(),
        seed: 7,
    }];
    let other = generate(&model, &reseeded, &cfg, None).unwrap();
    assert_ne!(
        other[0].tokens, batch[0].tokens,
        "a different seed should give a different sample"
    );
}

/// A second turn that reuses the first turn's keys and values (whole, partial, or for some
/// rows only) samples what a second turn computed from scratch samples, with the log-probs
/// of a full forward.
#[test]
fn reused_prefixes_give_the_samples_of_a_fresh_prefill() {
    for name in VARIANTS {
        let (model, r) = (load(name), reference(name));
        let cfg = config(SamplingParams::rollout_default(), 8);
        let first = generate_reusing(&model, &requests(&r.prompts), &[], &cfg, None).unwrap();
        for ((out, kv), prompt) in first.iter().zip(&r.prompts) {
            assert_eq!(kv.len as usize, prompt.len() + out.tokens.len() - 1);
        }
        // Turn 2: prompt + sampled turn + an "observation" (another prompt's head).
        let second: Vec<Vec<u32>> = r
            .prompts
            .iter()
            .zip(&first)
            .enumerate()
            .map(|(i, (p, (out, _)))| {
                let obs = &r.prompts[(i + 1) % r.prompts.len()];
                [p.as_slice(), &out.tokens, &obs[..3.min(obs.len())]].concat()
            })
            .collect();
        let fresh = generate(&model, &requests(&second), &cfg, None).unwrap();
        // Row 0 reuses all it can, row 1 (if any) nothing, the others only half their cache.
        let prefixes: Vec<Option<CachedPrefix<'_>>> = first
            .iter()
            .enumerate()
            .map(|(i, (_, kv))| match i {
                0 => Some(CachedPrefix {
                    kv,
                    len: kv.len as usize,
                }),
                1 => None,
                _ => Some(CachedPrefix {
                    kv,
                    len: kv.len as usize / 2,
                }),
            })
            .collect();
        let reused = generate_reusing(&model, &requests(&second), &prefixes, &cfg, None).unwrap();
        for (i, ((got, _), want)) in reused.iter().zip(&fresh).enumerate() {
            assert_eq!(got.tokens, want.tokens, "{name} row {i}");
            let expected = recomputed_logprobs(&model, &second[i], &got.tokens, 1.0);
            for (a, b) in got.logprobs.iter().zip(&expected) {
                assert!((a - b).abs() < 2e-5, "{name} row {i}: {a} vs {b}");
            }
        }
        // A cache that covers the whole prompt still runs its last token for the logits.
        let whole = &reused[0].1;
        let prompt = [
            second[0].as_slice(),
            &reused[0].0.tokens[..reused[0].0.tokens.len() - 1],
        ]
        .concat();
        let again = generate_reusing(
            &model,
            &requests(std::slice::from_ref(&prompt)),
            &[Some(CachedPrefix {
                kv: whole,
                len: prompt.len(),
            })],
            &cfg,
            None,
        )
        .unwrap();
        let plain = generate(&model, &requests(std::slice::from_ref(&prompt)), &cfg, None).unwrap();
        assert_eq!(
            again[0].0.tokens, plain[0].tokens,
            "{name}: whole-prompt cache"
        );
    }
}

#[test]
fn a_prefix_from_another_model_shape_is_refused() {
    let (model, r) = (load("tiny-qwen2"), reference("tiny-qwen2"));
    let cfg = config(SamplingParams::greedy(), 2);
    let (_, kv) = generate_reusing(&model, &requests(&r.prompts[..1]), &[], &cfg, None)
        .unwrap()
        .remove(0);
    let mut short = kv.share();
    short.layers.pop();
    let err = generate_reusing(
        &model,
        &requests(&r.prompts[..1]),
        &[Some(CachedPrefix { kv: &short, len: 2 })],
        &cfg,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("layers cached"), "{err}");
    let err = generate_reusing(
        &model,
        &requests(&r.prompts[..1]),
        &[Some(CachedPrefix {
            kv: &kv,
            len: kv.len as usize + 1,
        })],
        &cfg,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("asked of"), "{err}");
}

#[test]
fn generation_stops_on_stop_token_and_callback() {
    let (model, r) = (load("tiny-qwen2"), reference("tiny-qwen2"));
    let expected = &r.greedy_alone[0];
    let mut cfg = config(SamplingParams::greedy(), 12);
    cfg.stop_token_ids = vec![expected[2]];
    let out = generate(&model, &requests(&r.prompts[..1]), &cfg, None).unwrap();
    let first_stop = expected.iter().position(|t| *t == expected[2]).unwrap();
    assert_eq!(out[0].tokens, expected[..=first_stop]);
    assert_eq!(out[0].finish, FinishReason::StopToken);

    cfg.stop_token_ids.clear();
    let stop_after_four = |tokens: &[u32]| tokens.len() >= 4;
    let out = generate(&model, &requests(&r.prompts), &cfg, Some(&stop_after_four)).unwrap();
    assert!(out
        .iter()
        .all(|o| o.tokens.len() == 4 && o.finish == FinishReason::StopCallback));
    assert_eq!(out[1].tokens, r.greedy_alone[1][..4]);
}

#[test]
fn save_and_load_round_trip_single_and_sharded() {
    let model = load("tiny-qwen2");
    let ids = ids_tensor(&reference("tiny-qwen2").input_ids);
    let before = tch::no_grad(|| model.forward(&ids));
    let dir = tempfile::tempdir().unwrap();
    let (single, sharded) = (dir.path().join("single"), dir.path().join("sharded"));
    save_model(&model, &single, DEFAULT_SHARD_BYTES).unwrap();
    save_model(&model, &sharded, 100_000).unwrap();
    assert!(single.join(SINGLE_FILE).exists() && !single.join(INDEX_FILE).exists());
    let shards = std::fs::read_dir(&sharded).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("model-0000")
    });
    assert!(shards.count() > 2 && sharded.join(INDEX_FILE).exists());
    for path in [&single, &sharded] {
        let again = load_model(path, Device::Cpu, None).unwrap();
        let after = tch::no_grad(|| again.forward(&ids));
        assert_eq!(max_abs(&before, &after), 0.0, "{}", path.display());
    }
}

/// A checkpoint that does not fit (here: another MLP width, found only after tensors that do
/// fit in key order) changes no parameter, so a server reloading weights keeps serving the
/// old ones intact; a truncated file is refused the same way.
#[test]
fn a_checkpoint_that_does_not_fit_changes_nothing() {
    let model = load("tiny-qwen2");
    let snapshot: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.copy()))
        .collect();
    tch::manual_seed(5);
    let config = swerl_model::config::Qwen2Config {
        intermediate_size: model.config.intermediate_size + 8,
        ..model.config.clone()
    };
    let other = Qwen2::new(config, Device::Cpu, Kind::Float);
    let dir = tempfile::tempdir().unwrap();
    save_model(&other, dir.path(), DEFAULT_SHARD_BYTES).unwrap();
    let err = swerl_model::weights::load_weights(&model, dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("mlp") && err.contains("shape"), "{err}");

    let fits = tempfile::tempdir().unwrap();
    save_model(&load("tiny-qwen2"), fits.path(), DEFAULT_SHARD_BYTES).unwrap();
    let file = fits.path().join(SINGLE_FILE);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 4]).unwrap();
    let err = swerl_model::weights::load_weights(&model, fits.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated"), "{err}");

    let params = model.vs.variables();
    for (name, before) in &snapshot {
        assert!(params[name].equal(before), "{name} was changed");
    }
}

#[test]
fn tied_model_round_trips_without_lm_head_key() {
    let model = load("tiny-qwen2-yarn");
    let dir = tempfile::tempdir().unwrap();
    save_model(&model, dir.path(), DEFAULT_SHARD_BYTES).unwrap();
    let names = Tensor::read_safetensors(dir.path().join(SINGLE_FILE)).unwrap();
    assert!(names.iter().all(|(n, _)| n != "lm_head.weight"));
    let again = load_model(dir.path(), Device::Cpu, None).unwrap();
    assert_eq!(again.config, model.config);
}

#[test]
fn bf16_load_and_save() {
    let r = reference("tiny-qwen2");
    let model = load_model(&fixture("tiny-qwen2"), Device::Cpu, Some(Kind::BFloat16)).unwrap();
    assert_eq!(model.kind(), Kind::BFloat16);
    let logits = tch::no_grad(|| model.forward(&ids_tensor(&r.input_ids)));
    let err = rel_err(&logits, &r.logits);
    assert!(err < 5e-2, "bf16 logits relative error {err}");

    let dir = tempfile::tempdir().unwrap();
    save_model(&model, dir.path(), DEFAULT_SHARD_BYTES).unwrap();
    let stored = Tensor::read_safetensors(dir.path().join(SINGLE_FILE)).unwrap();
    assert!(stored.iter().all(|(_, t)| t.kind() == Kind::BFloat16));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
    // A bf16 checkpoint loads as bf16 by default, and into f32 when asked.
    assert_eq!(
        load_model(dir.path(), Device::Cpu, None).unwrap().kind(),
        Kind::BFloat16
    );
    let widened = load_model(dir.path(), Device::Cpu, Some(Kind::Float)).unwrap();
    let again = tch::no_grad(|| widened.forward(&ids_tensor(&r.input_ids)));
    assert!(rel_err(&again, &r.logits) < 5e-2);
}

/// Copies the tiny checkpoint with `edit` applied to its tensors and config text.
fn edited_checkpoint(
    edit_tensors: impl FnOnce(&mut Vec<(String, Tensor)>),
    edit_config: impl FnOnce(String) -> String,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("tiny-qwen2");
    let mut tensors = Tensor::read_safetensors(src.join(SINGLE_FILE)).unwrap();
    edit_tensors(&mut tensors);
    Tensor::write_safetensors(&tensors, dir.path().join(SINGLE_FILE)).unwrap();
    let config = std::fs::read_to_string(src.join("config.json")).unwrap();
    std::fs::write(dir.path().join("config.json"), edit_config(config)).unwrap();
    dir
}

fn load_error(dir: &tempfile::TempDir) -> String {
    load_model(dir.path(), Device::Cpu, None)
        .unwrap_err()
        .to_string()
}

#[test]
fn mismatched_checkpoints_name_the_key_and_shapes() {
    let wider = edited_checkpoint(
        |_| {},
        |c| c.replace("\"intermediate_size\": 128", "\"intermediate_size\": 96"),
    );
    let err = load_error(&wider);
    assert!(
        err.contains("`model.layers.0.mlp.down_proj.weight` has shape [64, 128]")
            && err.contains("gives [64, 96]"),
        "{err}"
    );

    let missing = edited_checkpoint(
        |t| t.retain(|(n, _)| n != "model.layers.1.self_attn.k_proj.bias"),
        |c| c,
    );
    let err = load_error(&missing);
    assert!(
        err.contains("lacks") && err.contains("model.layers.1.self_attn.k_proj.bias"),
        "{err}"
    );

    let extra = edited_checkpoint(
        |t| {
            t.push((
                "model.layers.9.extra.weight".into(),
                Tensor::zeros([2], (Kind::Float, Device::Cpu)),
            ))
        },
        |c| c,
    );
    let err = load_error(&extra);
    assert!(
        err.contains("unexpected") && err.contains("model.layers.9.extra.weight"),
        "{err}"
    );
}

fn grads(model: &Qwen2) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter()
        .map(|(n, v)| (n, v.grad().copy()))
        .collect()
}

fn zero_grads(model: &Qwen2) {
    for (_, mut v) in model.vs.variables() {
        v.zero_grad();
    }
}

fn assert_grads_close(a: &[(String, Tensor)], b: &[(String, Tensor)], tol: f64) {
    assert_eq!(a.len(), b.len());
    for ((name, ga), (_, gb)) in a.iter().zip(b) {
        assert!(ga.defined() && gb.defined(), "{name}: gradient missing");
        let err = rel_err(ga, gb);
        assert!(err < tol, "{name}: relative gradient error {err}");
    }
}

#[test]
fn checkpointed_gradients_equal_plain_backward() {
    for name in VARIANTS {
        let model = load(name);
        let ids = ids_tensor(&reference(name).input_ids);
        let t = ids.size()[1];
        let (inputs, targets) = (ids.narrow(1, 0, t - 1), ids.narrow(1, 1, t - 1));
        let plain_loss = -token_logprobs(&model, &inputs, &targets, 8).mean(Kind::Float);
        plain_loss.backward();
        let plain = grads(&model);
        zero_grads(&model);
        let loss = forward_backward_checkpointed(&model, &inputs, None, |hidden| {
            let l = -logprobs_from_hidden(&model, hidden, &targets, 8, false)
                .0
                .mean(Kind::Float);
            l.backward();
            l.double_value(&[])
        });
        assert!((loss - plain_loss.double_value(&[])).abs() < 1e-6);
        assert_grads_close(&grads(&model), &plain, 1e-5);
    }
}

#[test]
fn chunked_backward_equals_plain_backward() {
    let model = load("tiny-qwen2");
    let ids = ids_tensor(&reference("tiny-qwen2").input_ids);
    let t = ids.size()[1];
    let (inputs, targets) = (ids.narrow(1, 0, t - 1), ids.narrow(1, 1, t - 1));
    let n = (t - 1) as f64;
    let plain_loss = -token_logprobs(&model, &inputs, &targets, 1 << 20).sum(Kind::Float) / n;
    plain_loss.backward();
    let plain = grads(&model);
    zero_grads(&model);
    let loss = forward_backward_checkpointed(&model, &inputs, None, |hidden| {
        let leaf = hidden.detach().set_requires_grad(true);
        let total = backward_chunked(
            model.lm_head_weight(),
            &leaf,
            &targets,
            5,
            true,
            |stats, _, _| {
                assert!(stats.entropy.is_some());
                -stats.logprobs.sum(Kind::Float) / n
            },
        );
        (hidden * leaf.grad()).sum(Kind::Float).backward();
        total
    });
    assert!((loss - plain_loss.double_value(&[])).abs() < 1e-5);
    assert_grads_close(&grads(&model), &plain, 1e-5);
}

#[test]
fn transformers_sharded_checkpoint_loads() {
    let r = reference("tiny-qwen2");
    let model = load("tiny-qwen2-sharded");
    let logits = tch::no_grad(|| model.forward(&ids_tensor(&r.input_ids)));
    assert!(rel_err(&logits, &r.logits) < 1e-4);
}

#[test]
fn left_padded_forward_equals_unpadded_forward() {
    let (model, r) = (load("tiny-qwen2-yarn"), reference("tiny-qwen2-yarn"));
    let width = r.prompts.iter().map(Vec::len).max().unwrap();
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for p in &r.prompts {
        let pad = width - p.len();
        ids.extend(std::iter::repeat_n(0i64, pad).chain(p.iter().map(|&t| i64::from(t))));
        mask.extend((0..width).map(|i| i64::from(i >= pad)));
    }
    let b = r.prompts.len() as i64;
    let ids = Tensor::from_slice(&ids).view([b, -1]);
    let mask = Tensor::from_slice(&mask).view([b, -1]);
    let padded = tch::no_grad(|| model.forward_hidden(&ids, Some(&mask)));
    for (i, p) in r.prompts.iter().enumerate() {
        let alone: Vec<i64> = p.iter().map(|&t| i64::from(t)).collect();
        let alone =
            tch::no_grad(|| model.forward_hidden(&Tensor::from_slice(&alone).unsqueeze(0), None));
        let len = p.len() as i64;
        let row = padded.get(i as i64).narrow(0, width as i64 - len, len);
        assert!(max_abs(&row, &alone.squeeze_dim(0)) < 1e-5, "prompt {i}");
    }
}

#[test]
fn bf16_generation_runs_and_reports_finite_logprobs() {
    let r = reference("tiny-qwen2");
    let model = load_model(&fixture("tiny-qwen2"), Device::Cpu, Some(Kind::BFloat16)).unwrap();
    let out = generate(
        &model,
        &requests(&r.prompts),
        &config(SamplingParams::rollout_default(), 8),
        None,
    )
    .unwrap();
    assert!(out
        .iter()
        .all(|o| o.tokens.len() == 8 && o.logprobs.iter().all(|lp| lp.is_finite() && *lp <= 0.0)));
}
