//! The DAPO loop end to end on the tiny model with a toy environment: bit-exact resume, and
//! evidence that it learns (the mean reward rises).

mod common;
#[path = "dapo_loop/lora.rs"]
mod lora;

use std::collections::BTreeMap;
use std::path::Path;

use common::{flat_weights, toy_model, trajectory, ToyBackend};
use swerl_model::qwen2::Qwen2;
use swerl_rl::filter::SampleFilter;
use swerl_train::config::DapoConfig;
use swerl_train::dapo_loop::DapoRun;
use swerl_train::dapo_loop::{BackendError, RolloutBackend, Rollouts};
use swerl_train::metrics_log::MetricsRow;
use swerl_train::sampling::filter_pool;
use swerl_train::{AdamWConfig, Learner};

fn toy_config(iterations: u64) -> DapoConfig {
    let mut c = DapoConfig::stage1();
    c.seed = 11;
    c.iterations = iterations;
    c.problems_per_iteration = 4;
    c.group_size = 8;
    c.batch_trajectories = 16;
    c.max_context = 64;
    c.micro_batch_tokens = 256;
    c.lr = 1e-3;
    c.pass.checkpointing = false;
    c.eval_every = 2;
    c.eval_tasks = 2;
    c.keep_checkpoints = 2;
    c
}

fn pool() -> Vec<String> {
    (0..8).map(|k| format!("t{k}")).collect()
}

/// Runs `config` in `dir` from a fresh tiny model (seed 5); returns the learner's weights.
fn run(config: DapoConfig, dir: &Path, resume: bool) -> (Vec<(String, Vec<f32>)>, Vec<MetricsRow>) {
    let new_tokens = 4;
    let learner = Learner::new(toy_model(5), AdamWConfig::default());
    let mut backend = ToyBackend::new(toy_model(5), new_tokens);
    let mut run = DapoRun::new(config, learner, dir, pool()).unwrap();
    let rows = run.run(&mut backend, resume, &BTreeMap::new()).unwrap();
    (flat_weights(&run.learner.model), rows)
}

#[test]
fn interrupted_and_resumed_run_ends_with_identical_weights() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (straight, rows) = run(toy_config(3), a.path(), false);
    assert_eq!(rows.len(), 3);
    run(toy_config(1), b.path(), false);
    let (resumed, resumed_rows) = run(toy_config(3), b.path(), true);
    assert_eq!(resumed_rows.len(), 2, "resume starts at iteration 1");
    assert!(straight == resumed, "weights differ after resume");
    // The rollouts after the resume are the same as in the straight run (same sampler, seeds).
    let reward = |r: &MetricsRow| r.values["reward/mean"];
    assert_eq!(reward(&rows[2]), reward(&resumed_rows[1]));
    // The metrics file holds each iteration once, and an eval ran at iteration 1 (every 2).
    let text = std::fs::read_to_string(b.path().join("metrics.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(rows[1].values.contains_key("eval/reward_mean"));
    assert!(b.path().join("plots/reward_mean.svg").is_file());
    assert!(b.path().join("config.json").is_file());
    // Only the newest 2 checkpoints are kept.
    let ckpts = std::fs::read_dir(b.path().join("checkpoints"))
        .unwrap()
        .count();
    assert_eq!(ckpts, 3, "two checkpoint dirs plus `latest`");
}

#[test]
fn resume_without_checkpoint_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let learner = Learner::new(toy_model(5), AdamWConfig::default());
    let mut backend = ToyBackend::new(toy_model(5), 6);
    let mut run = DapoRun::new(toy_config(2), learner, dir.path(), pool()).unwrap();
    let err = run.run(&mut backend, true, &BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("no complete checkpoint"), "{err}");
}

