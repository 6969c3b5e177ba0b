//! Weight sync for HTTP policy servers: the trainer writes a Hugging Face-layout checkpoint,
//! then makes one configurable HTTP call per server that loads it from disk.
//!
//! The call is `METHOD /path [JSON body]`; every `{path}` in the path and in the body's
//! strings becomes the checkpoint directory. The default is SGLang's native endpoint,
//! `POST /update_weights_from_disk {"model_path": "{path}"}`, which `swerl serve` implements
//! too. vLLM has no standard load-from-disk endpoint (its RL weight transfer goes over NCCL or
//! CUDA IPC); point the call at whatever route your vLLM deployment adds. The servers must
//! see the checkpoint at the same path as the trainer (a shared filesystem).
//!
//! A server answers success with a 2xx status and, if its body has a `success` field, with
//! `success: true`. Connection failures, timeouts, 408, 429 and 5xx are retried with
//! backoff; any other answer fails at once. All servers reload in parallel, and the error
//! names every server that failed.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::transport::Backoff;

/// SGLang's load-from-disk call (also served by `swerl serve`).
pub const SGLANG_RELOAD: &str = r#"POST /update_weights_from_disk {"model_path": "{path}"}"#;

/// vLLM's runtime LoRA route (server started with `--enable-lora` and
/// `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`; also served by `swerl serve`): loads the adapter
/// directory `{path}` under `name`, replacing the previous one in place. Requests then name
/// `name` as their model.
pub fn vllm_lora_reload(name: &str) -> String {
    let body = serde_json::json!({"lora_name": name, "lora_path": "{path}", "load_inplace": true});
    format!("POST /v1/load_lora_adapter {body}")
}

/// A reload call that cannot be parsed, or servers that failed to reload.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reload call {spec:?}: {message}; expected `METHOD /path [JSON body]`, e.g. {SGLANG_RELOAD}")]
    Parse { spec: String, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("no endpoints to reload")]
    NoEndpoints,
    #[error("weight reload of {dir} failed on {} of {total} server(s): {}", failures.len(), failures.join("; "))]
    Failed {
        dir: String,
        total: usize,
        /// One line per failed server, starting with its URL.
        failures: Vec<String>,
    },
}

/// The HTTP call that makes a server load a checkpoint directory.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadCall {
    pub method: reqwest::Method,
    /// Starts with `/`; may contain `{path}`.
    pub path: String,
    /// JSON body; `{path}` inside any string is replaced.
    pub body: Option<Value>,
}

impl Default for ReloadCall {
    fn default() -> Self {
        ReloadCall::parse(SGLANG_RELOAD).expect("the SGLang call parses")
    }
}

impl ReloadCall {
    /// Parses `METHOD /path [JSON body]`, e.g. [`SGLANG_RELOAD`].
    pub fn parse(spec: &str) -> Result<Self, ReloadError> {
        let err = |message: &str| ReloadError::Parse {
            spec: spec.to_string(),
            message: message.to_string(),
        };
        let spec_trim = spec.trim();
        let (method, rest) = spec_trim
            .split_once(char::is_whitespace)
            .ok_or_else(|| err("no path after the method"))?;
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| err("the method is not an HTTP method"))?;
        let rest = rest.trim_start();
        let (path, body) = match rest.split_once(char::is_whitespace) {
            Some((path, body)) => (path, Some(body.trim())),
            None => (rest, None),
        };
        if !path.starts_with('/') {
            return Err(err("the path must start with `/`"));
        }
        let body = match body.filter(|b| !b.is_empty()) {
            None => None,
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| err(&format!("the body is not JSON ({e})")))?,
            ),
        };
        Ok(ReloadCall {
            method,
            path: path.to_string(),
            body,
        })
    }

    /// The URL for server `base` (`http://host:port`, a trailing `/` or `/v1` is dropped).
    pub fn url(&self, base: &str, dir: &str) -> String {
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        format!("{base}{}", self.path.replace("{path}", dir))
    }

    /// The body with `{path}` replaced by `dir` in every string.
    pub fn body_for(&self, dir: &str) -> Option<Value> {
        fn substitute(v: &Value, dir: &str) -> Value {
            match v {
                Value::String(s) => Value::String(s.replace("{path}", dir)),
                Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, dir)).collect()),
                Value::Object(o) => Value::Object(
                    o.iter()
                        .map(|(k, x)| (k.clone(), substitute(x, dir)))
                        .collect(),
                ),
                other => other.clone(),
            }
        }
        self.body.as_ref().map(|b| substitute(b, dir))
    }
}

