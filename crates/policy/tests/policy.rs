//! The policy backends against each other and against a real server on 127.0.0.1:
//! embedded batching, the HTTP client's exact round trip, retries, failures and limits.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use swerl_agent::{FinishReason, Generation, Policy};
use swerl_model::chat::ChatTokenizer;
use swerl_model::qwen2::Qwen2;
use swerl_model::sampling::SamplingParams;
use swerl_policy::bench::{run_http_bench, tiny_random_model, BenchConfig};
use swerl_policy::engine::{Engine, EngineConfig, EngineHandle, GenerateJob};
use swerl_policy::http::reload::{ReloadCall, ReloadConfig, Reloader};
use swerl_policy::server::{self, RunningServer, ServerState};
use swerl_policy::{EmbeddedPolicy, EpisodeSeed, HttpBackend, HttpConfig, HttpPolicy};
use tch::{Kind, Tensor};

#[path = "policy/lora.rs"]
mod lora;

const SYSTEM: &str = "You are a careful software engineer.";

fn tokenizer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/tokenizer")
}

fn chat() -> Arc<ChatTokenizer> {
    Arc::new(ChatTokenizer::from_dir(&tokenizer_dir()).expect("the fixture tokenizer loads"))
}

/// A tiny random model covering the fixture tokenizer's vocabulary, and an identical copy
/// kept outside the engine for recomputing log-probs.
fn models(chat: &ChatTokenizer, seed: i64) -> (Qwen2, Qwen2) {
    let model = tiny_random_model(chat.tokenizer().vocab_size(), seed);
    let mut copy = tiny_random_model(chat.tokenizer().vocab_size(), seed + 1);
    copy.vs.copy(&model.vs).expect("same architecture");
    (model, copy)
}

fn engine(model: Qwen2, gather_ms: u64) -> Engine {
    Engine::start(
        model,
        EngineConfig {
            max_batch: 32,
            gather: Duration::from_millis(gather_ms),
            ..EngineConfig::default()
        },
    )
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn serve(engine: &Engine, chat: &Arc<ChatTokenizer>) -> RunningServer {
    let state = Arc::new(ServerState::new(engine.handle(), chat.clone(), "tiny", 1));
    server::spawn(server::router(state), loopback(), 2).expect("bind 127.0.0.1")
}

fn http_config(urls: Vec<String>) -> HttpConfig {
    let mut config = HttpConfig::new(urls, "tiny");
    config.timeout = Duration::from_secs(60);
    config.max_retries = 2;
    config.backoff_initial = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(5);
    config
}

fn prompts(chat: &ChatTokenizer, n: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| {
            chat.prompt_ids(Some(SYSTEM), &"fix the failing test ".repeat(i + 1))
                .unwrap()
        })
        .collect()
}

fn job(prompt: &[u32], seed: u64, sampling: SamplingParams, chat: &ChatTokenizer) -> GenerateJob {
    GenerateJob {
        prompt: prompt.to_vec(),
        seed,
        max_new_tokens: 6,
        sampling,
        stop_token_ids: chat.stop_ids().to_vec(),
        adapter: None,
    }
}

/// Log-probs of `generated` after `context` under `model`'s full forward at temperature 1.
fn recompute_logprobs(model: &Qwen2, context: &[u32], generated: &[u32]) -> Vec<f32> {
    let all: Vec<i64> = context
        .iter()
        .chain(generated)
        .map(|&t| i64::from(t))
        .collect();
    let input = Tensor::from_slice(&all[..all.len() - 1]).unsqueeze(0);
    let targets = Tensor::from_slice(&all[context.len()..]);
    tch::no_grad(|| {
        let logits = model.forward(&input).squeeze_dim(0).to_kind(Kind::Float);
        let rows = logits.narrow(0, context.len() as i64 - 1, generated.len() as i64);
        let lp = rows
            .log_softmax(-1, Kind::Float)
            .gather(-1, &targets.unsqueeze(-1), false);
        Vec::<f32>::try_from(lp.squeeze_dim(-1)).unwrap()
    })
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "log-prob {i}: {x} vs {y}");
    }
}