#[test]
fn dapo_raises_the_mean_reward() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = toy_config(10);
    config.eval_every = 0;
    config.lr = 3e-3;
    let (_, rows) = run(config, dir.path(), false);
    let reward: Vec<f64> = rows.iter().map(|r| r.values["reward/mean"]).collect();
    let first = (reward[0] + reward[1]) / 2.0;
    let last = (reward[8] + reward[9]) / 2.0;
    eprintln!("mean reward per iteration: {reward:?}");
    // A random policy earns about 1/4; learning must clearly beat the first iterations.
    assert!(
        first < 0.4,
        "toy task is not trivially solved at the start: {reward:?}"
    );
    assert!(last > first + 0.3, "reward did not rise: {reward:?}");
    // Groups with unequal rewards were trained on, and the clip-higher loss reported metrics.
    assert!(rows.iter().all(|r| r.values["samples/trained"] > 0.0));
    assert!(rows.iter().all(|r| r.values.contains_key("clip/high")));
    // The sampler is synced after every update: its log-probs equal the trainer's recompute
    // (same weights, same f32 CPU kernels), so the sampler/trainer KL stays at 0.
    assert!(rows
        .iter()
        .all(|r| r.values["kl/sampler_trainer"].abs() < 1e-6));
}

#[test]
fn pool_filter_drops_easy_and_never_solved_tasks() {
    let t = |task: &str, resolved: bool| trajectory(task, 0, &[1], &[5], &[-1.0], 0.0, resolved);
    let trajs = vec![
        t("easy", true),
        t("easy", true),
        t("easy", false),
        t("hard", false),
        t("hard", false),
        t("mid", true),
        t("mid", false),
        t("mid", false),
    ];
    let pool: Vec<String> = ["easy", "hard", "mid", "unseen"].map(String::from).to_vec();
    let f = filter_pool(&pool, &trajs, 2.0 / 3.0);
    assert_eq!(f.kept, ["mid", "unseen"]);
    assert_eq!(f.dropped_easy, ["easy"]);
    assert_eq!(f.dropped_never_solved, ["hard"]);
    assert_eq!(f.unobserved, ["unseen"]);
}

#[test]
fn infrastructure_failures_are_counted_never_scored() {
    use swerl_train::batch::Truncation;
    use swerl_train::dapo_loop::{prepare_sequences, Rollouts};
    use swerl_train::dapo_metrics::{iteration_row, TrainSummary};
    let t = |i: u32, reward: f64| {
        trajectory("t0", i, &[1], &[5, 6], &[-1.0, -1.0], reward, reward > 0.5)
    };
    let mut lost = t(2, 0.0);
    lost.status = swerl_trajectory::EpisodeStatus::EnvError;
    lost.reward = None;
    lost.grade = None;
    let rollouts = Rollouts {
        trajectories: vec![t(0, 1.0), t(1, 0.0), lost],
        ..Rollouts::default()
    };
    let (seqs, selection, _) =
        prepare_sequences(&rollouts.trajectories, &toy_config(1), 0).unwrap();
    assert_eq!((seqs.len(), selection.infra_failures), (2, 1));
    let row = iteration_row(
        0,
        &rollouts,
        &selection,
        &Truncation::default(),
        &TrainSummary::default(),
    );
    // Reward and resolved rate over the two scored episodes only: the lost one is not a 0.
    assert_eq!(row.values["reward/mean"], 0.5);
    assert_eq!(row.values["resolved_rate"], 0.5);
    assert_eq!(row.values["dropped/infra"], 1.0);
    assert_eq!(row.values["rollouts"], 3.0);
}

/// Tasks whose outcome is fixed by their name: `easy-*` always resolved, `hard-*` never,
/// `mid-*` resolved on even sample indices. Records every call.
#[derive(Default)]
struct OutcomeBackend {
    collected: Vec<Vec<String>>,
    refills: Vec<(u32, Vec<String>)>,
}

impl OutcomeBackend {
    fn rollouts(tasks: &[String], g: usize) -> Rollouts {
        let mut trajectories = Vec::new();
        for task in tasks {
            for s in 0..g as u32 {
                let resolved = task.starts_with("easy") || (task.starts_with("mid") && s % 2 == 0);
                let reward = if resolved { 1.0 } else { 0.0 };
                trajectories.push(trajectory(
                    task,
                    s,
                    &[1, 2],
                    &[3, 4],
                    &[-1.0, -1.0],
                    reward,
                    resolved,
                ));
            }
        }
        Rollouts {
            trajectories,
            ..Rollouts::default()
        }
    }
}

