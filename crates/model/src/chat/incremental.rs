//! Token-in, token-out chat for multi-turn agents.
//!
//! The ids a policy sampled are kept verbatim: decoding and re-encoding them can give other
//! ids (`decode(encode(x)) != x` has many causes), and the trainer must see what the
//! sampler produced. So after an assistant turn, the next prompt is the ids so far plus a
//! *delta*: the rest of the assistant turn's closing text (when generation stopped before
//! the end-of-turn token), the new messages, and the next generation prompt. Only the
//! delta is tokenised.
//!
//! The delta text is the template's own: the difference between rendering the history
//! and rendering the history plus the new messages. Some templates rewrite earlier turns
//! once a new message arrives (they drop the reasoning of past assistant turns, or move
//! a system prompt), so the history is not a prefix of the new render. Then the delta is
//! taken from a minimal stand-in conversation instead and the rewrite is reported in
//! [`TokenDelta::history_rewrite`]: the ids stay token-exact for what the policy saw,
//! but they are no longer what a full re-render would give.

use serde_json::Value;

use super::{ChatError, ChatTemplate, Message, RenderOptions};
use crate::tokenizer::{SpecialToken, Tokenizer};

/// Stand-in contents for probe renders: single words no template trims or rewrites.
const PROBE_USER: &str = "U";
const PROBE_ASSISTANT: &str = "A";

/// The ids to append after an assistant turn, and how they were derived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenDelta {
    /// Ids to append to the ids so far.
    pub ids: Vec<u32>,
    /// The text those ids encode.
    pub text: String,
    /// True when the turn had not ended with the end-of-turn token, so the delta starts
    /// by closing it (the turn was cut by a length limit).
    pub closed_turn: bool,
    /// Set when the template rewrote earlier turns (see the module docs).
    pub history_rewrite: Option<HistoryRewrite>,
}

/// Where a new render stopped being an extension of the previous one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRewrite {
    /// Byte offset of the first difference in the previous render.
    pub at_byte: usize,
    /// Up to 60 characters of the previous render from there.
    pub before: String,
    /// Up to 60 characters of the new render from there.
    pub after: String,
}

/// A tokenizer with its chat template and the ids a policy backend needs: prompt ids,
/// observation deltas, decode, end-of-turn and stop ids.
#[derive(Clone, Debug)]
pub struct ChatTokenizer {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    /// Tools and extra variables used for every render of this conversation.
    base: RenderOptions,
    end_of_turn: SpecialToken,
    stop_ids: Vec<u32>,
}

impl ChatTokenizer {
    /// Loads a model directory's tokenizer files and chat template.
    pub fn from_dir(dir: &std::path::Path) -> Result<Self, ChatError> {
        let tokenizer = Tokenizer::from_dir(dir)?;
        let template = ChatTemplate::for_tokenizer(&tokenizer, Some(dir))?;
        Self::new(tokenizer, template)
    }

    /// Combines a tokenizer and a template; finds the end-of-turn token by rendering a
    /// probe conversation (the first token the template writes after assistant content,
    /// if it is special; else the config's eos token).
    pub fn new(tokenizer: Tokenizer, template: ChatTemplate) -> Result<Self, ChatError> {
        let mut chat = Self {
            tokenizer,
            template,
            base: RenderOptions::default(),
            end_of_turn: placeholder(),
            stop_ids: Vec::new(),
        };
        chat.end_of_turn = chat.find_end_of_turn()?;
        chat.stop_ids = chat.collect_stop_ids();
        Ok(chat)
    }

    /// Uses these tools (JSON schemas) in every render.
    pub fn with_tools(mut self, tools: Vec<Value>) -> Self {
        self.base.tools = Some(tools);
        self
    }