fn concurrently<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                s.spawn({
                    let f = &f;
                    move || f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn run_batched(
    handle: &EngineHandle,
    jobs: &[GenerateJob],
) -> (Vec<swerl_policy::engine::JobOutput>, u64) {
    let before = handle.stats().batches;
    let outs = concurrently(jobs.len(), |i| handle.generate(jobs[i].clone()).unwrap());
    (outs, handle.stats().batches - before)
}

#[test]
fn embedded_engine_batches_and_matches_sequential() {
    let chat = chat();
    let (model, _) = models(&chat, 11);
    let engine = engine(model, 50);
    let handle = engine.handle();
    let ps = prompts(&chat, 8);
    for sampling in [SamplingParams::greedy(), SamplingParams::rollout_default()] {
        let jobs: Vec<GenerateJob> = ps
            .iter()
            .enumerate()
            .map(|(i, p)| job(p, 100 + i as u64, sampling.clone(), &chat))
            .collect();
        let sequential: Vec<_> = jobs
            .iter()
            .map(|j| handle.generate(j.clone()).unwrap())
            .collect();
        let (batched, batches) = run_batched(&handle, &jobs);
        assert!(
            batches < jobs.len() as u64,
            "{} requests took {batches} batches",
            jobs.len()
        );
        for (s, b) in sequential.iter().zip(&batched) {
            assert_eq!(
                s.tokens, b.tokens,
                "batching changed the sampled tokens ({sampling:?})"
            );
            assert_close(&s.logprobs, &b.logprobs, 1e-4);
        }
    }
    engine.shutdown();
}

#[test]
fn embedded_engine_cuts_each_request_to_its_own_budget() {
    let chat = chat();
    let (model, _) = models(&chat, 12);
    let engine = engine(model, 50);
    let handle = engine.handle();
    let p = &prompts(&chat, 1)[0];
    let mut short = job(p, 5, SamplingParams::rollout_default(), &chat);
    short.stop_token_ids.clear();
    let mut long = short.clone();
    short.max_new_tokens = 2;
    long.max_new_tokens = 7;
    let alone = handle.generate(short.clone()).unwrap();
    let (together, _) = run_batched(&handle, &[short, long]);
    assert_eq!(together[0].tokens.len(), 2);
    assert_eq!(together[1].tokens.len(), 7);
    assert_eq!(together[0].tokens, alone.tokens);
    assert_eq!(
        together[0].tokens[..],
        together[1].tokens[..2],
        "same seed and prompt: same stream"
    );
    engine.shutdown();
}

#[test]
fn embedded_engine_rejects_invalid_requests_without_failing_others() {
    let chat = chat();
    let (model, _) = models(&chat, 13);
    let engine = engine(model, 0);
    let handle = engine.handle();
    let vocab = handle.info().vocab_size as u32;
    let mut bad = job(&[vocab + 5], 1, SamplingParams::greedy(), &chat);
    assert!(handle
        .generate(bad.clone())
        .unwrap_err()
        .to_string()
        .contains("outside the vocabulary"));
    bad.prompt = vec![1; handle.info().max_positions];
    assert!(handle
        .generate(bad)
        .unwrap_err()
        .to_string()
        .contains("positions"));
    let good = job(&prompts(&chat, 1)[0], 1, SamplingParams::greedy(), &chat);
    assert!(handle.generate(good).is_ok());
    engine.shutdown();
}

#[test]
fn weight_updates_apply_between_batches() {
    let chat = chat();
    let (model, _) = models(&chat, 14);
    let engine = engine(model, 0);
    let handle = engine.handle();
    let p = job(&prompts(&chat, 1)[0], 1, SamplingParams::greedy(), &chat);
    let before = handle.generate(p.clone()).unwrap();
    // Only tokens 7 and 8 get a non-zero logit, of opposite signs (rows +1 and -1), so
    // after the update greedy decoding can only pick one of them.
    let vocab = handle.info().vocab_size as i64;
    let head = Tensor::zeros([vocab, 64], (Kind::Float, tch::Device::Cpu));
    let _ = head.get(7).fill_(1.0);
    let _ = head.get(8).fill_(-1.0);
    let rejected = handle.load_named_tensors(vec![("no.such.weight".into(), head.copy())]);
    assert!(rejected.unwrap_err().to_string().contains("no.such.weight"));
    assert_eq!(handle.stats().weight_version, 0);
    handle
        .load_named_tensors(vec![("lm_head.weight".into(), head)])
        .unwrap();
    assert_eq!(handle.stats().weight_version, 1);
    let after = handle.generate(p).unwrap();
    assert_ne!(before.tokens, after.tokens);
    assert!(
        after.tokens.iter().all(|&t| t == 7 || t == 8),
        "{:?}",
        after.tokens
    );
    engine.shutdown();
}

/// The next turn's context: `context`, the sampled `tokens`, and a short observation.
fn next_turn(chat: &ChatTokenizer, context: &[u32], tokens: &[u32]) -> Vec<u32> {
    let observation = chat.prompt_ids(None, "the test still fails").unwrap();
    [context, tokens, &observation].concat()
}

#[test]
fn a_later_turn_reuses_the_cached_prefix_and_samples_the_same() {
    let chat = chat();
    let (model, reference) = models(&chat, 16);
    // A copy, not a second draw: tests running beside this one share torch's global RNG.
    let (mut uncached_model, _) = models(&chat, 17);
    uncached_model
        .vs
        .copy(&model.vs)
        .expect("same architecture");
    let cached = engine(model, 0);
    let plain = Engine::start(
        uncached_model,
        EngineConfig {
            prefix_cache_bytes: 0,
            ..EngineConfig::default()
        },
    );
    let (a, b) = (cached.handle(), plain.handle());
    let sampling = SamplingParams::rollout_default();
    let mut context = prompts(&chat, 1).remove(0);
    // Each later turn can reuse its previous prompt and all but the last sampled token.
    let mut reusable = 0;
    for turn in 0..3u64 {
        let j = job(&context, 40 + turn, sampling.clone(), &chat);
        let (got, want) = (a.generate(j.clone()).unwrap(), b.generate(j).unwrap());
        assert_eq!(got.tokens, want.tokens, "turn {turn}");
        assert_close(
            &got.logprobs,
            &recompute_logprobs(&reference, &context, &got.tokens),
            1e-4,
        );
        if turn < 2 {
            reusable += context.len() + got.tokens.len() - 1;
        }
        context = next_turn(&chat, &context, &got.tokens);
    }
    let (with, without) = (a.stats(), b.stats());
    assert_eq!(with.reused_prompt_tokens, reusable as u64, "{with:?}");
    assert_eq!(without.reused_prompt_tokens, 0);
    cached.shutdown();
    plain.shutdown();
}

#[test]
fn a_weight_update_empties_the_prefix_cache() {
    let chat = chat();
    let (model, _) = models(&chat, 17);
    let (_, other) = models(&chat, 18);
    let engine = engine(model, 0);
    let handle = engine.handle();
    let sampling = SamplingParams::rollout_default();
    let prompt = prompts(&chat, 1).remove(0);
    let first = handle
        .generate(job(&prompt, 1, sampling.clone(), &chat))
        .unwrap();
    // Every layer changes, so keys and values cached under the old weights are wrong now.
    let weights: Vec<(String, Tensor)> = other
        .vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.copy()))
        .collect();
    handle.load_named_tensors(weights).unwrap();
    let reused_before = handle.stats().reused_prompt_tokens;
    let context = next_turn(&chat, &prompt, &first.tokens);
    let second = handle.generate(job(&context, 2, sampling, &chat)).unwrap();
    assert_eq!(handle.stats().reused_prompt_tokens, reused_before);
    assert_close(
        &second.logprobs,
        &recompute_logprobs(&other, &context, &second.tokens),
        1e-4,
    );
    engine.shutdown();
}