impl RolloutBackend for OutcomeBackend {
    fn collect(&mut self, _: u64, tasks: &[String], g: usize) -> Result<Rollouts, BackendError> {
        self.collected.push(tasks.to_vec());
        Ok(Self::rollouts(tasks, g))
    }

    fn refill(
        &mut self,
        _: u64,
        round: u32,
        tasks: &[String],
        g: usize,
    ) -> Result<Rollouts, BackendError> {
        self.refills.push((round, tasks.to_vec()));
        Ok(Self::rollouts(tasks, g))
    }

    fn sync(&mut self, _: &Learner, _: &Path) -> Result<(), BackendError> {
        Ok(())
    }
}

fn outcome_pool() -> Vec<String> {
    ["easy", "hard", "mid"]
        .iter()
        .flat_map(|kind| (0..4).map(move |k| format!("{kind}-{k}")))
        .collect()
}

fn outcome_config(filter: SampleFilter) -> DapoConfig {
    let mut c = toy_config(1);
    c.problems_per_iteration = 3;
    c.group_size = 2;
    c.batch_trajectories = 6;
    c.eval_every = 0;
    c.sample_filter = filter;
    c.refill_rounds = 4;
    c
}

/// DAPO's dynamic sampling: groups all resolved or all unresolved are dropped and more
/// problems are drawn, never one already collected, until P informative groups are found;
/// only those are trained on. The paper's default never refills.
#[test]
fn dynamic_sampling_refills_with_informative_groups_only() {
    let dir = tempfile::tempdir().unwrap();
    let learner = Learner::new(toy_model(5), AdamWConfig::default());
    let mut backend = OutcomeBackend::default();
    let config = outcome_config(SampleFilter::DynamicSampling);
    let mut run = DapoRun::new(config, learner, dir.path(), outcome_pool()).unwrap();
    let rows = run.run(&mut backend, false, &BTreeMap::new()).unwrap();
    assert!(
        !backend.refills.is_empty(),
        "seed 11's first draw must lack informative groups for this test to mean anything: {:?}",
        backend.collected
    );
    let mut seen: Vec<&String> = backend.collected[0].iter().collect();
    for (i, (round, tasks)) in backend.refills.iter().enumerate() {
        assert_eq!(*round as usize, i + 1);
        for t in tasks {
            assert!(!seen.contains(&t), "{t} collected twice");
            seen.push(t);
        }
    }
    let mids = seen.iter().filter(|t| t.starts_with("mid")).count();
    let row = &rows[0].values;
    assert!(mids >= 3 || seen.len() == 12, "stopped early: {seen:?}");
    assert_eq!(row["samples/trained"], 2.0 * mids.min(3) as f64, "{row:?}");
    assert_eq!(
        row["dynamic/refill_problems"],
        (seen.len() - 3) as f64,
        "{row:?}"
    );
    assert_eq!(
        row["dropped/group_filter"],
        (2 * seen.len()) as f64 - row["samples/trained"],
        "{row:?}"
    );
    // The record keeps every collected episode, refills included.
    let saved = std::fs::read_to_string(dir.path().join("rollouts/iter-000000.jsonl")).unwrap();
    assert_eq!(saved.lines().count(), 2 * seen.len());

    let dir = tempfile::tempdir().unwrap();
    let learner = Learner::new(toy_model(5), AdamWConfig::default());
    let mut plain = OutcomeBackend::default();
    let config = outcome_config(SampleFilter::ZeroAdvantage);
    let mut run = DapoRun::new(config, learner, dir.path(), outcome_pool()).unwrap();
    let rows = run.run(&mut plain, false, &BTreeMap::new()).unwrap();
    assert!(plain.refills.is_empty());
    assert!(!rows[0].values.contains_key("dynamic/refill_problems"));
}
