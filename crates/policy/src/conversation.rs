//! Token bookkeeping shared by every backend: the first prompt, the text of sampled ids,
//! and the exact template delta after each turn, all through the model's [`ChatTokenizer`].
//!
//! Backends only ever sample; they never tokenise a conversation. The ids a backend sampled
//! stay verbatim in the context and only the delta (close of the turn, the observation as a
//! user message, the next generation prompt) is encoded, so the trainer sees exactly what
//! the sampler produced (docs/method.md section 10, points 4 and 5).

use std::sync::Arc;

use swerl_agent::{FinishReason, Generation, PolicyFailure};
use swerl_model::chat::{ChatTokenizer, Message};

/// One episode's conversation: the messages so far, as the chat template reads them.
#[derive(Debug, Clone)]
pub struct Conversation {
    chat: Arc<ChatTokenizer>,
    /// Empty until [`Conversation::start`]; the delta API needs the real history because
    /// templates may render a turn differently depending on what precedes it.
    messages: Vec<Message>,
    warned_rewrite: bool,
}

impl Conversation {
    /// A conversation that has not started yet.
    pub fn new(chat: Arc<ChatTokenizer>) -> Self {
        Conversation {
            chat,
            messages: Vec::new(),
            warned_rewrite: false,
        }
    }

    /// The chat tokenizer.
    pub fn chat(&self) -> &Arc<ChatTokenizer> {
        &self.chat
    }

    /// Starts over with `[system, user]` and returns its ids plus the generation prompt.
    pub fn start(&mut self, system: &str, user: &str) -> Result<Vec<u32>, PolicyFailure> {
        self.messages = vec![Message::system(system), Message::user(user)];
        self.chat
            .prompt_ids_for(&self.messages)
            .map_err(|e| PolicyFailure(format!("cannot render the first prompt: {e}")))
    }

    /// A [`Generation`] for sampled ids: `Stop` when the last id is a stop id, else
    /// `Length`; the text is decoded without special tokens (it is parsed for the action).
    pub fn generation(
        &self,
        token_ids: Vec<u32>,
        logprobs: Vec<f32>,
    ) -> Result<Generation, PolicyFailure> {
        let finish = match token_ids.last() {
            Some(id) if self.chat.stop_ids().contains(id) => FinishReason::Stop,
            _ => FinishReason::Length,
        };
        let text = self.chat.decode(&token_ids, true).map_err(|e| {
            PolicyFailure(format!(
                "cannot decode {} sampled ids: {e}",
                token_ids.len()
            ))
        })?;
        Ok(Generation {
            token_ids,
            logprobs,
            text,
            finish,
        })
    }

    /// The ids after the finished turn `last` (whose ids end `context`): its close when the
    /// sampler stopped before the end-of-turn token, `observation` as a user message, and
    /// the next generation prompt.
    pub fn observation_delta(
        &mut self,
        context: &[u32],
        last: &Generation,
        observation: &str,
    ) -> Result<Vec<u32>, PolicyFailure> {
        if self.messages.is_empty() {
            return Err(PolicyFailure(
                "observation_delta called before prompt(): start the episode with prompt()".into(),
            ));
        }
        if !context.ends_with(&last.token_ids) {
            return Err(PolicyFailure(format!(
                "observation_delta: the context ({} ids) does not end with the last turn's {} sampled ids; \
                 append the generation's token_ids to the context first",
                context.len(),
                last.token_ids.len()
            )));
        }
        let assistant = self
            .chat
            .assistant_message(&last.token_ids)
            .map_err(|e| PolicyFailure(format!("cannot decode the last turn: {e}")))?;
        self.messages.push(assistant);
        let new = [Message::user(observation)];
        let delta = self
            .chat
            .observation_delta(&self.messages, context, &new)
            .map_err(|e| PolicyFailure(format!("cannot render the observation delta: {e}")))?;
        self.warn_on_rewrite(&delta.history_rewrite);
        self.messages.extend(new);
        Ok(delta.ids)
    }

    /// Templates that rewrite earlier turns make the kept ids differ from a full
    /// re-render; that is correct for training (the ids are what the policy saw), but worth
    /// one loud line per episode.
    fn warn_on_rewrite(&mut self, rewrite: &Option<swerl_model::chat::HistoryRewrite>) {
        if let (Some(r), false) = (rewrite, self.warned_rewrite) {
            self.warned_rewrite = true;
            tracing::warn!(
                at_byte = r.at_byte,
                before = %r.before,
                after = %r.after,
                "the chat template rewrites earlier turns; the context keeps the ids the policy saw"
            );
        }
    }
}