/// Runs prompt -> generate -> observation -> generate and checks the token bookkeeping.
fn two_turns(policy: &mut dyn Policy) -> (Vec<u32>, Generation, Vec<u32>, Generation) {
    let prompt = policy.prompt(SYSTEM, "The test fails.").unwrap();
    let first = policy.generate(&prompt, 5).unwrap();
    assert_eq!(first.token_ids.len(), first.logprobs.len());
    let mut context = prompt.clone();
    context.extend(&first.token_ids);
    let delta = policy.observation_delta(&context, &first, "ok").unwrap();
    context.extend(&delta);
    let second = policy.generate(&context, 5).unwrap();
    (prompt, first, delta, second)
}

#[test]
fn embedded_policy_keeps_sampled_ids_and_appends_template_deltas() {
    let chat = chat();
    let (model, _) = models(&chat, 15);
    let engine = engine(model, 0);
    let seed = EpisodeSeed::new(3, "task-a", 0);
    let mut policy = EmbeddedPolicy::new(
        engine.handle(),
        chat.clone(),
        SamplingParams::rollout_default(),
        seed,
        "tiny",
    );
    let (prompt, first, delta, _) = two_turns(&mut policy);
    assert_eq!(
        chat.decode(&prompt, false).unwrap(),
        chat.render(
            &[
                swerl_model::chat::Message::system(SYSTEM),
                swerl_model::chat::Message::user("The test fails."),
            ],
            true
        )
        .unwrap()
    );
    let delta_text = chat.decode(&delta, false).unwrap();
    let opening = "<|im_start|>user\nok<|im_end|>\n<|im_start|>assistant\n";
    match first.finish {
        FinishReason::Length => assert_eq!(delta_text, format!("<|im_end|>\n{opening}")),
        FinishReason::Stop => assert_eq!(delta_text, format!("\n{opening}")),
    }
    // Same episode seed, same turns: reproducible.
    let mut again = policy.for_episode(EpisodeSeed::new(3, "task-a", 0));
    let (_, first_again, _, _) = two_turns(&mut again);
    assert_eq!(first.token_ids, first_again.token_ids);
    assert_eq!(policy.describe()["backend"], "embedded");
    engine.shutdown();
}