/// Settings of [`Reloader`].
#[derive(Debug, Clone)]
pub struct ReloadConfig {
    pub call: ReloadCall,
    /// Per attempt (loading a large checkpoint takes a while).
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Sent as `Authorization: Bearer ...` when set.
    pub api_key: Option<String>,
}

impl Default for ReloadConfig {
    /// SGLang's call, 10 minutes per attempt, 3 retries from 1 s up to 30 s.
    fn default() -> Self {
        ReloadConfig {
            call: ReloadCall::default(),
            timeout: Duration::from_secs(600),
            max_retries: 3,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            api_key: None,
        }
    }
}

/// Makes every server load a checkpoint directory.
#[derive(Debug)]
pub struct Reloader {
    client: reqwest::blocking::Client,
    endpoints: Vec<String>,
    config: ReloadConfig,
    backoff: Backoff,
}

impl Reloader {
    /// A reloader for the servers at `endpoints` (base URLs).
    pub fn new(endpoints: Vec<String>, config: ReloadConfig) -> Result<Self, ReloadError> {
        if endpoints.is_empty() {
            return Err(ReloadError::NoEndpoints);
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ReloadError::Client(e.to_string()))?;
        Ok(Reloader {
            client,
            endpoints,
            backoff: Backoff::new(config.backoff_initial, config.backoff_max, 0x7e10ad),
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &ReloadConfig {
        &self.config
    }

    /// Asks every server, in parallel, to load `dir`; Ok only when all of them did.
    pub fn reload(&self, dir: &Path) -> Result<(), ReloadError> {
        let dir = dir.display().to_string();
        let results: Vec<Result<(), String>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .endpoints
                .iter()
                .map(|base| s.spawn(|| self.reload_one(base, &dir)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("the reload thread panicked".into()))
                })
                .collect()
        });
        let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ReloadError::Failed {
                dir,
                total: self.endpoints.len(),
                failures,
            })
        }
    }

    /// One server, with retries; the error starts with the URL called.
    fn reload_one(&self, base: &str, dir: &str) -> Result<(), String> {
        let url = self.config.call.url(base, dir);
        let body = self.config.call.body_for(dir);
        let mut last = String::new();
        for attempt in 0..=self.config.max_retries {
            if attempt > 0 {
                std::thread::sleep(self.backoff.delay(attempt));
            }
            match self.attempt(&url, body.as_ref()) {
                Ok(()) => return Ok(()),
                Err((false, message)) => return Err(format!("{url}: {message}")),
                Err((true, message)) => {
                    tracing::debug!(%url, attempt, %message, "weight reload failed; retrying");
                    last = message;
                }
            }
        }
        Err(format!(
            "{url}: failed {} times (1 attempt + {} retries); last error: {last}",
            self.config.max_retries + 1,
            self.config.max_retries
        ))
    }

    /// One call; the error says whether retrying may help.
    fn attempt(&self, url: &str, body: Option<&Value>) -> Result<(), (bool, String)> {
        let mut request = self.client.request(self.config.call.method.clone(), url);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .map_err(|e| (true, super::describe_reqwest(&e)))?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        let shown: String = text.chars().take(300).collect();
        if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
            return Err((true, format!("HTTP {status}: {shown}")));
        }
        if !status.is_success() {
            return Err((
                false,
                format!("the server refused (HTTP {status}): {shown}"),
            ));
        }
        let declined = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("success").and_then(Value::as_bool))
            == Some(false);
        if declined {
            return Err((
                false,
                format!("the server answered success: false: {shown}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_is_sglangs_call() {
        let call = ReloadCall::default();
        assert_eq!(call.method, reqwest::Method::POST);
        assert_eq!(
            call.url("http://h:1/v1/", "/ck/model"),
            "http://h:1/update_weights_from_disk"
        );
        assert_eq!(
            call.body_for("/ck/\"odd\" dir"),
            Some(json!({"model_path": "/ck/\"odd\" dir"}))
        );
    }

    #[test]
    fn calls_parse_with_or_without_a_body() {
        let call = ReloadCall::parse("put /reload?dir={path}").unwrap();
        assert_eq!(call.method, reqwest::Method::PUT);
        assert_eq!(call.body, None);
        assert_eq!(call.url("http://h:1", "/m"), "http://h:1/reload?dir=/m");
        let call = ReloadCall::parse(
            r#"POST /collective_rpc {"method": "reload", "args": ["{path}", 1]}"#,
        )
        .unwrap();
        assert_eq!(
            call.body_for("/m"),
            Some(json!({"method": "reload", "args": ["/m", 1]}))
        );
        for bad in ["POST", "POST reload", "POST /r {not json", "PO ST /r"] {
            let err = ReloadCall::parse(bad).unwrap_err().to_string();
            assert!(err.contains("METHOD /path"), "{bad}: {err}");
        }
    }
}
