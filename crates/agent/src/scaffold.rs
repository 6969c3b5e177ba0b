//! The agent loop (docs/method.md section 3): prompt, then per turn generate -> parse -> step ->
//! append the observation delta, until `submit` or a limit. Agent-level failures (format
//! errors, failing commands, limits) are data; infrastructure failures end the episode with
//! an explicit status and are never turned into a reward here or anywhere downstream.

use crate::parse::parse_action;
use crate::prompts::{format_error_observation, issue_message};
use crate::tape::Tape;
use crate::{Environment, Generation, Policy};
use std::time::{Duration, Instant};
use swerl_trajectory::{EpisodeStatus, Turn, TurnTimings};

/// The limits of one episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// T_max: the episode ends with `turn_limit` after this many turns (format errors count).
    pub max_turns: usize,
    /// The whole token sequence (prompt + turns + observations) never exceeds this.
    pub max_context_tokens: usize,
    /// Per-turn cap on sampled tokens (further capped by what the context has left).
    pub max_new_tokens: usize,
    /// A turn is only started if at least this many tokens fit; otherwise `context_limit`.
    pub min_new_tokens: usize,
    /// Wall-clock limit of the loop, checked before every turn (a running command is bounded
    /// by the environment's own per-command timeout instead).
    pub wall_time: Duration,
}

impl Default for Limits {
    /// Stage-1 values of docs/method.md: T_max 40, 65,536 context tokens.
    fn default() -> Self {
        Limits {
            max_turns: 40,
            max_context_tokens: 65_536,
            max_new_tokens: 4_096,
            min_new_tokens: 64,
            wall_time: Duration::from_secs(3_600),
        }
    }
}

/// What one run of the loop produced; the rollout adds task, grade and reward to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// The policy's own description (model, sampling parameters).
    pub policy: serde_json::Value,
    pub prompt_len: usize,
    pub turns: Vec<Turn>,
    pub token_ids: Vec<u32>,
    pub loss_mask: Vec<u8>,
    pub sampler_logprobs: Vec<f32>,
    pub status: EpisodeStatus,
    /// The failure message for `env_error` / `policy_error`.
    pub error: Option<String>,
    /// The diff at the end; `None` for `env_error` (the environment may be gone) and
    /// `policy_error` (never graded).
    pub final_patch: Option<String>,
    pub elapsed_s: f64,
}

impl Episode {
    /// An episode that failed before its first prompt (e.g. the environment did not start).
    pub fn failed_at_start(status: EpisodeStatus, error: String) -> Episode {
        Episode {
            policy: serde_json::Value::Null,
            prompt_len: 0,
            turns: Vec::new(),
            token_ids: Vec::new(),
            loss_mask: Vec::new(),
            sampler_logprobs: Vec::new(),
            status,
            error: Some(error),
            final_patch: None,
            elapsed_s: 0.0,
        }
    }
}

/// How the loop stopped: a status, with a message for infrastructure failures.
type Ending = (EpisodeStatus, Option<String>);

/// Runs one episode of `policy` in `env` under `limits`.
pub fn run_episode<P, E>(policy: &mut P, env: &mut E, limits: &Limits) -> Episode
where
    P: Policy + ?Sized,
    E: Environment + ?Sized,
{
    let start = Instant::now();
    let mut tape = Tape::default();
    let mut turns = Vec::new();
    let (status, error) = match policy.prompt(
        &env.system_prompt(),
        &issue_message(&env.problem_statement()),
    ) {
        Ok(prompt) => {
            tape.push_context(&prompt);
            run_turns(policy, env, limits, start, &mut tape, &mut turns)
        }
        Err(e) => (EpisodeStatus::PolicyError, Some(e.to_string())),
    };
    let (status, error, final_patch) = take_final_patch(env, status, error);
    tape.into_episode(
        policy.describe(),
        turns,
        status,
        error,
        final_patch,
        start.elapsed(),
    )
}

