//! Request parsing and validation for the OpenAI-compatible endpoints, and the response
//! bodies. Every rejected parameter gets a 400 that names it and says what is accepted.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use swerl_model::chat::Message;
use swerl_model::sampling::SamplingParams;

/// An error answered as OpenAI's `{"error": {...}}` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    /// A 400 invalid-request error.
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let kind = match self.status {
            400 => "invalid_request_error",
            404 => "not_found_error",
            _ => "server_error",
        };
        json!({"error": {"message": self.message, "type": kind, "code": self.status}})
    }
}

/// Sampling and output fields shared by both endpoints (vLLM's names).
#[derive(Debug, Default, Deserialize)]
pub struct Common {
    pub model: Option<String>,
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub min_p: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub n: Option<u32>,
    pub best_of: Option<u32>,
    pub stream: Option<bool>,
    pub seed: Option<u64>,
    pub stop: Option<Value>,
    pub stop_token_ids: Option<Vec<u32>>,
    pub ignore_eos: Option<bool>,
    pub skip_special_tokens: Option<bool>,
    pub return_tokens_as_token_ids: Option<bool>,
    pub return_token_ids: Option<bool>,
    /// vLLM's switch for the stop string/token in the output: swerl always returns it
    /// (token-in, token-out), so only `true` is accepted.
    pub include_stop_str_in_output: Option<bool>,
    /// vLLM's spaces between special tokens in detokenised text: the embedded tokenizer
    /// never inserts them, so only `false` is accepted.
    pub spaces_between_special_tokens: Option<bool>,
}

/// POST /v1/completions.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub prompt: Value,
    pub echo: Option<bool>,
    /// Number of log-probs per token; only the sampled token's is available (0 or 1).
    pub logprobs: Option<u32>,
    #[serde(flatten)]
    pub common: Common,
    /// Whatever else the request holds; any key here is refused (see [`refuse_unknown`]).
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

/// POST /v1/chat/completions.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub max_completion_tokens: Option<i64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    /// Tool JSON schemas, rendered into the prompt by the model's chat template exactly as
    /// transformers' `apply_chat_template(messages, tools=...)` does. The reply carries the
    /// model's text as it is: swerl serve has no tool-call parser.
    pub tools: Option<Vec<Value>>,
    /// Only `none` (or absent): choosing or forcing a tool needs a tool-call parser.
    pub tool_choice: Option<Value>,
    /// Extra chat-template variables (vLLM's name), e.g. `{"enable_thinking": false}`.
    pub chat_template_kwargs: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub common: Common,
    /// Whatever else the request holds; any key here is refused (see [`refuse_unknown`]).
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

impl ChatRequest {
    /// Refuses a `tool_choice` that would need a tool-call parser.
    pub fn check_tools(&self) -> Result<(), ApiError> {
        match &self.tool_choice {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(s)) if s == "none" => Ok(()),
            Some(other) => Err(ApiError::bad(format!(
                "tool_choice {other} is not supported: swerl serve renders `tools` into the \
                 prompt but has no tool-call parser; send tool_choice \"none\" or omit it"
            ))),
        }
    }
}

/// Refuses request fields this server does not implement, naming them: a silently ignored
/// field (a sampling parameter, tools) changes what the client gets without telling it.
pub fn refuse_unknown(unknown: &Map<String, Value>) -> Result<(), ApiError> {
    if unknown.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = unknown.keys().map(|k| format!("`{k}`")).collect();
    Err(ApiError::bad(format!(
        "unsupported request field(s) {}: swerl serve does not implement them and never \
         ignores a field; remove them",
        names.join(", ")
    )))
}

/// Parses a JSON body into `T`, as a 400 naming the serde error.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("invalid request body: {e}")))
}

/// The checked settings of one request.
#[derive(Debug, Clone)]
pub struct Checked {
    pub sampling: SamplingParams,
    pub max_tokens: Option<usize>,
    pub seed: Option<u64>,
    /// Extra stop ids (the model's own stop ids are added unless `ignore_eos`).
    pub stop_token_ids: Vec<u32>,
    pub ignore_eos: bool,
    pub skip_special_tokens: bool,
    pub tokens_as_ids: bool,
    pub return_token_ids: bool,
    /// The LoRA adapter the request names as its `model` (None: the served model itself).
    pub adapter: Option<String>,
}

