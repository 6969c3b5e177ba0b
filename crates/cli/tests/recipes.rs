//! The scale-up recipes of configs/recipes run for real, at the smallest size, with local
//! stand-ins for what this machine cannot have: a task image made from a bundled task instead
//! of a published SWE-bench image, and a tiny checkpoint in Qwen2.5-Instruct's exact layout
//! instead of the real weights. Every command of each recipe runs; what differs from a real
//! run is only the size and where the model and images come from.

mod common;

use std::path::Path;

use common::{
    bundled_task, make_task_image, recipe, require_sandbox, root, spawn_swerl, swerl, text,
};
use std::io::{BufRead, BufReader, Read, Write};
use swerl_env::task::write_jsonl;
use swerl_model::config::Qwen2Config;
use swerl_model::qwen2::Qwen2;

/// A DAPO config at the smallest size: one iteration of one problem, two rollouts.
fn tiny_dapo_config(dir: &Path, stage: u8) -> String {
    let path = dir.join(format!("stage{stage}.json"));
    let config = serde_json::json!({
        "stage": stage,
        "iterations": 1,
        "problems_per_iteration": 1,
        "group_size": 2,
        "batch_trajectories": 2,
        "max_context": 12_000,
        "max_turns": 3,
        "turn_threshold": 1,
        "micro_batch_tokens": 24_000,
        "eval_every": 0
    });
    std::fs::write(&path, config.to_string()).unwrap();
    path.display().to_string()
}

/// A random model with the test tokenizer (its chat template is Qwen2.5's).
fn tiny_model(dir: &Path) -> String {
    let out = dir.join("model");
    let tokenizer = root().join("crates/model/tests/fixtures/tokenizer");
    let made = swerl(&[
        "model",
        "init",
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--hidden",
        "32",
        "--layers",
        "1",
    ]);
    assert!(made.status.success(), "{}", text(&made));
    out.display().to_string()
}

/// configs/recipes/swe-rebench.sh end to end on one task that ships as its own image:
/// validate (and keep the valid rows), RFT collection, RFT, DAPO stage 1, stage 2, eval.
#[test]
fn the_swe_rebench_recipe_runs_on_a_task_image() {
    require_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let mut task = bundled_task("swerl-bundled__jsonpointer-1");
    let image = "swerl-test-task:jsonpointer";
    make_task_image(&task, image, dir.path());
    task.docker_image = Some(image.into());
    task.extra.remove("env_repo");
    let tasks = dir.path().join("rebench.jsonl");
    write_jsonl(&tasks, std::slice::from_ref(&task)).unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("run");
    let env = [
        ("TASKS", tasks.display().to_string()),
        ("MODEL", model.clone()),
        ("OUT", out.display().to_string()),
        ("DEVICE", "cpu".into()),
        ("SOCKET", swerl_container::DEFAULT_SOCKET.into()),
        ("PULL", String::new()),
        ("JOBS", "1".into()),
        ("CONCURRENCY", "2".into()),
        ("RFT_SAMPLES", "1".into()),
        // The random model resolves nothing; the scripted solver in its tokens stands in
        // for the base model's lucky samples.
        ("RFT_POLICY", format!("scripted:{model}")),
        ("STAGE1", tiny_dapo_config(dir.path(), 1)),
        ("STAGE2", tiny_dapo_config(dir.path(), 2)),
        // Stage 1's single task is never solved by the random model: the pool filter would
        // leave nothing, so stage 2 runs on the whole pool here.
        ("POOL_FROM", String::new()),
        ("EVAL_RUNS", "1".into()),
        ("EVAL_MAX_TURNS", "2".into()),
        ("EVAL_MAX_CONTEXT", "12000".into()),
        // The scripted solver's longest command must fit in one turn.
        ("MAX_NEW_TOKENS", "256".into()),
        ("TURN_THRESHOLD", "1".into()),
    ];
    let ran = recipe("swe-rebench.sh", &env);
    assert!(ran.status.success(), "{}", text(&ran));
    for file in [
        "tasks.jsonl",
        "rft-samples/trajectories.jsonl",
        "rft/model.safetensors",
        "stage1/metrics.jsonl",
        "stage2/metrics.jsonl",
        "eval/summary.json",
    ] {
        assert!(out.join(file).exists(), "{file} missing:\n{}", text(&ran));
    }
    assert!(
        !out.join("envs").exists(),
        "repositories come from the image"
    );
}

