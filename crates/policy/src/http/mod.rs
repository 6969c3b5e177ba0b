//! [`HttpPolicy`]: `swerl_agent::Policy` over OpenAI-compatible `/v1/completions` servers
//! (vLLM, SGLang, `swerl serve`), token ids in and token ids plus log-probs out.
//!
//! The prompt is sent as a list of ids and the sampled ids come back verbatim, so the
//! context is never re-tokenised; deltas are computed locally with the same
//! [`ChatTokenizer`] as the embedded backend. A transient failure (connection refused,
//! timeout, 5xx, 429) is retried with backoff on another endpoint if there is one; a failure
//! after the retries, or a request the server rejects (4xx), is a [`PolicyFailure`], which
//! ends the episode as `policy_error`: never a reward.

pub mod reload;
mod transport;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use swerl_agent::{Generation, Policy, PolicyFailure};
use swerl_model::chat::ChatTokenizer;
use swerl_model::sampling::SamplingParams;

use transport::Endpoints;
pub use transport::{completions_url, Backoff, Balance, Semaphore};
use wire::{excerpt, parse_response, request_body, Completion, CompletionCall};

use crate::conversation::Conversation;
use crate::seed::EpisodeSeed;

/// Settings of the HTTP backend.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Base URLs, e.g. `http://127.0.0.1:8000` (a trailing `/v1` is fine).
    pub endpoints: Vec<String>,
    /// The `model` field of each request (vLLM's served model name).
    pub model: String,
    pub sampling: SamplingParams,
    /// Whole-request timeout (connect + generate + read).
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Most requests in flight from this backend, over all endpoints.
    pub max_concurrency: usize,
    pub balance: Balance,
    /// Sent as `Authorization: Bearer ...` when set.
    pub api_key: Option<String>,
}

impl HttpConfig {
    /// Rollout defaults: temperature 1 without truncation, 10 minute timeout, 5 retries
    /// from 0.5 s up to 30 s, 256 requests in flight, least-in-flight balancing.
    pub fn new(endpoints: Vec<String>, model: impl Into<String>) -> Self {
        HttpConfig {
            endpoints,
            model: model.into(),
            sampling: SamplingParams::rollout_default(),
            timeout: Duration::from_secs(600),
            max_retries: 5,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_concurrency: 256,
            balance: Balance::LeastInFlight,
            api_key: None,
        }
    }
}

