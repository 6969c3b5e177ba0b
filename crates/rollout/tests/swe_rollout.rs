//! End to end: SWE episodes of bundled tasks in real bubblewrap sandboxes, with the scripted
//! policy replaying each task's `demo_commands`, graded in fresh sandboxes.
//! Where the local sandbox cannot start (no root or no bubblewrap) each test says so on
//! stderr and returns.

mod swe_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use swe_support::{bundled_tasks, check_tokens, local_factory, rollout, run_config, TASKS};
use swerl_agent::{PolicyFailure, ScriptedPolicy};
use swerl_env::task::Task;
use swerl_rollout::{
    jobs_for, read_trajectories, scripted_policy, summarize, EpisodeOutcome, Job, Progress,
    TrajectoryStore,
};
use swerl_sandbox::pids_of_uid;
use swerl_trajectory::{EpisodeStatus, GradeOutcome};

fn no_progress(_: &Progress) {}

fn scripted(_: &Job, task: &Task) -> Result<ScriptedPolicy, PolicyFailure> {
    scripted_policy(task)
}

#[test]
fn scripted_policy_resolves_bundled_tasks_in_real_sandboxes() {
    let factory = local_factory();
    let dir = tempfile::tempdir().unwrap();
    let swe = rollout(bundled_tasks(&TASKS), factory, &dir.path().join("env"));
    let (mut store, _) = TrajectoryStore::open(&dir.path().join("t.jsonl")).unwrap();
    let jobs = jobs_for(&TASKS, 1);
    let last = Mutex::new(None);
    let progress = |p: &Progress| *last.lock().unwrap() = Some(p.clone());
    let done = swe
        .run(&jobs, &run_config(3), &scripted, &mut store, &progress)
        .unwrap();
    assert_eq!((done.done, done.resolved, done.infra_failures), (3, 3, 0));
    assert_eq!(last.into_inner().unwrap(), Some(done));
    let stored = read_trajectories(store.path()).unwrap();
    assert_eq!(stored.len(), 3);
    for t in &stored {
        let grade = t.grade.as_ref().expect("graded");
        assert_eq!(grade.outcome, GradeOutcome::Graded, "{}", grade.reason);
        assert!(
            grade.resolved,
            "{}: {}\n{}",
            t.task_id, grade.reason, grade.log_tail
        );
        assert_eq!(t.status, EpisodeStatus::Submitted, "{}", t.task_id);
        assert!(t.turns.len() < 10 && t.turns.iter().all(|u| u.format_error.is_none()));
        let reward = t.reward.expect("a graded episode has a reward");
        assert_eq!(
            (reward.resolved, reward.length_penalty, reward.total),
            (1.0, 0.0, 1.0)
        );
        assert!(t
            .final_patch
            .as_deref()
            .unwrap_or("")
            .contains("diff --git"));
        check_tokens(t);
    }
    let ids: HashSet<&str> = stored.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, TASKS.into_iter().collect());
}

#[test]
fn rerunning_runs_only_the_missing_pairs() {
    let factory = local_factory();
    let dir = tempfile::tempdir().unwrap();
    let tasks = &TASKS[..2];
    let swe = rollout(bundled_tasks(tasks), factory, &dir.path().join("env"));
    let path = dir.path().join("t.jsonl");
    let ran = Mutex::new(Vec::new());
    let counted = |job: &Job, task: &Task| {
        ran.lock()
            .unwrap()
            .push((job.task_id.clone(), job.sample_index));
        scripted_policy(task)
    };
    let all = jobs_for(tasks, 2);
    // First run: a subset, as if the run had been killed after three episodes.
    let (mut store, _) = TrajectoryStore::open(&path).unwrap();
    swe.run(
        &all[..3],
        &run_config(2),
        &counted,
        &mut store,
        &no_progress,
    )
    .unwrap();
    drop(store);
    ran.lock().unwrap().clear();
    let (mut store, report) = TrajectoryStore::open(&path).unwrap();
    assert_eq!(report.records, 3);
    let second = swe
        .run(&all, &run_config(2), &counted, &mut store, &no_progress)
        .unwrap();
    assert_eq!((second.skipped, second.done), (3, 1));
    assert_eq!(*ran.lock().unwrap(), vec![(all[3].task_id.clone(), 1)]);
    let stored = read_trajectories(&path).unwrap();
    let keys: HashSet<(String, u32)> = stored
        .iter()
        .map(|t| (t.task_id.clone(), t.sample_index))
        .collect();
    assert_eq!((stored.len(), keys.len()), (4, 4), "no duplicates");
    assert!(stored.iter().all(|t| t.resolved()));
}

#[test]
fn a_failing_policy_is_a_policy_error_without_reward_and_out_of_the_stats() {
    let factory = local_factory();
    let dir = tempfile::tempdir().unwrap();
    let swe = rollout(bundled_tasks(&TASKS[..1]), factory, &dir.path().join("env"));
    let (mut store, _) = TrajectoryStore::open(&dir.path().join("t.jsonl")).unwrap();
    let attempts = AtomicUsize::new(0);
    // Sample 0 replays the demo; sample 1's policy fails on its first generation.
    let policy = |job: &Job, task: &Task| {
        if job.sample_index == 0 {
            return scripted_policy(task);
        }
        attempts.fetch_add(1, Ordering::Relaxed);
        Ok(ScriptedPolicy::new(Vec::new()))
    };
    let mut config = run_config(2);
    config.max_attempts = 2;
    let jobs = jobs_for(&TASKS[..1], 2);
    let done = swe
        .run(&jobs, &config, &policy, &mut store, &no_progress)
        .unwrap();
    assert_eq!((done.done, done.infra_failures, done.retries), (2, 1, 1));
    assert_eq!(
        attempts.load(Ordering::Relaxed),
        2,
        "retried once, then recorded"
    );
    let stored = read_trajectories(store.path()).unwrap();
    let failed = stored.iter().find(|t| t.sample_index == 1).unwrap();
    assert_eq!(failed.status, EpisodeStatus::PolicyError);
    assert!(failed.error.as_deref().unwrap().contains("no message left"));
    assert_eq!((failed.reward, failed.grade.is_none()), (None, true));
    let outcomes: Vec<EpisodeOutcome> = stored.iter().map(EpisodeOutcome::from).collect();
    let summary = summarize(&outcomes, 1);
    assert_eq!((summary.episodes, summary.infra_failures), (1, 1));
    assert_eq!(
        summary.pass_at_1, 1.0,
        "the failure counts neither for nor against"
    );
}

/// No process of any agent or grading sandbox outlives the run.
#[test]
fn sandboxes_are_torn_down_after_each_episode() {
    let factory = local_factory();
    let dir = tempfile::tempdir().unwrap();
    let swe = rollout(bundled_tasks(&TASKS[..1]), factory, &dir.path().join("env"));
    let job = &jobs_for(&TASKS[..1], 1)[0];
    let mut env = swe.make_env(job).unwrap();
    let uid = {
        let out = env.episode_mut().sandbox_mut().exec("id -u", None).unwrap();
        out.output.trim().parse::<u32>().unwrap()
    };
    assert!(
        !pids_of_uid(uid).is_empty(),
        "the sandbox shell runs as {uid}"
    );
    drop(env);
    assert_eq!(pids_of_uid(uid), Vec::<u32>::new());
}