impl Common {
    /// Validates everything the engine cannot do or that is out of range. `model` must be
    /// the served name or one of the loaded LoRA `adapters` (vLLM's convention).
    pub fn check(&self, served: &str, adapters: &[String]) -> Result<Checked, ApiError> {
        let adapter = match self.model.as_deref() {
            None => None,
            Some(m) if m == served => None,
            Some(m) if adapters.iter().any(|a| a == m) => Some(m.to_string()),
            Some(m) => {
                let loaded = if adapters.is_empty() {
                    String::new()
                } else {
                    format!(" (or one of its LoRA adapters: {})", adapters.join(", "))
                };
                return Err(ApiError {
                    status: 404,
                    message: format!(
                        "the model `{m}` does not exist; this server serves `{served}`{loaded}"
                    ),
                });
            }
        };
        self.check_unsupported()?;
        let top_k = match self.top_k {
            None | Some(-1) | Some(0) => 0,
            Some(k) if k > 0 => k as usize,
            Some(k) => {
                return Err(ApiError::bad(format!(
                    "top_k is {k}; expected -1 or 0 (off) or a positive count"
                )))
            }
        };
        let sampling = SamplingParams {
            temperature: self.temperature.unwrap_or(1.0),
            top_p: self.top_p.unwrap_or(1.0),
            top_k,
            min_p: self.min_p.unwrap_or(0.0),
        };
        sampling
            .validate()
            .map_err(|e| ApiError::bad(e.to_string()))?;
        let max_tokens = match self.max_tokens {
            None => None,
            Some(n) if n >= 1 => Some(n as usize),
            Some(n) => {
                return Err(ApiError::bad(format!(
                    "max_tokens is {n}; expected at least 1"
                )))
            }
        };
        Ok(Checked {
            sampling,
            max_tokens,
            seed: self.seed,
            stop_token_ids: self.stop_token_ids.clone().unwrap_or_default(),
            ignore_eos: self.ignore_eos.unwrap_or(false),
            skip_special_tokens: self.skip_special_tokens.unwrap_or(true),
            tokens_as_ids: self.return_tokens_as_token_ids.unwrap_or(false),
            return_token_ids: self.return_token_ids.unwrap_or(false),
            adapter,
        })
    }

    /// Features the embedded engine does not have: rejected rather than silently ignored,
    /// because a silently ignored sampling parameter is exactly the bug docs/method.md warns of.
    fn check_unsupported(&self) -> Result<(), ApiError> {
        let neutral = |name: &str, value: Option<f64>, neutral: f64| match value {
            Some(v) if v != neutral => Err(ApiError::bad(format!(
                "{name} is {v}; only {neutral} (off) is supported"
            ))),
            _ => Ok(()),
        };
        neutral("repetition_penalty", self.repetition_penalty, 1.0)?;
        neutral("presence_penalty", self.presence_penalty, 0.0)?;
        neutral("frequency_penalty", self.frequency_penalty, 0.0)?;
        if self.n.unwrap_or(1) != 1 || self.best_of.unwrap_or(1) != 1 {
            return Err(ApiError::bad(
                "n and best_of must be 1; send one request per sample (each with its own seed)",
            ));
        }
        if self.stream == Some(true) {
            return Err(ApiError::bad("stream is not supported; send stream: false"));
        }
        if self.include_stop_str_in_output == Some(false) {
            return Err(ApiError::bad(
                "include_stop_str_in_output false is not supported: the stop token is always \
                 returned (token-in, token-out); send true or omit it",
            ));
        }
        if self.spaces_between_special_tokens == Some(true) {
            return Err(ApiError::bad(
                "spaces_between_special_tokens true is not supported: the tokenizer decodes \
                 special tokens without spaces between them; send false or omit it",
            ));
        }
        match &self.stop {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(s)) if s.is_empty() => Ok(()),
            Some(Value::Array(a)) if a.is_empty() => Ok(()),
            Some(other) => Err(ApiError::bad(format!(
                "stop strings ({other}) are not supported; use stop_token_ids"
            ))),
        }
    }
}

/// The prompt of a completion request: a string, or a list of token ids (also a list
/// holding one such list).
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

/// Reads `prompt`.
pub fn prompt(value: &Value) -> Result<Prompt, ApiError> {
    let shape = "prompt must be a string or a list of token ids (one prompt per request)";
    match value {
        Value::String(s) if !s.is_empty() => Ok(Prompt::Text(s.clone())),
        Value::Array(items)
            if items.len() == 1 && (items[0].is_array() || items[0].is_string()) =>
        {
            prompt(&items[0])
        }
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect::<Option<Vec<u32>>>()
            .map(Prompt::Ids)
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "{shape}; found a list with a non-integer or several prompts"
                ))
            }),
        _ => Err(ApiError::bad(format!(
            "{shape}; it is empty or of another type"
        ))),
    }
}

/// What the engine returned, decoded for a response.
#[derive(Debug, Clone)]
pub struct Sampled {
    pub tokens: Vec<u32>,
    pub logprobs: Vec<f32>,
    /// One string per token: `token_id:N` or the token's text.
    pub token_strings: Vec<String>,
    pub text: String,
    pub finish_reason: &'static str,
    pub prompt_tokens: usize,
}