/// Makes greedy decoding always pick `id`: attention and MLP outputs are zeroed, so the
/// last hidden state is the normed embedding (all ones with embeddings of ones), and only
/// `id`'s output row is non-zero (ones), giving it the one positive logit.
fn force_token(handle: &EngineHandle, id: usize) {
    handle
        .update_weights(Box::new(move |model: &mut Qwen2| {
            tch::no_grad(|| {
                for (name, mut t) in model.vs.variables() {
                    if name.contains("o_proj")
                        || name.contains("down_proj")
                        || name == "lm_head.weight"
                    {
                        let _ = t.zero_();
                    }
                    if name == "model.embed_tokens.weight" {
                        let _ = t.fill_(1.0);
                    }
                }
                let _ = model.lm_head_weight().get(id as i64).fill_(1.0);
            });
            Ok(())
        }))
        .unwrap();
}

#[test]
fn deltas_close_a_turn_only_when_the_sampler_did_not() {
    let chat = chat();
    let opening = "<|im_start|>user\nok<|im_end|>\n<|im_start|>assistant\n";
    let end_of_turn = chat.end_of_turn().id as usize;
    let letter = chat.tokenizer().encode("a").unwrap()[0] as usize;
    for (forced, expected_finish, expected_delta) in [
        (end_of_turn, FinishReason::Stop, format!("\n{opening}")),
        (
            letter,
            FinishReason::Length,
            format!("<|im_end|>\n{opening}"),
        ),
    ] {
        let (model, _) = models(&chat, 21);
        let engine = engine(model, 0);
        force_token(&engine.handle(), forced);
        let mut policy = EmbeddedPolicy::new(
            engine.handle(),
            chat.clone(),
            SamplingParams::greedy(),
            EpisodeSeed::new(0, "t", 0),
            "tiny",
        );
        let (_, first, delta, _) = two_turns(&mut policy);
        assert_eq!(first.finish, expected_finish, "{first:?}");
        assert_eq!(chat.decode(&delta, false).unwrap(), expected_delta);
        engine.shutdown();
    }
}

#[test]
fn http_policy_round_trips_ids_and_logprobs_exactly() {
    let chat = chat();
    let (model, reference) = models(&chat, 16);
    let engine = engine(model, 0);
    let server = serve(&engine, &chat);
    let backend = Arc::new(HttpBackend::new(http_config(vec![server.url()])).unwrap());
    let seed = EpisodeSeed::new(9, "task-b", 2);
    let mut http = HttpPolicy::new(backend, chat.clone(), seed.clone());
    let (prompt, first, delta, second) = two_turns(&mut http);
    // The ids the server sampled are what the engine samples for that seed.
    let direct = engine.handle().generate(GenerateJob {
        max_new_tokens: 5,
        ..job(
            &prompt,
            seed.for_turn(0),
            SamplingParams::rollout_default(),
            &chat,
        )
    });
    assert_eq!(direct.unwrap().tokens, first.token_ids);
    // Log-probs match a full forward of the model.
    assert_close(
        &first.logprobs,
        &recompute_logprobs(&reference, &prompt, &first.token_ids),
        1e-4,
    );
    let context: Vec<u32> = prompt
        .iter()
        .chain(&first.token_ids)
        .chain(&delta)
        .copied()
        .collect();
    assert_close(
        &second.logprobs,
        &recompute_logprobs(&reference, &context, &second.token_ids),
        1e-4,
    );
    // The HTTP and embedded backends agree turn for turn.
    let mut embedded = EmbeddedPolicy::new(
        engine.handle(),
        chat.clone(),
        SamplingParams::rollout_default(),
        seed,
        "tiny",
    );
    let (e_prompt, e_first, e_delta, e_second) = two_turns(&mut embedded);
    assert_eq!(
        (e_prompt, e_first.token_ids, e_delta, e_second.token_ids),
        (prompt, first.token_ids, delta, second.token_ids)
    );
    drop(server);
    engine.shutdown();
}