/// A configuration the backend cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("no endpoints given; pass at least one base URL such as http://127.0.0.1:8000")]
    NoEndpoints,
    #[error("endpoint {0:?} is not an http:// or https:// URL")]
    BadEndpoint(String),
    #[error("invalid sampling parameters: {0}")]
    Sampling(#[from] swerl_model::sampling::SamplingError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// How one attempt failed.
enum Attempt {
    /// Worth retrying (connection, timeout, 5xx, 429).
    Transient(String),
    /// Retrying cannot help (the server rejected the request, or answered nonsense).
    Fatal(String),
}

/// The shared part of the HTTP backend: client, endpoints, concurrency limit. One per run;
/// every episode's [`HttpPolicy`] holds an `Arc` of it.
#[derive(Debug)]
pub struct HttpBackend {
    client: reqwest::blocking::Client,
    config: HttpConfig,
    endpoints: Endpoints,
    permits: Semaphore,
    backoff: Backoff,
}

impl HttpBackend {
    /// Checks the config and builds the client.
    pub fn new(config: HttpConfig) -> Result<Self, HttpError> {
        if config.endpoints.is_empty() {
            return Err(HttpError::NoEndpoints);
        }
        if let Some(bad) = config
            .endpoints
            .iter()
            .find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
        {
            return Err(HttpError::BadEndpoint(bad.clone()));
        }
        config.sampling.validate()?;
        crate::warn_rollout_sampling(&config.sampling);
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .pool_max_idle_per_host(config.max_concurrency)
            .build()
            .map_err(|e| HttpError::Client(e.to_string()))?;
        Ok(HttpBackend {
            endpoints: Endpoints::new(&config.endpoints, config.balance),
            permits: Semaphore::new(config.max_concurrency),
            backoff: Backoff::new(config.backoff_initial, config.backoff_max, 0x5eed),
            client,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// One completion with retries; the error says how many attempts failed and the last cause.
    pub fn complete(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        seed: u64,
        stop_token_ids: &[u32],
    ) -> Result<Completion, PolicyFailure> {
        let call = CompletionCall {
            model: &self.config.model,
            prompt,
            max_tokens,
            sampling: &self.config.sampling,
            seed,
            stop_token_ids,
        };
        let body = request_body(&call);
        let mut avoid = None;
        let mut last = String::new();
        for attempt in 0..=self.config.max_retries {
            if attempt > 0 {
                std::thread::sleep(self.backoff.delay(attempt));
            }
            // The permit is taken before choosing an endpoint, so in-flight counts (and
            // least-in-flight balancing) see only requests actually on the wire.
            let _permit = self.permits.acquire();
            let (index, _in_flight) = self.endpoints.pick(avoid);
            let url = &self.endpoints.get(index).url;
            match self.attempt(url, &body) {
                Ok(completion) => return Ok(completion),
                Err(Attempt::Fatal(message)) => {
                    return Err(PolicyFailure(format!("{url}: {message}")))
                }
                Err(Attempt::Transient(message)) => {
                    tracing::debug!(%url, attempt, %message, "completion failed; retrying");
                    last = format!("{url}: {message}");
                    avoid = Some(index);
                }
            }
        }
        Err(PolicyFailure(format!(
            "completion failed {} times (1 attempt + {} retries); last error: {last}",
            self.config.max_retries + 1,
            self.config.max_retries
        )))
    }

    /// One POST (the caller holds a concurrency permit).
    fn attempt(&self, url: &str, body: &Value) -> Result<Completion, Attempt> {
        let mut request = self.client.post(url).json(body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .map_err(|e| Attempt::Transient(describe_reqwest(&e)))?;
        let status = response.status();
        let text = response
            .text()
            .map_err(|e| Attempt::Transient(describe_reqwest(&e)))?;
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(Attempt::Transient(format!(
                "HTTP {status}: {}",
                first_chars(&text)
            )));
        }
        if !status.is_success() {
            return Err(Attempt::Fatal(format!(
                "the server rejected the request (HTTP {status}): {}",
                first_chars(&text)
            )));
        }
        let json: Value = serde_json::from_str(&text).map_err(|e| {
            Attempt::Fatal(format!(
                "the response is not JSON ({e}): {}",
                first_chars(&text)
            ))
        })?;
        parse_response(&json)
            .map_err(|e| Attempt::Fatal(format!("{e} (response: {})", excerpt(&json))))
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{kind}: {e}")
}

fn first_chars(text: &str) -> String {
    text.chars().take(300).collect()
}

/// One episode's handle to an [`HttpBackend`]. Cheap to clone; `Send`.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    backend: Arc<HttpBackend>,
    conversation: Conversation,
    seed: EpisodeSeed,
    turn: u64,
}

impl HttpPolicy {
    /// A policy for one episode; `chat` must be the served model's tokenizer and template.
    pub fn new(backend: Arc<HttpBackend>, chat: Arc<ChatTokenizer>, seed: EpisodeSeed) -> Self {
        HttpPolicy {
            backend,
            conversation: Conversation::new(chat),
            seed,
            turn: 0,
        }
    }

    /// A fresh handle for another episode.
    pub fn for_episode(&self, seed: EpisodeSeed) -> Self {
        HttpPolicy::new(self.backend.clone(), self.conversation.chat().clone(), seed)
    }
}

impl Policy for HttpPolicy {
    fn prompt(&mut self, system: &str, user: &str) -> Result<Vec<u32>, PolicyFailure> {
        self.turn = 0;
        self.conversation.start(system, user)
    }

    fn generate(
        &mut self,
        context: &[u32],
        max_new_tokens: usize,
    ) -> Result<Generation, PolicyFailure> {
        let seed = self.seed.for_turn(self.turn);
        self.turn += 1;
        let stop = self.conversation.chat().stop_ids().to_vec();
        let completion = self
            .backend
            .complete(context, max_new_tokens, seed, &stop)?;
        if completion.tokens.len() > max_new_tokens {
            return Err(PolicyFailure(format!(
                "the server returned {} tokens for max_tokens {max_new_tokens}",
                completion.tokens.len()
            )));
        }
        self.conversation
            .generation(completion.tokens, completion.logprobs)
    }

    fn observation_delta(
        &mut self,
        context: &[u32],
        last: &Generation,
        observation: &str,
    ) -> Result<Vec<u32>, PolicyFailure> {
        self.conversation
            .observation_delta(context, last, observation)
    }

    fn describe(&self) -> serde_json::Value {
        let c = self.backend.config();
        serde_json::json!({
            "backend": "http",
            "model": c.model,
            "endpoints": c.endpoints,
            "sampling": crate::sampling_json(&c.sampling),
            "seed": {"run_seed": self.seed.run_seed, "task": self.seed.task, "sample": self.seed.sample},
        })
    }
}
