//! An OpenAI-compatible HTTP server over the embedded engine (`swerl serve`): other
//! scaffolds can sample from our models, and the HTTP backend is tested against a real
//! server.
//!
//! Endpoints: `POST /v1/completions` (prompt as text or token ids), `POST
//! /v1/chat/completions` (messages rendered with the model's chat template), `GET /v1/models`,
//! `GET /health`, `POST /update_weights_from_disk` (SGLang's call, `{"model_path": DIR}`:
//! the trainer's weight sync; the engine switches between batches), and vLLM's LoRA routes
//! `POST /v1/load_lora_adapter` (`{"lora_name", "lora_path", "load_inplace"}`: a PEFT
//! adapter directory, then served under `lora_name` as a `model` of its own) and
//! `POST /v1/unload_lora_adapter` (`{"lora_name"}`). Log-probs are of the sampled tokens under the full distribution at the
//! request's temperature; with `return_tokens_as_token_ids` each token is `"token_id:N"`
//! (vLLM's convention), so clients never re-tokenise.

pub mod api;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use swerl_model::chat::ChatTokenizer;
use swerl_model::generate::FinishReason;

use crate::engine::{EngineError, EngineHandle, GenerateJob};
use api::{ApiError, Checked, Prompt, Sampled};

/// Default `max_tokens` of a completion when the request gives none (OpenAI's default).
pub const DEFAULT_COMPLETION_TOKENS: usize = 16;

/// Largest request body accepted (64 MiB).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// What the handlers share.
#[derive(Debug)]
pub struct ServerState {
    pub engine: EngineHandle,
    pub chat: Arc<ChatTokenizer>,
    /// The name clients pass as `model`.
    pub model_name: String,
    /// Seeds requests that bring none: a server-wide stream, so they differ per request.
    pub seed: u64,
    requests: AtomicU64,
    /// Names of the LoRA adapters loaded into the engine, in load order.
    adapters: std::sync::Mutex<Vec<String>>,
}

impl ServerState {
    /// State serving `engine` as `model_name`.
    pub fn new(
        engine: EngineHandle,
        chat: Arc<ChatTokenizer>,
        model_name: impl Into<String>,
        seed: u64,
    ) -> Self {
        ServerState {
            engine,
            chat,
            model_name: model_name.into(),
            seed,
            requests: AtomicU64::new(0),
            adapters: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The names of the loaded LoRA adapters.
    pub fn adapters(&self) -> Vec<String> {
        self.adapters.lock().expect("adapter list lock").clone()
    }

    fn next_id(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed)
    }
}

/// The routes over `state`.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/update_weights_from_disk", post(update_weights_from_disk))
        .route("/v1/load_lora_adapter", post(load_lora_adapter))
        .route("/v1/unload_lora_adapter", post(unload_lora_adapter))
        // axum's default 2 MB limit is below a long-context token-id prompt in JSON
        // (131k ids are about 1 MB, a text prompt of that length more).
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body())).into_response()
    }
}

async fn health(State(state): State<Arc<ServerState>>) -> Json<Value> {
    Json(json!({"status": "ok", "engine": state.engine.stats()}))
}

/// SGLang's `POST /update_weights_from_disk`: loads the weights of the Hugging Face model
/// directory `model_path` (same architecture) into the engine between batches. A directory
/// that does not fit is refused with 400 and the old weights keep serving.
async fn update_weights_from_disk(State(state): State<Arc<ServerState>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Request {
        model_path: String,
    }
    let answer = |status: StatusCode, success: bool, message: String| {
        let version = state.engine.stats().weight_version;
        let body = json!({"success": success, "message": message, "weight_version": version});
        (status, Json(body)).into_response()
    };
    let request: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let message = format!("expected a JSON body {{\"model_path\": DIR}}: {e}");
            return answer(StatusCode::BAD_REQUEST, false, message);
        }
    };
    let engine = state.engine.clone();
    let dir = std::path::PathBuf::from(&request.model_path);
    let result = tokio::task::spawn_blocking(move || engine.load_weights_from_dir(dir)).await;
    match result {
        Ok(Ok(())) => {
            tracing::info!(path = %request.model_path, "weights reloaded");
            let message = format!("loaded the weights of {}", request.model_path);
            answer(StatusCode::OK, true, message)
        }
        Ok(Err(EngineError::Stopped)) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            false,
            EngineError::Stopped.to_string(),
        ),
        Ok(Err(e)) => answer(StatusCode::BAD_REQUEST, false, e.to_string()),
        Err(e) => answer(StatusCode::INTERNAL_SERVER_ERROR, false, e.to_string()),
    }
}