    /// Sets extra template variables for every render (e.g. `enable_thinking`).
    pub fn with_template_vars(mut self, vars: serde_json::Map<String, Value>) -> Self {
        self.base.extra = vars;
        self
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The chat template.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The token that ends an assistant turn (`<|im_end|>` for Qwen).
    pub fn end_of_turn(&self) -> &SpecialToken {
        &self.end_of_turn
    }

    /// Ids that stop generation: end-of-turn, eos and `<|endoftext|>`, without repeats.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// The text of each stop id, for backends that stop on strings.
    pub fn stop_strings(&self) -> Vec<String> {
        self.stop_ids
            .iter()
            .filter_map(|&id| self.tokenizer.decode(&[id], false).ok())
            .collect()
    }

    /// Ids to text (special tokens kept or dropped).
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, ChatError> {
        Ok(self.tokenizer.decode(ids, skip_special)?)
    }

    /// The assistant message for sampled ids: decoded without special tokens (so a
    /// trailing end-of-turn token is dropped), for the history the next delta renders.
    pub fn assistant_message(&self, completion_ids: &[u32]) -> Result<Message, ChatError> {
        Ok(Message::assistant(&self.decode(completion_ids, true)?))
    }

    /// Renders `messages` with this conversation's tools and variables.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        let opts = RenderOptions {
            add_generation_prompt,
            ..self.base.clone()
        };
        self.template.render(messages, &opts)
    }

    /// The first prompt: an optional system message and a user message, with the
    /// generation prompt (a missing system message leaves the template's default).
    pub fn prompt_ids(&self, system: Option<&str>, user: &str) -> Result<Vec<u32>, ChatError> {
        let mut messages: Vec<Message> = system.map(Message::system).into_iter().collect();
        messages.push(Message::user(user));
        self.prompt_ids_for(&messages)
    }

    /// Any conversation rendered with the generation prompt and encoded.
    pub fn prompt_ids_for(&self, messages: &[Message]) -> Result<Vec<u32>, ChatError> {
        Ok(self.tokenizer.encode(&self.render(messages, true)?)?)
    }

    /// Like [`Self::prompt_ids_for`], with a request's own tools (replacing this
    /// conversation's) and extra template variables (added to, and overriding, its own), as
    /// `apply_chat_template(messages, tools=..., **kwargs)` renders them.
    pub fn prompt_ids_with(
        &self,
        messages: &[Message],
        tools: Option<&[Value]>,
        vars: &serde_json::Map<String, Value>,
    ) -> Result<Vec<u32>, ChatError> {
        let mut opts = RenderOptions {
            add_generation_prompt: true,
            ..self.base.clone()
        };
        if let Some(tools) = tools {
            opts.tools = Some(tools.to_vec());
        }
        opts.extra
            .extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(self
            .tokenizer
            .encode(&self.template.render(messages, &opts)?)?)
    }

    /// The ids to append after an assistant turn: close the turn if `ids_so_far` does not
    /// end with the end-of-turn token, then `new` messages (observations), then the next
    /// generation prompt. `history` is the conversation so far, ending with the assistant
    /// message whose sampled ids end `ids_so_far` (its content as decoded text; see
    /// [`Self::assistant_message`]). Earlier ids are never re-tokenised.
    ///
    /// The delta is tokenised on its own. It joins the earlier ids exactly as encoding the
    /// whole text would when it starts with, or right after, a special token (with
    /// ChatML templates such as Qwen's it always does: `<|im_end|>` or the `\n` after it).
    /// Cost: four renders of the history (string work, no tokenisation of the history).
    pub fn observation_delta(
        &self,
        history: &[Message],
        ids_so_far: &[u32],
        new: &[Message],
    ) -> Result<TokenDelta, ChatError> {
        let before_turn = split_last_assistant(history)?;
        let ended = ids_so_far.last() == Some(&self.end_of_turn.id);
        let close = self.remaining_close(before_turn, ended)?;
        let (suffix, history_rewrite) = self.new_messages_text(history, new)?;
        let text = format!("{close}{suffix}");
        let ids = self.tokenizer.encode(&text)?;
        Ok(TokenDelta {
            ids,
            text,
            closed_turn: !ended,
            history_rewrite,
        })
    }

    /// What the template writes after an assistant turn's content, minus the end-of-turn
    /// token when the policy already sampled it.
    fn remaining_close(&self, before_turn: &[Message], ended: bool) -> Result<String, ChatError> {
        let close = self.assistant_close(before_turn)?;
        if !ended {
            return Ok(close);
        }
        match close.strip_prefix(&self.end_of_turn.text) {
            Some(rest) => Ok(rest.to_string()),
            None => Err(ChatError::Incremental(format!(
                "the turn ended with {:?} but the template closes assistant turns with {close:?}",
                self.end_of_turn.text
            ))),
        }
    }

    /// The closing text of an assistant turn after `before_turn`, found with probe content:
    /// render(before + [assistant(A)]) = render(before, generation prompt) + A + close.
    fn assistant_close(&self, before_turn: &[Message]) -> Result<String, ChatError> {
        let head = self.render(before_turn, true)?;
        let mut with_turn = before_turn.to_vec();
        with_turn.push(Message::assistant(PROBE_ASSISTANT));
        let full = self.render(&with_turn, false)?;
        let expected_start = format!("{head}{PROBE_ASSISTANT}");
        full.strip_prefix(&expected_start).map(str::to_string).ok_or_else(|| {
            ChatError::Incremental(format!(
                "the template does not render an assistant turn as generation prompt + content + closing text \
                 (prompt ends {:?}, turn renders {:?}); the incremental API cannot close turns for it",
                tail(&head, 40),
                tail(&full, 60)
            ))
        })
    }

    /// The text the template adds for `new` messages and the next generation prompt after
    /// `history`; from a stand-in conversation when the template rewrites the history.
    fn new_messages_text(
        &self,
        history: &[Message],
        new: &[Message],
    ) -> Result<(String, Option<HistoryRewrite>), ChatError> {
        let previous = self.render(history, false)?;
        let next = self.render(&concat(history, new), true)?;
        if let Some(suffix) = next.strip_prefix(&previous) {
            return Ok((suffix.to_string(), None));
        }
        let rewrite = first_difference(&previous, &next);
        let stand_in = self.stand_in_history(history);
        let previous = self.render(&stand_in, false)?;
        let next = self.render(&concat(&stand_in, new), true)?;
        match next.strip_prefix(&previous) {
            Some(suffix) => Ok((suffix.to_string(), Some(rewrite))),
            None => Err(ChatError::Incremental(format!(
                "the template rewrites earlier turns even for a minimal conversation (at byte {}: {:?} became {:?}); \
                 messages cannot be appended as a token delta",
                rewrite.at_byte, rewrite.before, rewrite.after
            ))),
        }
    }

    /// The history's system message (if any) and one probe user/assistant exchange.
    fn stand_in_history(&self, history: &[Message]) -> Vec<Message> {
        let system = history.first().filter(|m| m.role == "system").cloned();
        let mut stand_in: Vec<Message> = system.into_iter().collect();
        stand_in.push(Message::user(PROBE_USER));
        stand_in.push(Message::assistant(PROBE_ASSISTANT));
        stand_in
    }

    fn find_end_of_turn(&self) -> Result<SpecialToken, ChatError> {
        // A template may reject the probe (e.g. it demands a system message); the
        // config's eos token is then the best guess.
        let close = match self.assistant_close(&[Message::user(PROBE_USER)]) {
            Ok(close) => close,
            Err(probe_err) => return self.tokenizer.special().eos.clone().ok_or(probe_err),
        };
        let first = self.tokenizer.encode(&close)?.first().copied();
        if let Some(id) = first.filter(|&id| self.tokenizer.is_special(id)) {
            let text = self.tokenizer.decode(&[id], false)?;
            if close.starts_with(&text) {
                return Ok(SpecialToken { text, id });
            }
        }
        self.tokenizer.special().eos.clone().ok_or_else(|| {
            ChatError::Incremental(format!(
                "cannot find the end-of-turn token: the template closes assistant turns with {close:?}, \
                 which does not start with a special token, and the config has no eos_token"
            ))
        })
    }

    fn collect_stop_ids(&self) -> Vec<u32> {
        let special = self.tokenizer.special();
        let candidates = [
            Some(&self.end_of_turn),
            special.eos.as_ref(),
            special.endoftext.as_ref(),
        ];
        let mut ids: Vec<u32> = Vec::new();
        for token in candidates.into_iter().flatten() {
            if !ids.contains(&token.id) {
                ids.push(token.id);
            }
        }
        ids
    }
}

