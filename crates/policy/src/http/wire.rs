//! The JSON of an OpenAI-compatible `/v1/completions` call with token ids in and out.
//!
//! Every sampling parameter is sent explicitly: vLLM otherwise fills unset ones from the
//! model's `generation_config.json` (often top_k/top_p/repetition penalty), which silently
//! truncates rollout sampling and breaks the importance ratio (docs/method.md section 6).

use serde_json::{json, Value};
use swerl_model::sampling::SamplingParams;

/// One completion request as the client builds it.
#[derive(Debug, Clone)]
pub struct CompletionCall<'a> {
    pub model: &'a str,
    pub prompt: &'a [u32],
    pub max_tokens: usize,
    pub sampling: &'a SamplingParams,
    pub seed: u64,
    pub stop_token_ids: &'a [u32],
}

/// What a completion returned: the sampled ids, their log-probs and the finish reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub tokens: Vec<u32>,
    pub logprobs: Vec<f32>,
    pub finish_reason: String,
}

/// The request body. `top_k: -1` is vLLM's "off" (our 0); `logprobs: 1` asks for the
/// sampled token's log-prob (plus the top-1 alternative, ignored); `return_tokens_as_token_ids`
/// makes each returned token `"token_id:N"` so nothing is re-tokenised.
pub fn request_body(call: &CompletionCall<'_>) -> Value {
    let s = call.sampling;
    json!({
        "model": call.model,
        "prompt": call.prompt,
        "max_tokens": call.max_tokens,
        "n": 1,
        "stream": false,
        "echo": false,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": if s.top_k == 0 { -1 } else { s.top_k as i64 },
        "min_p": s.min_p,
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "seed": call.seed,
        "stop": [],
        "stop_token_ids": call.stop_token_ids,
        "ignore_eos": false,
        "skip_special_tokens": false,
        "spaces_between_special_tokens": false,
        "include_stop_str_in_output": true,
        "logprobs": 1,
        "return_tokens_as_token_ids": true,
        "return_token_ids": true,
    })
}

/// Parses a completion response: ids from `choices[0].token_ids` (vLLM's and SGLang's
/// `return_token_ids`), else `choices[0].logprobs.token_ids` (SGLang's log-prob object),
/// else `logprobs.tokens` as `"token_id:N"` (vLLM's `return_tokens_as_token_ids`);
/// log-probs from `logprobs.token_logprobs`. Errors name what is missing and how to get it.
pub fn parse_response(body: &Value) -> Result<Completion, String> {
    let choice = body
        .pointer("/choices/0")
        .ok_or_else(|| format!("the response has no choices[0]: {}", excerpt(body)))?;
    let logprobs = token_logprobs(choice)?;
    let ids_field = choice
        .get("token_ids")
        .or_else(|| choice.pointer("/logprobs/token_ids"))
        .and_then(Value::as_array);
    let tokens = match ids_field {
        Some(ids) => ids.iter().map(as_u32).collect::<Result<Vec<_>, _>>()?,
        None => tokens_from_logprobs(choice)?,
    };
    if tokens.len() != logprobs.len() {
        return Err(format!(
            "the response has {} token ids but {} log-probs; they must correspond one to one",
            tokens.len(),
            logprobs.len()
        ));
    }
    let finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("length")
        .to_string();
    Ok(Completion {
        tokens,
        logprobs,
        finish_reason,
    })
}

fn token_logprobs(choice: &Value) -> Result<Vec<f32>, String> {
    let list = choice.pointer("/logprobs/token_logprobs").and_then(Value::as_array).ok_or_else(|| {
        "the response has no choices[0].logprobs.token_logprobs; the server must honour `logprobs`".to_string()
    })?;
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_f64()
                .map(|x| x as f32)
                .ok_or_else(|| format!("token_logprobs[{i}] is {v}, not a number"))
        })
        .collect()
}

fn tokens_from_logprobs(choice: &Value) -> Result<Vec<u32>, String> {
    let list = choice
        .pointer("/logprobs/tokens")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            "the response has neither choices[0].token_ids nor choices[0].logprobs.tokens"
                .to_string()
        })?;
    list.iter()
        .map(|t| {
            t.as_str().and_then(|s| s.strip_prefix("token_id:")).and_then(|n| n.parse().ok()).ok_or_else(|| {
                format!(
                    "token {t} is not of the form \"token_id:N\": the server ignored `return_tokens_as_token_ids` \
                     (use vLLM >= 0.5.4, SGLang with token ids, or `swerl serve`)"
                )
            })
        })
        .collect()
}

fn as_u32(v: &Value) -> Result<u32, String> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("token id {v} is not a u32"))
}

/// The first 200 characters of a JSON value, for error messages.
pub fn excerpt(v: &Value) -> String {
    v.to_string().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_sends_every_sampling_parameter() {
        let sampling = SamplingParams::rollout_default();
        let call = CompletionCall {
            model: "m",
            prompt: &[1, 2],
            max_tokens: 5,
            sampling: &sampling,
            seed: 9,
            stop_token_ids: &[7],
        };
        let b = request_body(&call);
        assert_eq!(b["top_k"], -1);
        assert_eq!(b["top_p"], 1.0);
        assert_eq!(b["min_p"], 0.0);
        assert_eq!(b["temperature"], 1.0);
        assert_eq!(b["repetition_penalty"], 1.0);
        assert_eq!(b["prompt"], json!([1, 2]));
        assert_eq!(b["stop_token_ids"], json!([7]));
        assert_eq!(b["skip_special_tokens"], false);
        assert_eq!(b["return_tokens_as_token_ids"], true);
    }

    #[test]
    fn parses_vllm_token_id_strings() {
        let body = json!({"choices": [{"finish_reason": "stop", "logprobs": {
            "tokens": ["token_id:5", "token_id:17"], "token_logprobs": [-0.5, -1.25]}}]});
        let c = parse_response(&body).unwrap();
        assert_eq!(c.tokens, vec![5, 17]);
        assert_eq!(c.logprobs, vec![-0.5, -1.25]);
        assert_eq!(c.finish_reason, "stop");
    }

    #[test]
    fn prefers_token_ids_field() {
        let body = json!({"choices": [{"token_ids": [3], "logprobs": {"tokens": ["x"], "token_logprobs": [-2.0]}}]});
        assert_eq!(parse_response(&body).unwrap().tokens, vec![3]);
    }

    #[test]
    fn accepts_sglang_logprob_token_ids() {
        let body = json!({"choices": [{"logprobs": {"tokens": ["a", "b"], "token_ids": [8, 9],
            "token_logprobs": [-1.0, -2.0]}}]});
        assert_eq!(parse_response(&body).unwrap().tokens, vec![8, 9]);
    }

    #[test]
    fn text_tokens_are_rejected_with_advice() {
        let body =
            json!({"choices": [{"logprobs": {"tokens": ["hello"], "token_logprobs": [-2.0]}}]});
        let err = parse_response(&body).unwrap_err();
        assert!(err.contains("return_tokens_as_token_ids"), "{err}");
    }

    #[test]
    fn length_mismatch_and_null_logprobs_are_errors() {
        let body =
            json!({"choices": [{"token_ids": [3, 4], "logprobs": {"token_logprobs": [-2.0]}}]});
        assert!(parse_response(&body).is_err());
        let body = json!({"choices": [{"token_ids": [3], "logprobs": {"token_logprobs": [null]}}]});
        assert!(parse_response(&body).unwrap_err().contains("not a number"));
    }
}