/// A checkpoint directory laid out as Qwen2.5-0.5B-Instruct's (every config key, bf16
/// weights, tied embeddings, a vocabulary padded past the tokenizer, a generation config
/// with truncating sampling defaults), at a tiny size.
fn qwen25_layout_checkpoint(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("Qwen2.5-tiny-Instruct");
    let fixture = root().join("crates/model/tests/fixtures/tokenizer");
    let chat = swerl_model::chat::ChatTokenizer::from_dir(&fixture).unwrap();
    let tokens = chat.tokenizer().vocab_size();
    let padded = tokens.div_ceil(128) * 128 + 128;
    let id = |t: &str| {
        chat.tokenizer()
            .token_id(t)
            .expect("a Qwen2.5 special token")
    };
    let (endoftext, im_end) = (id("<|endoftext|>"), id("<|im_end|>"));
    let config = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": endoftext,
        "eos_token_id": im_end,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 128,
        "max_position_embeddings": 32768,
        "max_window_layers": 2,
        "model_type": "qwen2",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": true,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.43.1",
        "use_cache": true,
        "use_sliding_window": false,
        "vocab_size": padded
    });
    let parsed = Qwen2Config::from_json_str(&config.to_string(), "Qwen2.5 layout").unwrap();
    tch::manual_seed(7);
    let model = Qwen2::new(parsed, tch::Device::Cpu, tch::Kind::BFloat16);
    swerl_model::weights::save_model(&model, &out, u64::MAX).unwrap();
    // The checkpoint's own files, as downloaded, replace what save_model wrote.
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    let generation = serde_json::json!({
        "bos_token_id": endoftext, "pad_token_id": endoftext, "do_sample": true,
        "eos_token_id": [im_end, endoftext], "repetition_penalty": 1.05,
        "temperature": 0.7, "top_p": 0.8, "top_k": 20, "transformers_version": "4.37.0"
    });
    std::fs::write(out.join("generation_config.json"), generation.to_string()).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture.join(f), out.join(f)).unwrap();
    }
    out
}

/// configs/recipes/local-checkpoint.sh end to end from a Qwen2.5-layout directory: base
/// evaluation, RFT collection, RFT, DAPO stage 1, evaluation, with the checkpoint's
/// generation config ignored by every rollout.
#[test]
fn the_local_checkpoint_recipe_runs_from_a_qwen2_5_layout_directory() {
    require_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let model = qwen25_layout_checkpoint(dir.path());
    let out = dir.path().join("run");
    let env = [
        ("MODEL", model.display().to_string()),
        ("OUT", out.display().to_string()),
        ("DEVICE", "cpu".into()),
        (
            "TASK_FLAGS",
            "--instance swerl-bundled__jsonpointer-1 --instance swerl-bundled__romans-1".into(),
        ),
        ("RFT_POLICY", format!("scripted:{}", model.display())),
        ("SAMPLES", "1".into()),
        ("RUNS", "1".into()),
        ("CONFIG", tiny_dapo_config(dir.path(), 1)),
        ("CONCURRENCY", "2".into()),
        ("MAX_TURNS", "8".into()),
        ("TURN_THRESHOLD", "7".into()),
        ("MAX_CONTEXT", "16000".into()),
        // The scripted solver's longest command must fit in one turn.
        ("MAX_NEW_TOKENS", "256".into()),
        ("RFT_BATCH", "1".into()),
    ];
    let ran = recipe("local-checkpoint.sh", &env);
    assert!(ran.status.success(), "{}", text(&ran));
    let base = std::fs::read_to_string(out.join("eval-base/trajectories.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(base.lines().next().unwrap()).unwrap();
    let sampling = &first["policy"]["sampling"];
    assert_eq!(
        (
            sampling["temperature"].as_f64(),
            sampling["top_k"].as_i64(),
            sampling["top_p"].as_f64()
        ),
        (Some(1.0), Some(0), Some(1.0)),
        "rollouts ignore generation_config.json: {sampling}"
    );
    for file in [
        "rft/model.safetensors",
        "stage1/metrics.jsonl",
        "eval/summary.json",
    ] {
        assert!(out.join(file).exists(), "{file} missing:\n{}", text(&ran));
    }
}

/// A `swerl serve` process, killed on drop.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    /// Serves `model` as `policy` on a free loopback port.
    fn start(model: &str) -> Server {
        let mut child = spawn_swerl(&[
            "serve",
            "--model",
            model,
            "--port",
            "0",
            "--served-model-name",
            "policy",
        ]);
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                other => panic!("swerl serve ended before listening: {other:?}"),
            };
            if let Some(rest) = line.split("on http://").nth(1) {
                let addr = rest.split('/').next().unwrap();
                break format!("http://{addr}");
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, url }
    }

    /// The engine's weight version from `GET /health`.
    fn weight_version(&self) -> u64 {
        let addr = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
        let json: serde_json::Value = serde_json::from_str(body.trim())
            .unwrap_or_else(|e| panic!("/health answered {response:?}: {e}"));
        json["engine"]["weight_version"].as_u64().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// configs/recipes/http-servers.sh against `swerl serve` standing in for vLLM / SGLang: the
/// rollouts come from the server, and after the iteration the server loads the trainer's
/// checkpoint through the reload call (SGLang's route, which `swerl serve` answers).
#[test]
fn the_http_servers_recipe_trains_from_a_server_and_syncs_its_weights() {
    require_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let server = Server::start(&model);
    assert_eq!(server.weight_version(), 0);
    let out = dir.path().join("run");
    let env = [
        ("URLS", server.url.clone()),
        ("MODEL", model.clone()),
        ("OUT", out.display().to_string()),
        ("DEVICE", "cpu".into()),
        ("CONFIG", tiny_dapo_config(dir.path(), 1)),
        (
            "TASK_FLAGS",
            "--instance swerl-bundled__jsonpointer-1".into(),
        ),
        ("CONCURRENCY", "2".into()),
        ("MAX_NEW_TOKENS", "32".into()),
    ];
    let ran = recipe("http-servers.sh", &env);
    assert!(ran.status.success(), "{}", text(&ran));
    assert!(out.join("metrics.jsonl").exists(), "{}", text(&ran));
    assert_eq!(
        server.weight_version(),
        1,
        "the server loaded the iteration's checkpoint"
    );
}