/// `usage`.
pub fn usage(s: &Sampled) -> Value {
    json!({"prompt_tokens": s.prompt_tokens, "completion_tokens": s.tokens.len(), "total_tokens": s.prompt_tokens + s.tokens.len()})
}

/// The `choices[0]` of a completion.
pub fn completion_choice(s: &Sampled, logprobs: bool, return_token_ids: bool) -> Value {
    let mut choice = json!({
        "index": 0,
        "text": s.text,
        "finish_reason": s.finish_reason,
        "stop_reason": null,
        "logprobs": if logprobs {
            json!({"tokens": s.token_strings, "token_logprobs": s.logprobs, "top_logprobs": null, "text_offset": null})
        } else { Value::Null },
    });
    if return_token_ids {
        choice["token_ids"] = json!(s.tokens);
    }
    choice
}

/// The `choices[0]` of a chat completion.
pub fn chat_choice(s: &Sampled, logprobs: bool, return_token_ids: bool) -> Value {
    let content: Vec<Value> = s
        .token_strings
        .iter()
        .zip(&s.logprobs)
        .map(|(t, lp)| json!({"token": t, "logprob": lp, "bytes": null, "top_logprobs": []}))
        .collect();
    let mut choice = json!({
        "index": 0,
        "message": {"role": "assistant", "content": s.text},
        "finish_reason": s.finish_reason,
        "logprobs": if logprobs { json!({"content": content}) } else { Value::Null },
    });
    if return_token_ids {
        choice["token_ids"] = json!(s.tokens);
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(v: Value) -> Common {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_are_untruncated_temperature_one() {
        let c = common(json!({})).check("m", &[]).unwrap();
        assert_eq!(c.sampling, SamplingParams::rollout_default());
        assert!(c.skip_special_tokens && !c.tokens_as_ids);
    }

    #[test]
    fn unknown_fields_are_collected_apart_from_the_known_ones() {
        let r: ChatRequest = serde_json::from_value(json!({"messages": [],
            "temperature": 1.0, "tools": [], "user": "u", "frobnicate": 2}))
        .unwrap();
        assert_eq!(r.common.temperature, Some(1.0));
        assert!(r.tools.is_some());
        let unknown: Vec<&String> = r.unknown.keys().collect();
        assert_eq!(unknown, ["user", "frobnicate"]);
        let err = refuse_unknown(&r.unknown).unwrap_err();
        assert!(err.message.contains("`user`, `frobnicate`"), "{err:?}");
    }

    #[test]
    fn vllm_off_values_are_accepted() {
        let c = common(json!({"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0, "stop": []}))
            .check("m", &[])
            .unwrap();
        assert_eq!(c.sampling.top_k, 0);
    }

    #[test]
    fn unsupported_or_out_of_range_parameters_are_400s() {
        for bad in [
            json!({"repetition_penalty": 1.1}),
            json!({"top_k": -3}),
            json!({"top_p": 0.0}),
            json!({"temperature": -1.0}),
            json!({"n": 2}),
            json!({"stream": true}),
            json!({"stop": ["\n"]}),
            json!({"max_tokens": 0}),
        ] {
            let err = common(bad.clone()).check("m", &[]).unwrap_err();
            assert_eq!(err.status, 400, "{bad}: {err:?}");
        }
        assert_eq!(
            common(json!({"model": "other"}))
                .check("m", &[])
                .unwrap_err()
                .status,
            404
        );
    }

    #[test]
    fn a_loaded_adapters_name_selects_it() {
        let adapters = ["tuned".to_string()];
        let c = common(json!({"model": "tuned"}))
            .check("m", &adapters)
            .unwrap();
        assert_eq!(c.adapter.as_deref(), Some("tuned"));
        let c = common(json!({"model": "m"})).check("m", &adapters).unwrap();
        assert_eq!(c.adapter, None);
        let err = common(json!({"model": "other"}))
            .check("m", &adapters)
            .unwrap_err();
        assert!(
            err.status == 404 && err.message.contains("tuned"),
            "{err:?}"
        );
    }

    #[test]
    fn prompts_as_text_ids_or_single_nested_list() {
        assert_eq!(prompt(&json!("hi")).unwrap(), Prompt::Text("hi".into()));
        assert_eq!(prompt(&json!([1, 2])).unwrap(), Prompt::Ids(vec![1, 2]));
        assert_eq!(prompt(&json!([[3]])).unwrap(), Prompt::Ids(vec![3]));
        for bad in [
            json!([]),
            json!(""),
            json!([1, "x"]),
            json!([[1], [2]]),
            json!(5),
            json!([-1]),
        ] {
            assert_eq!(prompt(&bad).unwrap_err().status, 400, "{bad}");
        }
    }
}
