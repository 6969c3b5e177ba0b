//! LoRA adapters in the engine and the server: named adapters beside the base, the engine's
//! own adapter synced by copying its factors, and vLLM's `/v1/load_lora_adapter` route as
//! the HTTP weight sync.

use super::*;
use swerl_model::lora::{LoraAdapter, LoraConfig};
use swerl_policy::http::reload::vllm_lora_reload;
use tch::Device;

/// A rank-4 adapter for `model` whose factors are all visibly non-zero.
fn random_adapter(model: &Qwen2, seed: i64) -> LoraAdapter {
    tch::manual_seed(seed);
    let adapter = LoraAdapter::new(LoraConfig::new(4), &model.config, Device::Cpu);
    tch::no_grad(|| {
        for (_, t) in adapter.named_tensors() {
            t.shallow_clone().copy_(&(t.randn_like() * 0.3));
        }
    });
    adapter
}

/// A copy of `base` wearing a copy of `adapter`, for recomputing log-probs.
fn adapted_copy(base: &Qwen2, adapter: &LoraAdapter, chat: &ChatTokenizer, seed: i64) -> Qwen2 {
    let (mut copy, _) = models(chat, seed);
    copy.vs.copy(&base.vs).unwrap();
    copy.attach_lora(adapter.copy_to(Device::Cpu)).unwrap();
    copy
}

fn adapter_job(prompt: &[u32], chat: &ChatTokenizer, adapter: Option<&str>) -> GenerateJob {
    GenerateJob {
        adapter: adapter.map(str::to_string),
        ..job(prompt, 5, SamplingParams::rollout_default(), chat)
    }
}