/// The turn loop; returns how it ended.
fn run_turns<P, E>(
    policy: &mut P,
    env: &mut E,
    limits: &Limits,
    start: Instant,
    tape: &mut Tape,
    turns: &mut Vec<Turn>,
) -> Ending
where
    P: Policy + ?Sized,
    E: Environment + ?Sized,
{
    let mut last: Option<(Generation, String)> = None;
    loop {
        // 1. Limits that are checked before any more work is done.
        if turns.len() >= limits.max_turns {
            return (EpisodeStatus::TurnLimit, None);
        }
        if start.elapsed() >= limits.wall_time {
            return (EpisodeStatus::WallTime, None);
        }
        // 2. Close the previous turn with its observation delta, if it fits.
        if let Some((generation, observation)) = last.take() {
            let delta = match policy.observation_delta(tape.ids(), &generation, &observation) {
                Ok(delta) => delta,
                Err(e) => return (EpisodeStatus::PolicyError, Some(e.to_string())),
            };
            if tape.len() + delta.len() + limits.min_new_tokens > limits.max_context_tokens {
                return (EpisodeStatus::ContextLimit, None);
            }
            tape.push_context(&delta);
            turns
                .last_mut()
                .expect("a turn precedes its delta")
                .observation_ids = delta;
        } else if tape.len() + limits.min_new_tokens > limits.max_context_tokens {
            return (
                EpisodeStatus::ContextLimit,
                Some("the prompt alone fills the context".into()),
            );
        }
        // 3. Sample, parse and act.
        let budget = limits
            .max_new_tokens
            .min(limits.max_context_tokens - tape.len());
        let (turn, generation, outcome) = match run_turn(policy, env, tape, budget) {
            Ok(done) => done,
            Err(message) => return (EpisodeStatus::PolicyError, Some(message)),
        };
        last = Some((generation, turn.observation_text.clone()));
        turns.push(turn);
        match outcome {
            Outcome::Continue => {}
            Outcome::Submitted => return (EpisodeStatus::Submitted, None),
            Outcome::EnvFailed(message) => return (EpisodeStatus::EnvError, Some(message)),
        }
    }
}

/// What the environment's answer means for the loop.
enum Outcome {
    Continue,
    Submitted,
    /// The command could not be run; the turn is kept with the failure as its observation.
    EnvFailed(String),
}

/// One turn: generate within `budget`, append the sampled ids, run the command (or answer
/// the format error). A policy failure is `Err` (nothing was appended).
fn run_turn<P, E>(
    policy: &mut P,
    env: &mut E,
    tape: &mut Tape,
    budget: usize,
) -> Result<(Turn, Generation, Outcome), String>
where
    P: Policy + ?Sized,
    E: Environment + ?Sized,
{
    let t0 = Instant::now();
    let generation = policy
        .generate(tape.ids(), budget)
        .map_err(|e| e.to_string())?;
    check_generation(&generation, budget)?;
    let generate_s = t0.elapsed().as_secs_f64();
    let assistant_start = tape.push_sampled(&generation);

    let t1 = Instant::now();
    let (action, format_error, observation, outcome) = match parse_action(&generation.text) {
        Ok(command) => match env.step(&command) {
            Ok(step) => {
                let outcome = if step.submitted {
                    Outcome::Submitted
                } else {
                    Outcome::Continue
                };
                (Some(command), None, step.observation, outcome)
            }
            Err(e) => (
                Some(command),
                None,
                e.to_string(),
                Outcome::EnvFailed(e.to_string()),
            ),
        },
        Err(fe) => (
            None,
            Some(fe),
            format_error_observation(fe).to_string(),
            Outcome::Continue,
        ),
    };
    let turn = Turn {
        assistant_start,
        assistant_ids: generation.token_ids.clone(),
        assistant_logprobs: generation.logprobs.clone(),
        assistant_text: generation.text.clone(),
        truncated: generation.finish == crate::FinishReason::Length,
        action,
        format_error,
        observation_ids: Vec::new(),
        observation_text: observation,
        timings: TurnTimings {
            generate_s,
            env_s: t1.elapsed().as_secs_f64(),
        },
    };
    Ok((turn, generation, outcome))
}

/// A backend that breaks the token-in/token-out contract is a policy failure: recording
/// misaligned log-probs would silently corrupt training.
fn check_generation(generation: &Generation, budget: usize) -> Result<(), String> {
    let n = generation.token_ids.len();
    if generation.logprobs.len() != n {
        return Err(format!(
            "policy returned {n} tokens but {} log-probs",
            generation.logprobs.len()
        ));
    }
    if n > budget {
        return Err(format!(
            "policy returned {n} tokens for max_new_tokens {budget}"
        ));
    }
    if let Some(i) = generation.logprobs.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "policy returned a non-finite log-prob at token {i}"
        ));
    }
    Ok(())
}

/// Takes whatever diff exists (graded even after a limit, docs/method.md section 9). Not for
/// `env_error` (the environment may be gone) or `policy_error` (never graded). A failing
/// diff turns the ending into `env_error`: the patch, hence the outcome, is unknown.
fn take_final_patch<E: Environment + ?Sized>(
    env: &mut E,
    status: EpisodeStatus,
    error: Option<String>,
) -> (EpisodeStatus, Option<String>, Option<String>) {
    if status.is_infra_failure() {
        return (status, error, None);
    }
    match env.diff() {
        Ok(patch) => (status, error, Some(patch)),
        Err(e) => (
            EpisodeStatus::EnvError,
            Some(format!("final diff after {status}: {e}")),
            None,
        ),
    }
}