/// vLLM's `POST /v1/load_lora_adapter`: loads the PEFT adapter directory `lora_path` under
/// `lora_name` (replacing one of that name only with `load_inplace: true`, as vLLM does).
/// Requests whose `model` is `lora_name` then sample with it. An adapter that does not fit
/// the model is refused with 400 and nothing changes.
async fn load_lora_adapter(State(state): State<Arc<ServerState>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Request {
        lora_name: String,
        lora_path: String,
        #[serde(default)]
        load_inplace: bool,
    }
    let request: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let message =
                format!("expected a JSON body {{\"lora_name\": NAME, \"lora_path\": DIR}}: {e}");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let name = request.lora_name.clone();
    if name == state.model_name {
        let message = format!("`{name}` is the base model's name; choose another lora_name");
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    if state.adapters().contains(&name) && !request.load_inplace {
        let message = format!(
            "The lora adapter '{name}' has already been loaded; send load_inplace: true to replace it"
        );
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    let engine = state.engine.clone();
    let dir = std::path::PathBuf::from(&request.lora_path);
    let result = tokio::task::spawn_blocking(move || engine.load_adapter(name, dir)).await;
    match result {
        Ok(Ok(())) => {
            let mut names = state.adapters.lock().expect("adapter list lock");
            if !names.contains(&request.lora_name) {
                names.push(request.lora_name.clone());
            }
            tracing::info!(name = %request.lora_name, path = %request.lora_path, "LoRA adapter loaded");
            let message = format!(
                "Success: LoRA adapter '{}' added successfully.",
                request.lora_name
            );
            (StatusCode::OK, message).into_response()
        }
        Ok(Err(EngineError::Stopped)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Stopped.to_string(),
        )
            .into_response(),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// vLLM's `POST /v1/unload_lora_adapter {"lora_name": NAME}`.
async fn unload_lora_adapter(State(state): State<Arc<ServerState>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Request {
        lora_name: String,
    }
    let request: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let message = format!("expected a JSON body {{\"lora_name\": NAME}}: {e}");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let engine = state.engine.clone();
    let name = request.lora_name.clone();
    let result = tokio::task::spawn_blocking(move || engine.unload_adapter(name)).await;
    match result {
        Ok(Ok(())) => {
            state
                .adapters
                .lock()
                .expect("adapter list lock")
                .retain(|n| *n != request.lora_name);
            let message = format!(
                "Success: LoRA adapter '{}' removed successfully.",
                request.lora_name
            );
            (StatusCode::OK, message).into_response()
        }
        Ok(Err(e @ EngineError::Stopped)) => {
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
        Ok(Err(e)) => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn models(State(state): State<Arc<ServerState>>) -> Json<Value> {
    let max_model_len = state.engine.info().max_positions;
    let base = json!({
        "id": state.model_name,
        "object": "model",
        "created": 0,
        "owned_by": "swerl",
        "max_model_len": max_model_len,
    });
    // LoRA adapters are listed as models of their own with the base as parent (vLLM's form).
    let adapters = state.adapters().into_iter().map(|name| {
        json!({
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "swerl",
            "parent": state.model_name,
            "max_model_len": max_model_len,
        })
    });
    let data: Vec<Value> = std::iter::once(base).chain(adapters).collect();
    Json(json!({"object": "list", "data": data}))
}

async fn completions(
    State(state): State<Arc<ServerState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: api::CompletionRequest = api::parse(&body)?;
    api::refuse_unknown(&request.unknown)?;
    let checked = request.common.check(&state.model_name, &state.adapters())?;
    if request.echo == Some(true) {
        return Err(ApiError::bad("echo is not supported; send echo: false"));
    }
    let want_logprobs = match request.logprobs {
        None => false,
        Some(0 | 1) => true,
        Some(n) => {
            return Err(ApiError::bad(format!(
                "logprobs is {n}; only the sampled token's log-prob is available (0 or 1)"
            )))
        }
    };
    let ids = match api::prompt(&request.prompt)? {
        Prompt::Ids(ids) => ids,
        Prompt::Text(text) => state
            .chat
            .tokenizer()
            .encode(&text)
            .map_err(|e| ApiError::bad(e.to_string()))?,
    };
    let sampled = sample(&state, ids, &checked, DEFAULT_COMPLETION_TOKENS).await?;
    let id = state.next_id();
    Ok(Json(json!({
        "id": format!("cmpl-{id}"),
        "object": "text_completion",
        "created": unix_now(),
        "model": checked.adapter.as_deref().unwrap_or(&state.model_name),
        "choices": [api::completion_choice(&sampled, want_logprobs, checked.return_token_ids)],
        "usage": api::usage(&sampled),
    })))
}

async fn chat_completions(
    State(state): State<Arc<ServerState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: api::ChatRequest = api::parse(&body)?;
    api::refuse_unknown(&request.unknown)?;
    request.check_tools()?;
    let mut checked = request.common.check(&state.model_name, &state.adapters())?;
    if request.top_logprobs.unwrap_or(0) > 0 {
        return Err(ApiError::bad(
            "top_logprobs > 0 is not supported; only the sampled token's log-prob is available",
        ));
    }
    // OpenAI's newer name for the limit; `max_tokens` wins when both are given.
    match (checked.max_tokens, request.max_completion_tokens) {
        (None, Some(n)) if n >= 1 => checked.max_tokens = Some(n as usize),
        (None, Some(n)) => {
            return Err(ApiError::bad(format!(
                "max_completion_tokens is {n}; expected at least 1"
            )))
        }
        _ => {}
    }
    let ids = state
        .chat
        .prompt_ids_with(
            &request.messages,
            request.tools.as_deref(),
            &request.chat_template_kwargs.unwrap_or_default(),
        )
        .map_err(|e| ApiError::bad(e.to_string()))?;
    // Like vLLM, a chat completion without a limit may use the rest of the context.
    let room = state.engine.info().max_positions.saturating_sub(ids.len());
    let sampled = sample(&state, ids, &checked, room).await?;
    let id = state.next_id();
    Ok(Json(json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": unix_now(),
        "model": checked.adapter.as_deref().unwrap_or(&state.model_name),
        "choices": [api::chat_choice(&sampled, request.logprobs.unwrap_or(false), checked.return_token_ids)],
        "usage": api::usage(&sampled),
    })))
}

/// Runs one request through the engine and decodes the result.
async fn sample(
    state: &ServerState,
    prompt: Vec<u32>,
    checked: &Checked,
    default_max: usize,
) -> Result<Sampled, ApiError> {
    let prompt_tokens = prompt.len();
    let job = job(state, prompt, checked, default_max);
    let (tx, rx) = tokio::sync::oneshot::channel();
    state.engine.submit(job, move |result| {
        let _ = tx.send(result);
    });
    let out = rx
        .await
        .unwrap_or(Err(EngineError::Stopped))
        .map_err(engine_error)?;
    let decode = |ids: &[u32], skip| {
        state.chat.decode(ids, skip).map_err(|e| ApiError {
            status: 500,
            message: e.to_string(),
        })
    };
    let token_strings = if checked.tokens_as_ids {
        out.tokens
            .iter()
            .map(|id| format!("token_id:{id}"))
            .collect()
    } else {
        out.tokens
            .iter()
            .map(|&id| decode(&[id], false))
            .collect::<Result<_, _>>()?
    };
    Ok(Sampled {
        text: decode(&out.tokens, checked.skip_special_tokens)?,
        finish_reason: match out.finish {
            FinishReason::Length => "length",
            FinishReason::StopToken | FinishReason::StopCallback => "stop",
        },
        tokens: out.tokens,
        logprobs: out.logprobs,
        token_strings,
        prompt_tokens,
    })
}

fn job(
    state: &ServerState,
    prompt: Vec<u32>,
    checked: &Checked,
    default_max: usize,
) -> GenerateJob {
    let mut stop_token_ids = checked.stop_token_ids.clone();
    if !checked.ignore_eos {
        stop_token_ids.extend(
            state
                .chat
                .stop_ids()
                .iter()
                .filter(|id| !checked.stop_token_ids.contains(id)),
        );
    }
    GenerateJob {
        prompt,
        seed: checked
            .seed
            .unwrap_or_else(|| crate::seed::mix(state.seed ^ state.next_id())),
        max_new_tokens: checked.max_tokens.unwrap_or(default_max),
        sampling: checked.sampling.clone(),
        stop_token_ids,
        adapter: checked.adapter.clone(),
    }
}

fn engine_error(e: EngineError) -> ApiError {
    let status = match e {
        EngineError::Invalid(_) => 400,
        EngineError::Stopped => 503,
        EngineError::Failed(_) => 500,
    };
    ApiError {
        status,
        message: e.to_string(),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A server running on its own thread and tokio runtime; stopped (gracefully) on drop.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `router` on `addr` (port 0 = any free port) from a background thread with a
/// tokio runtime of `workers` threads. For tests, benchmarks and embedding.
pub fn spawn(router: Router, addr: SocketAddr, workers: usize) -> std::io::Result<RunningServer> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("swerl-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let stop = async move {
                    let _ = rx.await;
                };
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!("server on {addr} failed: {e}");
                }
            });
        })?;
    Ok(RunningServer {
        addr,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

/// Serves `router` on `listener` until `shutdown` resolves (used by `swerl serve`).
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A model directory the server cannot load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot load the model weights from {dir}: {source}")]
    Weights {
        dir: String,
        source: swerl_model::weights::WeightsError,
    },
    #[error("cannot load the tokenizer and chat template from {dir}: {source}")]
    Chat {
        dir: String,
        source: swerl_model::chat::ChatError,
    },
    #[error("{dir}: the tokenizer has {tokenizer} tokens but the model only {model}; they do not belong together")]
    Vocab {
        dir: String,
        tokenizer: usize,
        model: usize,
    },
}

/// Loads a Hugging Face model directory (config, safetensors, tokenizer, chat template),
/// starts an engine on `device` and returns it with the server state; the served model name
/// is the directory's last component unless `name` is given. When the checkpoint's
/// vocabulary is padded beyond the tokenizer's (real Qwen2.5), the engine samples only ids
/// the tokenizer can decode.
pub fn load_model_dir(
    dir: &std::path::Path,
    device: tch::Device,
    engine: crate::engine::EngineConfig,
    name: Option<String>,
    seed: u64,
) -> Result<(crate::engine::Engine, Arc<ServerState>), LoadError> {
    let shown = dir.display().to_string();
    let chat = ChatTokenizer::from_dir(dir).map_err(|source| LoadError::Chat {
        dir: shown.clone(),
        source,
    })?;
    let model = swerl_model::weights::load_model(dir, device, None).map_err(|source| {
        LoadError::Weights {
            dir: shown.clone(),
            source,
        }
    })?;
    let name = name.unwrap_or_else(|| {
        dir.file_name()
            .map_or("model".into(), |n| n.to_string_lossy().into_owned())
    });
    start_engine(model, chat, &shown, name, engine, seed)
}

/// Starts an engine over `model` (loaded from, or sharing the weights of, the model in
/// `dir`) with its tokenizer and chat template `chat`, served as `name`; see
/// [`load_model_dir`].
pub fn start_engine(
    model: swerl_model::qwen2::Qwen2,
    chat: ChatTokenizer,
    dir: &str,
    name: String,
    engine: crate::engine::EngineConfig,
    seed: u64,
) -> Result<(crate::engine::Engine, Arc<ServerState>), LoadError> {
    let (tokenizer, vocab) = (chat.tokenizer().vocab_size(), model.config.vocab_size);
    if tokenizer > vocab {
        return Err(LoadError::Vocab {
            dir: dir.to_string(),
            tokenizer,
            model: vocab,
        });
    }
    let engine = crate::engine::EngineConfig {
        sample_vocab: (tokenizer < vocab).then_some(tokenizer),
        ..engine
    };
    let engine = crate::engine::Engine::start(model, engine);
    let state = Arc::new(ServerState::new(
        engine.handle(),
        Arc::new(chat),
        name,
        seed,
    ));
    Ok((engine, state))
}

/// Serves `router` on `addr` until Ctrl-C (SIGINT), on a tokio runtime of `workers`
/// threads; `on_ready` gets the bound address (port 0 picks a free one). For `swerl serve`.
pub fn run_until_ctrl_c(
    router: Router,
    addr: SocketAddr,
    workers: usize,
    on_ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        on_ready(listener.local_addr()?);
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve_until(listener, router, stop).await
    })
}