fn placeholder() -> SpecialToken {
    SpecialToken {
        text: String::new(),
        id: u32::MAX,
    }
}

/// Splits off the final assistant message; the delta API only extends after one.
fn split_last_assistant(history: &[Message]) -> Result<&[Message], ChatError> {
    match history.split_last() {
        Some((last, before)) if last.role == "assistant" && !before.is_empty() => Ok(before),
        Some((last, _)) if last.role == "assistant" => {
            Err(ChatError::Incremental("the history has only an assistant message; it needs the prompt before it".into()))
        }
        Some((last, _)) => Err(ChatError::Incremental(format!(
            "the history must end with the assistant turn the ids end with, but it ends with a {:?} message",
            last.role
        ))),
        None => Err(ChatError::EmptyConversation),
    }
}

fn concat(a: &[Message], b: &[Message]) -> Vec<Message> {
    a.iter().chain(b).cloned().collect()
}

fn first_difference(previous: &str, next: &str) -> HistoryRewrite {
    let at_byte = previous
        .char_indices()
        .zip(next.chars())
        .find(|((_, a), b)| a != b)
        .map_or(previous.len().min(next.len()), |((i, _), _)| i);
    let snippet = |s: &str| {
        s.get(at_byte..)
            .unwrap_or_default()
            .chars()
            .take(60)
            .collect()
    };
    HistoryRewrite {
        at_byte,
        before: snippet(previous),
        after: snippet(next),
    }
}

fn tail(s: &str, chars: usize) -> String {
    let count = s.chars().count();
    s.chars().skip(count.saturating_sub(chars)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_reports_offset_and_snippets() {
        let d = first_difference("abcXdef", "abcYdef");
        assert_eq!(
            (d.at_byte, d.before.as_str(), d.after.as_str()),
            (3, "Xdef", "Ydef")
        );
        let d = first_difference("abc", "ab");
        assert_eq!(d.at_byte, 2);
    }

    #[test]
    fn chat_tokenizer_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<ChatTokenizer>();
    }

    #[test]
    fn history_must_end_with_assistant() {
        assert!(split_last_assistant(&[Message::user("x")]).is_err());
        assert!(split_last_assistant(&[Message::assistant("x")]).is_err());
        assert!(split_last_assistant(&[Message::user("x"), Message::assistant("y")]).is_ok());
    }
}