#[test]
fn the_engine_serves_named_adapters_beside_the_base_in_one_queue() {
    let chat = chat();
    let (model, base_copy) = models(&chat, 30);
    let adapter = random_adapter(&model, 31);
    let tuned = adapted_copy(&model, &adapter, &chat, 32);
    let dir = tempfile::tempdir().unwrap();
    adapter.save(dir.path()).unwrap();
    let engine = engine(model, 5);
    let handle = engine.handle();
    handle
        .load_adapter("tuned".into(), dir.path().to_path_buf())
        .unwrap();
    let prompts = prompts(&chat, 4);
    // Requests of both kinds at once: each is answered under its own weights.
    let outs = concurrently(8, |i| {
        let name = (i % 2 == 1).then_some("tuned");
        let prompt = &prompts[i / 2];
        (
            i,
            handle.generate(adapter_job(prompt, &chat, name)).unwrap(),
        )
    });
    for (i, out) in outs {
        let (prompt, reference) = match i % 2 {
            0 => (&prompts[i / 2], &base_copy),
            _ => (&prompts[i / 2], &tuned),
        };
        assert_close(
            &out.logprobs,
            &recompute_logprobs(reference, prompt, &out.tokens),
            1e-4,
        );
    }
    // An unknown name is refused, naming it; a bad directory changes nothing.
    let err = handle
        .generate(adapter_job(&prompts[0], &chat, Some("other")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("other") && err.contains("load_lora_adapter"),
        "{err}"
    );
    let bad = tempfile::tempdir().unwrap();
    let (wide, _) = models(&chat, 33);
    let mut wide_config = wide.config.clone();
    wide_config.hidden_size *= 2;
    wide_config.head_dim *= 2;
    LoraAdapter::new(LoraConfig::new(4), &wide_config, Device::Cpu)
        .save(bad.path())
        .unwrap();
    let err = handle
        .load_adapter("tuned".into(), bad.path().to_path_buf())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tuned") && err.contains("shape"), "{err}");
    let out = handle
        .generate(adapter_job(&prompts[0], &chat, Some("tuned")))
        .unwrap();
    assert_close(
        &out.logprobs,
        &recompute_logprobs(&tuned, &prompts[0], &out.tokens),
        1e-4,
    );
    handle.unload_adapter("tuned".into()).unwrap();
    assert!(handle
        .generate(adapter_job(&prompts[0], &chat, Some("tuned")))
        .is_err());
    engine.shutdown();
}

/// The embedded LoRA trainer's sync: the engine wears its own adapter over a base it shares
/// with the trainer, and a sync copies only the factors.
#[test]
fn the_engines_own_adapter_is_synced_by_its_factors() {
    let chat = chat();
    let (mut trainer, _) = models(&chat, 34);
    trainer
        .attach_lora(LoraAdapter::new(
            LoraConfig::new(4),
            &trainer.config,
            Device::Cpu,
        ))
        .unwrap();
    let mut sampler = trainer.share_base();
    sampler
        .attach_lora(trainer.lora().unwrap().copy_to(Device::Cpu))
        .unwrap();
    let engine = engine(sampler, 0);
    let prompt = prompts(&chat, 1).remove(0);
    let before = engine
        .handle()
        .generate(adapter_job(&prompt, &chat, None))
        .unwrap();
    // The trainer's adapter moves; the engine follows after a sync, and only then.
    let update = random_adapter(&trainer, 35);
    trainer
        .lora()
        .unwrap()
        .copy_from(&update.named_tensors().into_iter().collect::<Vec<_>>())
        .unwrap();
    let stale = engine
        .handle()
        .generate(adapter_job(&prompt, &chat, None))
        .unwrap();
    // No sync, no change (up to the prefix cache's reuse of the prompt's keys and values).
    assert_eq!(stale.tokens, before.tokens);
    assert_close(&stale.logprobs, &before.logprobs, 1e-4);
    let factors: Vec<(String, Tensor)> = trainer
        .lora()
        .unwrap()
        .named_tensors()
        .into_iter()
        .collect();
    engine.handle().load_adapter_tensors(factors).unwrap();
    let synced = engine
        .handle()
        .generate(adapter_job(&prompt, &chat, None))
        .unwrap();
    assert_close(
        &synced.logprobs,
        &recompute_logprobs(&trainer, &prompt, &synced.tokens),
        1e-4,
    );
    let moved = synced
        .logprobs
        .iter()
        .zip(&before.logprobs)
        .any(|(a, b)| (a - b).abs() > 1e-2);
    assert!(
        moved || synced.tokens != before.tokens,
        "the sync changed nothing"
    );
    engine.shutdown();
}

/// vLLM's LoRA route as the HTTP weight sync, against a real `swerl serve` router: the
/// adapter is loaded, then replaced in place, and an HTTP policy naming it samples with it.
#[test]
fn http_weight_sync_loads_adapters_through_the_lora_route() {
    let chat = chat();
    let (model, base_copy) = models(&chat, 36);
    let (first, second) = (random_adapter(&model, 37), random_adapter(&model, 38));
    let tuned = [
        adapted_copy(&model, &first, &chat, 39),
        adapted_copy(&model, &second, &chat, 40),
    ];
    let dir = tempfile::tempdir().unwrap();
    let dirs = [dir.path().join("iter-1"), dir.path().join("iter-2")];
    first.save(&dirs[0]).unwrap();
    second.save(&dirs[1]).unwrap();
    let engine = engine(model, 0);
    let server = serve(&engine, &chat);
    let config = ReloadConfig {
        call: ReloadCall::parse(&vllm_lora_reload("policy-lora")).unwrap(),
        ..reload_config()
    };
    let reloader = Reloader::new(vec![server.url()], config).unwrap();
    let mut lora_config = http_config(vec![server.url()]);
    lora_config.model = "policy-lora".into();
    let backend = Arc::new(HttpBackend::new(lora_config).unwrap());
    let base_backend = Arc::new(HttpBackend::new(http_config(vec![server.url()])).unwrap());
    let seed = EpisodeSeed::new(3, "task", 0);
    for (dir, reference) in dirs.iter().zip(&tuned) {
        reloader.reload(dir).unwrap();
        let mut http = HttpPolicy::new(backend.clone(), chat.clone(), seed.clone());
        let prompt = http.prompt(SYSTEM, "fix the failing test").unwrap();
        let turn = http.generate(&prompt, 6).unwrap();
        assert_close(
            &turn.logprobs,
            &recompute_logprobs(reference, &prompt, &turn.token_ids),
            1e-4,
        );
        // The base model stays served under its own name.
        let mut plain = HttpPolicy::new(base_backend.clone(), chat.clone(), seed.clone());
        let prompt = plain.prompt(SYSTEM, "fix the failing test").unwrap();
        let turn = plain.generate(&prompt, 6).unwrap();
        assert_close(
            &turn.logprobs,
            &recompute_logprobs(&base_copy, &prompt, &turn.token_ids),
            1e-4,
        );
    }
    let models = reqwest::blocking::get(format!("{}/v1/models", server.url()))
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(models["data"][1]["id"], "policy-lora");
    assert_eq!(models["data"][1]["parent"], "tiny");
    // vLLM refuses a second load under a used name unless load_inplace is set.
    let (status, _) = post_text(
        &format!("{}/v1/load_lora_adapter", server.url()),
        json!({"lora_name": "policy-lora", "lora_path": dirs[0]}),
    );
    assert_eq!(status, 400);
    let (status, text) = post_text(
        &format!("{}/v1/unload_lora_adapter", server.url()),
        json!({"lora_name": "policy-lora"}),
    );
    assert_eq!(status, 200, "{text}");
    let (status, _) = post_text(
        &format!("{}/v1/unload_lora_adapter", server.url()),
        json!({"lora_name": "policy-lora"}),
    );
    assert_eq!(status, 404);
    drop(server);
    engine.shutdown();
}

fn post_text(url: &str, body: Value) -> (u16, String) {
    let response = reqwest::blocking::Client::new()
        .post(url)
        .json(&body)
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}