#[test]
fn sixty_four_concurrent_http_clients_succeed_and_are_batched() {
    let chat = chat();
    let (model, _) = models(&chat, 17);
    let engine = engine(model, 5);
    let server = serve(&engine, &chat);
    let mut config = http_config(vec![server.url()]);
    config.max_concurrency = 64;
    let backend = Arc::new(HttpBackend::new(config).unwrap());
    let before = engine.handle().stats();
    let results = concurrently(64, |i| {
        let mut p = HttpPolicy::new(
            backend.clone(),
            chat.clone(),
            EpisodeSeed::new(1, "t", i as u64),
        );
        let prompt = p.prompt(SYSTEM, "go")?;
        p.generate(&prompt, 4)
    });
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let after = engine.handle().stats();
    assert_eq!(after.requests - before.requests, 64);
    assert!(
        after.batches - before.batches < 64,
        "64 concurrent requests ran in {} batches",
        after.batches - before.batches
    );
    drop(server);
    engine.shutdown();
}

/// A stub server that answers the first `fail` requests with `status`, then a valid
/// completion; it counts requests and the most in flight at once.
#[derive(Default)]
struct Stub {
    fail: usize,
    status: u16,
    delay_ms: u64,
    seen: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

async fn stub_completion(State(stub): State<Arc<Stub>>) -> (StatusCode, Json<Value>) {
    let n = stub.seen.fetch_add(1, Ordering::SeqCst);
    let now = stub.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stub.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(stub.delay_ms)).await;
    stub.in_flight.fetch_sub(1, Ordering::SeqCst);
    if n < stub.fail {
        let status = StatusCode::from_u16(stub.status).unwrap();
        return (
            status,
            Json(json!({"error": {"message": "injected failure"}})),
        );
    }
    let body = json!({"choices": [{"text": "", "finish_reason": "length", "logprobs": {
        "tokens": ["token_id:5", "token_id:6"], "token_logprobs": [-0.25, -1.5]}}]});
    (StatusCode::OK, Json(body))
}

fn stub_server(stub: Stub) -> (Arc<Stub>, RunningServer) {
    let stub = Arc::new(stub);
    let router = Router::new()
        .route("/v1/completions", post(stub_completion))
        .with_state(stub.clone());
    (stub.clone(), server::spawn(router, loopback(), 2).unwrap())
}

#[test]
fn transient_failures_are_retried_then_succeed() {
    let (stub, server) = stub_server(Stub {
        fail: 2,
        status: 503,
        ..Stub::default()
    });
    let backend = HttpBackend::new(http_config(vec![server.url()])).unwrap();
    let done = backend.complete(&[1, 2, 3], 2, 0, &[]).unwrap();
    assert_eq!(
        (done.tokens, done.logprobs),
        (vec![5, 6], vec![-0.25, -1.5])
    );
    assert_eq!(stub.seen.load(Ordering::SeqCst), 3);
}

#[test]
fn exhausted_retries_are_a_policy_failure() {
    let (stub, server) = stub_server(Stub {
        fail: usize::MAX,
        status: 503,
        ..Stub::default()
    });
    let backend = HttpBackend::new(http_config(vec![server.url()])).unwrap();
    let err = backend.complete(&[1], 2, 0, &[]).unwrap_err().to_string();
    assert!(
        err.contains("failed 3 times") && err.contains("503"),
        "{err}"
    );
    assert_eq!(stub.seen.load(Ordering::SeqCst), 3);
    // Through the Policy trait it is a PolicyFailure (the scaffold records policy_error).
    let mut policy = HttpPolicy::new(Arc::new(backend), chat(), EpisodeSeed::new(0, "t", 0));
    let prompt = policy.prompt(SYSTEM, "x").unwrap();
    assert!(policy.generate(&prompt, 2).is_err());
}

#[test]
fn rejected_requests_are_not_retried() {
    let (stub, server) = stub_server(Stub {
        fail: usize::MAX,
        status: 400,
        ..Stub::default()
    });
    let backend = HttpBackend::new(http_config(vec![server.url()])).unwrap();
    let err = backend.complete(&[1], 2, 0, &[]).unwrap_err().to_string();
    assert!(err.contains("rejected") && err.contains("400"), "{err}");
    assert_eq!(stub.seen.load(Ordering::SeqCst), 1);
}

#[test]
fn a_dead_endpoint_fails_over_to_a_live_one() {
    let dead = {
        let listener = std::net::TcpListener::bind(loopback()).unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }; // the listener is closed here: connections are refused
    let (stub, server) = stub_server(Stub::default());
    let backend = HttpBackend::new(http_config(vec![dead.clone(), server.url()])).unwrap();
    for seed in 0..4 {
        backend.complete(&[1], 2, seed, &[]).unwrap();
    }
    assert_eq!(stub.seen.load(Ordering::SeqCst), 4);
    let only_dead = HttpBackend::new(http_config(vec![dead])).unwrap();
    let err = only_dead.complete(&[1], 2, 0, &[]).unwrap_err().to_string();
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn concurrency_limit_is_honoured() {
    let (stub, server) = stub_server(Stub {
        delay_ms: 20,
        ..Stub::default()
    });
    let mut config = http_config(vec![server.url()]);
    config.max_concurrency = 4;
    let backend = HttpBackend::new(config).unwrap();
    let results = concurrently(16, |i| backend.complete(&[1], 2, i as u64, &[]));
    assert!(results.iter().all(Result::is_ok));
    let max = stub.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&max),
        "{max} requests were in flight with a limit of 4"
    );
}

