//! Shared setup of the SWE rollout tests: the bundled tasks, real bubblewrap sandboxes and
//! the token-bookkeeping checks every trajectory must pass.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use swerl_agent::Limits;
use swerl_env::prepare::EnvSources;
use swerl_env::task::{load_tasks, Task};
use swerl_rollout::{LengthShaping, RunConfig, SweOptions, SweRollout, TurnPenalty};
use swerl_sandbox::LocalFactory;
use swerl_trajectory::Trajectory;

/// The three bundled tasks the tests run (short demos, quick test suites).
pub const TASKS: [&str; 3] = [
    "swerl-bundled__csvsniff-1",
    "swerl-bundled__inireader-1",
    "swerl-bundled__jsonpointer-1",
];

pub fn bundled_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tasks/bundled")
}

/// The bundled tasks named in `ids`, in that order.
pub fn bundled_tasks(ids: &[&str]) -> Vec<Task> {
    let loaded = load_tasks(&bundled_dir().join("tasks.jsonl")).expect("bundled tasks load");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    ids.iter()
        .map(|id| {
            let task = loaded.tasks.iter().find(|t| t.instance_id == *id);
            task.unwrap_or_else(|| panic!("{id} is not bundled"))
                .clone()
        })
        .collect()
}

/// The local sandbox backend; fails (never skips) when it is unavailable (it needs root and
/// bubblewrap), since a skipped check must not read as a pass.
pub fn local_factory() -> Arc<LocalFactory> {
    match LocalFactory::new() {
        Ok(f) => Arc::new(f),
        Err(e) => panic!("local sandbox unavailable ({e}); run scripts/setup as root"),
    }
}

/// A rollout over `tasks` whose environment sources are prepared under `env_root`.
pub fn rollout(tasks: Vec<Task>, factory: Arc<LocalFactory>, env_root: &Path) -> SweRollout {
    let sources = EnvSources {
        env_root: env_root.to_path_buf(),
        repos: Some(bundled_dir().join("repos")),
        repos_in_image: false,
    };
    SweRollout::new(tasks, sources, factory, SweOptions::default())
}

pub fn run_config(concurrency: usize) -> RunConfig {
    RunConfig {
        concurrency,
        max_attempts: 1,
        limits: Limits {
            max_turns: 40,
            max_context_tokens: 200_000,
            max_new_tokens: 8_192,
            min_new_tokens: 8,
            wall_time: Duration::from_secs(300),
        },
        reward: LengthShaping::TurnPenalty(TurnPenalty::stage1()),
        versions: BTreeMap::from([("dataset".to_string(), "bundled".to_string())]),
    }
}

/// The token bookkeeping of a trajectory: one mask bit and one log-prob per token, every
/// assistant turn stored verbatim at its offset and marked 1, everything else 0.
pub fn check_tokens(t: &Trajectory) {
    let n = t.token_ids.len();
    assert_eq!(t.loss_mask.len(), n, "{}", t.task_id);
    assert_eq!(t.sampler_logprobs.len(), n, "{}", t.task_id);
    assert!(t.prompt_len > 0 && t.loss_mask[..t.prompt_len].iter().all(|&m| m == 0));
    let mut sampled = 0;
    for turn in &t.turns {
        let span = turn.assistant_start..turn.assistant_start + turn.assistant_ids.len();
        assert_eq!(&t.token_ids[span.clone()], &turn.assistant_ids[..]);
        assert_eq!(
            &t.sampler_logprobs[span.clone()],
            &turn.assistant_logprobs[..]
        );
        assert!(t.loss_mask[span].iter().all(|&m| m == 1));
        sampled += turn.assistant_ids.len();
    }
    let ones = t.loss_mask.iter().filter(|&&m| m == 1).count();
    assert_eq!(
        ones, sampled,
        "{}: only sampled tokens are trained on",
        t.task_id
    );
    assert_eq!(t.sampled_tokens(), sampled);
}
