//! `swerl train --lora` end to end with real episodes: the embedded engine over the shared
//! base, and HTTP servers syncing the adapter through vLLM's LoRA route or a merged model.

use super::*;
use swerl_policy::engine::GenerateJob;

/// Log-probs the engine reports for a short greedy continuation of `prompt` with `adapter`,
/// and those `model` computes for the same tokens.
fn engine_and_model_logprobs(
    engine: &swerl_policy::EngineHandle,
    adapter: Option<&str>,
    model: &swerl_model::qwen2::Qwen2,
) -> (Vec<f32>, Vec<f32>) {
    let prompt = vec![1u32, 5, 9, 13, 17];
    let out = engine
        .generate(GenerateJob {
            prompt: prompt.clone(),
            seed: 3,
            max_new_tokens: 4,
            sampling: swerl_model::sampling::SamplingParams::rollout_default(),
            stop_token_ids: vec![],
            adapter: adapter.map(str::to_string),
        })
        .unwrap();
    let tokens: Vec<u32> = prompt.iter().chain(&out.tokens).copied().collect();
    let scored = swerl_model::logprobs::score_sequence(model, &tokens, 64, false);
    (out.logprobs, scored.logprobs[prompt.len() - 1..].to_vec())
}

fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-4, "{a:?} vs {b:?}");
    }
}

/// The embedded engine: checkpoints hold the adapter alone, and a resume continues from it.
#[test]
fn lora_train_with_the_embedded_engine_checkpoints_the_adapter_and_resumes() {
    require_local_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_policy_dir(dir.path());
    let lora = ["--lora", "4"];
    train_with(dir.path(), &model, 1, false, &lora).unwrap();
    train_with(dir.path(), &model, 2, true, &lora).unwrap();
    let ckpt = dir.path().join("run/checkpoints/iter-000002");
    assert!(ckpt.join("adapter/adapter_config.json").is_file());
    assert!(!ckpt.join("model").exists(), "no copy of the frozen base");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run/config.json")).unwrap())
            .unwrap();
    assert_eq!(info["config"]["lora"]["rank"], 4);
    // Resuming without the LoRA flags is refused with the reason.
    let err = train(dir.path(), &model, 3, true).unwrap_err();
    assert!(format!("{err:#}").contains("LoRA"), "{err:#}");
}

/// HTTP servers: with `--lora-sync adapter` (the default) the server loads each checkpoint's
/// adapter through `/v1/load_lora_adapter` and the episodes name it; with `merged` the
/// server's own weights become the merged model.
#[test]
fn lora_train_syncs_http_servers_by_adapter_or_merged_model() {
    require_local_sandbox();
    use swerl_policy::server;
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_policy_dir(dir.path());
    let (engine, state) = server::load_model_dir(
        &model,
        tch::Device::Cpu,
        swerl_policy::EngineConfig::default(),
        Some("tiny".into()),
        0,
    )
    .unwrap();
    let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
    let running = server::spawn(server::router(state.clone()), addr, 2).unwrap();
    let policy = format!("http:{}", running.url());

    let by_adapter = tempfile::tempdir().unwrap();
    let args = [
        "--lora",
        "4",
        "--policy",
        &policy,
        "--model-name",
        "policy-lora",
    ];
    train_with(by_adapter.path(), &model, 1, false, &args).unwrap();
    assert_eq!(state.adapters(), ["policy-lora"]);
    let run = by_adapter.path().join("run");
    let episodes = std::fs::read_to_string(run.join("episodes/iter-000000.jsonl")).unwrap();
    assert!(episodes.contains(r#""model":"policy-lora""#), "{episodes}");
    let adapter = run.join("checkpoints/iter-000001/adapter");
    let trained =
        swerl_model::lora::load_adapted(&model, &adapter, tch::Device::Cpu, None).unwrap();
    let (served, expected) =
        engine_and_model_logprobs(&state.engine, Some("policy-lora"), &trained);
    assert_close(&served, &expected);

    let by_merge = tempfile::tempdir().unwrap();
    let args = [
        "--lora",
        "4",
        "--lora-sync",
        "merged",
        "--policy",
        &policy,
        "--model-name",
        "tiny",
    ];
    train_with(by_merge.path(), &model, 1, false, &args).unwrap();
    let ckpt = by_merge.path().join("run/checkpoints/iter-000001");
    assert!(ckpt.join("merged/tokenizer.json").is_file());
    let merged =
        swerl_model::weights::load_model(&ckpt.join("merged"), tch::Device::Cpu, None).unwrap();
    let after = variables(&state.engine);
    for (name, t) in merged.vs.variables() {
        assert!(
            after[&name].equal(&t),
            "{name}: the server serves the merged model"
        );
    }
    let adapted =
        swerl_model::lora::load_adapted(&model, &ckpt.join("adapter"), tch::Device::Cpu, None)
            .unwrap();
    let (served, expected) = engine_and_model_logprobs(&state.engine, None, &adapted);
    assert_close(&served, &expected);
    drop(running);
    engine.shutdown();
}