fn post_json(url: &str, body: Value) -> (u16, Value) {
    let response = reqwest::blocking::Client::new()
        .post(url)
        .json(&body)
        .send()
        .unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

#[test]
fn server_speaks_the_openai_protocol() {
    let chat = chat();
    let (model, _) = models(&chat, 18);
    let engine = engine(model, 0);
    let server = serve(&engine, &chat);
    let url = server.url();
    let get = |path: &str| {
        reqwest::blocking::get(format!("{url}{path}"))
            .unwrap()
            .json::<Value>()
            .unwrap()
    };
    assert_eq!(get("/health")["status"], "ok");
    assert_eq!(get("/v1/models")["data"][0]["id"], "tiny");

    let (status, body) = post_json(
        &format!("{url}/v1/completions"),
        json!({
        "model": "tiny", "prompt": "def f():", "max_tokens": 3, "logprobs": 1, "seed": 4,
        "temperature": 1.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0,
        "return_tokens_as_token_ids": true, "return_token_ids": true, "ignore_eos": true}),
    );
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "length");
    let ids: Vec<u64> = choice["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let strings: Vec<String> = ids.iter().map(|id| format!("token_id:{id}")).collect();
    assert_eq!(choice["logprobs"]["tokens"], json!(strings));
    assert_eq!(
        choice["logprobs"]["token_logprobs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(body["usage"]["completion_tokens"], 3);

    let (status, body) = post_json(
        &format!("{url}/v1/chat/completions"),
        json!({
        "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "logprobs": true}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    let n = body["usage"]["completion_tokens"].as_u64().unwrap() as usize;
    assert_eq!(
        body["choices"][0]["logprobs"]["content"]
            .as_array()
            .unwrap()
            .len(),
        n
    );

    for (bad, needle) in [
        (json!({"prompt": [1], "top_k": -5}), "top_k"),
        (json!({"prompt": [1], "n": 2}), "n and best_of"),
        (
            json!({"prompt": [1], "repetition_penalty": 1.2}),
            "repetition_penalty",
        ),
        (json!({"prompt": [], "max_tokens": 2}), "prompt"),
        (json!({"prompt": [1], "max_tokens": 5000}), "positions"),
        (json!({"max_tokens": 2}), "prompt"),
    ] {
        let (status, body) = post_json(&format!("{url}/v1/completions"), bad.clone());
        assert_eq!(status, 400, "{bad} -> {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{bad} -> {message}");
    }
    let (status, _) = post_json(
        &format!("{url}/v1/completions"),
        json!({"prompt": [1], "model": "other"}),
    );
    assert_eq!(status, 404);
    drop(server);
    engine.shutdown();
}

/// Issue 16: `tools` were silently dropped from chat requests (the prompt differed from what
/// transformers renders with the same tools). They are rendered by the chat template now,
/// and a field the server does not implement is a 400 naming it, never ignored.
#[test]
fn server_renders_tools_and_refuses_fields_it_does_not_implement() {
    let chat = chat();
    let (model, _) = models(&chat, 21);
    let engine = engine(model, 0);
    let server = serve(&engine, &chat);
    let url = format!("{}/v1/chat/completions", server.url());
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather of a city", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let messages = json!([{"role": "user", "content": "weather in Oslo?"}]);
    let prompt_tokens = |body: Value| -> u64 {
        let (status, reply) = post_json(&url, body);
        assert_eq!(status, 200, "{reply}");
        reply["usage"]["prompt_tokens"].as_u64().unwrap()
    };
    let plain = prompt_tokens(json!({"messages": messages, "max_tokens": 1}));
    let with_tools = prompt_tokens(
        json!({"messages": messages, "max_tokens": 1, "tools": tools, "tool_choice": "none"}),
    );
    let parsed: Vec<swerl_model::chat::Message> = serde_json::from_value(messages.clone()).unwrap();
    let want = chat
        .prompt_ids_with(
            &parsed,
            Some(tools.as_array().unwrap()),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(
        with_tools,
        want.len() as u64,
        "the template's rendering with tools"
    );
    assert!(
        with_tools > plain,
        "tools reach the prompt ({with_tools} vs {plain})"
    );
    for (bad, needle) in [
        (
            json!({"messages": messages, "frobnicate": 1}),
            "`frobnicate`",
        ),
        (
            json!({"messages": messages, "tools": tools, "tool_choice": "auto"}),
            "tool_choice",
        ),
        (
            json!({"messages": messages, "include_stop_str_in_output": false}),
            "include_stop",
        ),
    ] {
        let (status, reply) = post_json(&url, bad.clone());
        assert_eq!(status, 400, "{bad} -> {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{bad} -> {message}");
    }
    let (status, reply) = post_json(
        &format!("{}/v1/completions", server.url()),
        json!({"prompt": [1], "max_tokens": 1, "suffix": "x"}),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`suffix`"));
    drop(server);
    engine.shutdown();
}

#[test]
fn serves_a_model_directory() {
    let chat = chat();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_random_model(chat.tokenizer().vocab_size(), 19);
    swerl_model::weights::save_model(&model, dir.path(), u64::MAX).unwrap();
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tokenizer_dir().join(file), dir.path().join(file)).unwrap();
    }
    let (engine, state) = server::load_model_dir(
        dir.path(),
        tch::Device::Cpu,
        EngineConfig::default(),
        Some("dir-model".into()),
        0,
    )
    .unwrap();
    let server = server::spawn(server::router(state), loopback(), 1).unwrap();
    let (status, body) = post_json(
        &format!("{}/v1/completions", server.url()),
        json!({"prompt": [1, 2], "max_tokens": 2}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "dir-model");
    drop(server);
    engine.shutdown();
}

/// Real Qwen2.5 pads its embedding matrix beyond the tokenizer (151936 rows, 151665
/// tokens). A model directory like that must never sample an id the tokenizer cannot
/// decode, even when a padded id has by far the highest logit.
#[test]
fn a_padded_vocabulary_never_samples_undecodable_ids() {
    let chat = chat();
    let tokens = chat.tokenizer().vocab_size();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_random_model(tokens + 64, 21);
    swerl_model::weights::save_model(&model, dir.path(), u64::MAX).unwrap();
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tokenizer_dir().join(file), dir.path().join(file)).unwrap();
    }
    let (engine, state) = server::load_model_dir(
        dir.path(),
        tch::Device::Cpu,
        EngineConfig::default(),
        None,
        0,
    )
    .unwrap();
    force_token(&state.engine, tokens + 3);
    for sampling in [SamplingParams::greedy(), SamplingParams::rollout_default()] {
        let mut request = job(&[1, 2, 3], 5, sampling, &chat);
        request.max_new_tokens = 8;
        let out = state.engine.generate(request).unwrap();
        assert!(
            out.tokens.iter().all(|&t| (t as usize) < tokens),
            "{:?} (tokenizer has {tokens} ids)",
            out.tokens
        );
        chat.decode(&out.tokens, false).unwrap();
    }
    engine.shutdown();
}

#[test]
fn bench_runs_concurrent_clients_without_failures() {
    let chat = chat();
    let (model, _) = models(&chat, 20);
    let engine = engine(model, 0);
    let state = Arc::new(ServerState::new(engine.handle(), chat, "tiny", 0));
    let config = BenchConfig {
        clients: 8,
        requests_per_client: 2,
        prompt_tokens: 8,
        max_tokens: 2,
        ..BenchConfig::default()
    };
    let report = run_http_bench(state, &config).unwrap();
    assert_eq!((report.requests, report.failures), (16, 0), "{report:?}");
    assert!(report.latency_p50_ms <= report.latency_p99_ms);
    engine.shutdown();
}

#[test]
fn a_stopped_engine_is_a_503_and_then_a_policy_failure() {
    let chat = chat();
    let (model, _) = models(&chat, 22);
    let engine = engine(model, 0);
    let server = serve(&engine, &chat);
    engine.shutdown();
    let (status, body) = post_json(
        &format!("{}/v1/completions", server.url()),
        json!({"prompt": [1], "max_tokens": 1}),
    );
    assert_eq!(status, 503, "{body}");
    let backend = Arc::new(HttpBackend::new(http_config(vec![server.url()])).unwrap());
    let mut policy = HttpPolicy::new(backend, chat, EpisodeSeed::new(0, "t", 0));
    let prompt = policy.prompt(SYSTEM, "x").unwrap();
    let err = policy.generate(&prompt, 2).unwrap_err().to_string();
    assert!(
        err.contains("failed 3 times") && err.contains("stopped"),
        "{err}"
    );
}

fn reload_config() -> ReloadConfig {
    ReloadConfig {
        timeout: Duration::from_secs(60),
        max_retries: 2,
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..ReloadConfig::default()
    }
}

/// The HTTP weight sync against a real `swerl serve` router: after the reload the server's
/// log-probs are those of the checkpoint on disk, on every server; a directory that does not
/// fit is refused without retries, names the server, and leaves the old weights serving.
#[test]
fn servers_reload_weights_from_disk_and_refuse_bad_checkpoints() {
    let chat = chat();
    let (old, old_copy) = models(&chat, 22);
    let (new, new_copy) = models(&chat, 23);
    let dir = tempfile::tempdir().unwrap();
    let new_dir = dir.path().join("new");
    swerl_model::weights::save_model(&new, &new_dir, u64::MAX).unwrap();
    let engines: Vec<Engine> = vec![engine(old, 0), {
        let (m, _) = models(&chat, 22);
        engine(m, 0)
    }];
    let servers: Vec<RunningServer> = engines.iter().map(|e| serve(e, &chat)).collect();
    let urls: Vec<String> = servers.iter().map(RunningServer::url).collect();
    let prompt = prompts(&chat, 1).remove(0);
    let logprobs_match = |handle: &EngineHandle, model: &Qwen2| {
        let out = handle
            .generate(job(&prompt, 9, SamplingParams::rollout_default(), &chat))
            .unwrap();
        let expected = recompute_logprobs(model, &prompt, &out.tokens);
        out.logprobs
            .iter()
            .zip(&expected)
            .all(|(a, b)| (a - b).abs() <= 1e-4)
    };
    assert!(logprobs_match(&engines[0].handle(), &old_copy));

    let reloader = Reloader::new(urls.clone(), reload_config()).unwrap();
    reloader.reload(&new_dir).unwrap();
    for e in &engines {
        assert!(
            logprobs_match(&e.handle(), &new_copy),
            "the server serves the new weights"
        );
        assert!(!logprobs_match(&e.handle(), &old_copy));
        assert_eq!(e.handle().stats().weight_version, 1);
    }

    // A checkpoint of another shape: refused at once (400), named, nothing changed.
    let other_dir = dir.path().join("other");
    let other = tiny_random_model(chat.tokenizer().vocab_size() + 8, 24);
    swerl_model::weights::save_model(&other, &other_dir, u64::MAX).unwrap();
    let err = reloader.reload(&other_dir).unwrap_err().to_string();
    assert!(
        err.contains("failed on 2 of 2")
            && err.contains(&format!("{}/update_weights_from_disk", urls[0]))
            && err.contains("400")
            && err.contains("shape"),
        "{err}"
    );
    assert!(!err.contains("retries"), "a refusal is not retried: {err}");
    for e in &engines {
        assert!(
            logprobs_match(&e.handle(), &new_copy),
            "the old weights keep serving"
        );
        assert_eq!(e.handle().stats().weight_version, 1);
    }

    // A server that is down: retried, then named with the attempts.
    let dead = {
        let listener = std::net::TcpListener::bind(loopback()).unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let err = Reloader::new(vec![urls[0].clone(), dead.clone()], reload_config())
        .unwrap()
        .reload(&new_dir)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("failed on 1 of 2") && err.contains(&dead) && err.contains("failed 3 times"),
        "{err}"
    );
    drop(servers);
    engines.into_iter().for_each(Engine::shutdown);
}

async fn flaky_reload(State(stub): State<Arc<Stub>>, body: String) -> (StatusCode, Json<Value>) {
    let n = stub.seen.fetch_add(1, Ordering::SeqCst);
    if n < stub.fail {
        return (
            StatusCode::from_u16(stub.status).unwrap(),
            Json(json!({"error": "busy"})),
        );
    }
    let body: Value = serde_json::from_str(&body).unwrap();
    (StatusCode::OK, Json(json!({"ok": true, "got": body})))
}

/// A configurable call (here a vLLM-style custom route) is retried on 503 and its `{path}`
/// is substituted in the JSON body.
#[test]
fn custom_reload_calls_are_retried_on_transient_errors() {
    let stub = Arc::new(Stub {
        fail: 2,
        status: 503,
        ..Stub::default()
    });
    let router = Router::new()
        .route("/custom/reload", post(flaky_reload))
        .with_state(stub.clone());
    let server = server::spawn(router, loopback(), 1).unwrap();
    let config = ReloadConfig {
        call: ReloadCall::parse(r#"POST /custom/reload {"dir": "{path}", "flush": true}"#).unwrap(),
        ..reload_config()
    };
    Reloader::new(vec![format!("{}/v1", server.url())], config)
        .unwrap()
        .reload(std::path::Path::new("/ckpt/iter-1/model"))
        .unwrap();
    assert_eq!(stub.seen.load(Ordering::SeqCst), 3);
}
