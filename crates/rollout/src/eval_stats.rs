//! Evaluation statistics over k runs per task (docs/method.md section 8), pure functions.
//!
//! - Pass@1: the resolve rate of each run (sample index r = run r), then the mean over runs
//!   with the standard error of the mean (sample standard deviation over runs / sqrt(runs)).
//! - Pass@k: per task with n >= k valid samples of which c resolved, the unbiased estimator
//!   1 - C(n-c, k) / C(n, k) (equal to "solved in at least one run" when n = k), averaged
//!   over tasks; tasks with fewer than k valid samples are left out and counted.
//! - Share of episodes ending in `submit`, mean turns per episode, and a per-task table.
//!
//! Infrastructure failures (env/policy errors, grader errors) are excluded from every rate
//! and counted separately: they say nothing about the policy.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use swerl_trajectory::{EpisodeStatus, Trajectory};

/// What the statistics need from one episode.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeOutcome {
    pub task_id: String,
    /// The run (sample index) this episode belongs to.
    pub run: u32,
    pub infra_failure: bool,
    pub resolved: bool,
    pub submitted: bool,
    pub turns: usize,
}

impl From<&Trajectory> for EpisodeOutcome {
    fn from(t: &Trajectory) -> Self {
        EpisodeOutcome {
            task_id: t.task_id.clone(),
            run: t.sample_index,
            infra_failure: t.is_infra_failure(),
            resolved: t.resolved(),
            submitted: t.status == EpisodeStatus::Submitted,
            turns: t.turns.len(),
        }
    }
}

/// The evaluation summary (also written as the JSON summary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    pub tasks: usize,
    pub runs: usize,
    /// Episodes counted (infrastructure failures excluded).
    pub episodes: usize,
    pub infra_failures: usize,
    pub pass_at_1: f64,
    /// `None` with fewer than two runs.
    pub pass_at_1_sem: Option<f64>,
    pub pass_at_k: Option<PassAtK>,
    pub submit_share: f64,
    pub mean_turns: f64,
    pub per_run: Vec<RunRow>,
    pub per_task: Vec<TaskRow>,
}

/// Pass@k over the tasks that have at least k valid samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassAtK {
    pub k: usize,
    pub value: f64,
    pub tasks_used: usize,
    /// Tasks with fewer than k valid samples.
    pub tasks_skipped: usize,
}

/// One run's resolve rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub run: u32,
    pub episodes: usize,
    pub resolved: usize,
    pub rate: f64,
}

/// One task's line of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    pub task_id: String,
    /// Valid samples (infrastructure failures excluded).
    pub samples: usize,
    pub resolved: usize,
    pub submitted: usize,
    pub infra_failures: usize,
    pub mean_turns: f64,
    /// resolved / samples (0 when there are no valid samples).
    pub pass_at_1: f64,
}

/// Computes the summary; `k` is the Pass@k to report (usually the number of runs).
pub fn summarize(outcomes: &[EpisodeOutcome], k: usize) -> EvalSummary {
    let valid: Vec<&EpisodeOutcome> = outcomes.iter().filter(|o| !o.infra_failure).collect();
    let per_run = per_run(&valid);
    let rates: Vec<f64> = per_run.iter().map(|r| r.rate).collect();
    let per_task = per_task(outcomes);
    EvalSummary {
        tasks: per_task.len(),
        runs: per_run.len(),
        episodes: valid.len(),
        infra_failures: outcomes.len() - valid.len(),
        pass_at_1: mean(&rates),
        pass_at_1_sem: sem(&rates),
        pass_at_k: pass_at_k_over_tasks(&per_task, k),
        submit_share: share(valid.iter().filter(|o| o.submitted).count(), valid.len()),
        mean_turns: mean(&valid.iter().map(|o| o.turns as f64).collect::<Vec<_>>()),
        per_run,
        per_task,
    }
}

/// The unbiased Pass@k estimator 1 - C(n-c, k) / C(n, k) for n samples with c correct,
/// in the numerically stable product form 1 - prod_{i=n-c+1..=n} (1 - k/i)
/// (no factorials, no overflow). Requires k <= n.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(
        k >= 1 && k <= n && c <= n,
        "pass_at_k needs 1 <= k <= n and c <= n, got n={n} c={c} k={k}"
    );
    if n - c < k {
        return 1.0;
    }
    1.0 - ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product::<f64>()
}

fn per_run(valid: &[&EpisodeOutcome]) -> Vec<RunRow> {
    let mut runs: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for o in valid {
        let e = runs.entry(o.run).or_default();
        e.0 += 1;
        e.1 += usize::from(o.resolved);
    }
    runs.into_iter()
        .map(|(run, (episodes, resolved))| RunRow {
            run,
            episodes,
            resolved,
            rate: share(resolved, episodes),
        })
        .collect()
}

fn per_task(outcomes: &[EpisodeOutcome]) -> Vec<TaskRow> {
    let mut tasks: BTreeMap<&str, Vec<&EpisodeOutcome>> = BTreeMap::new();
    for o in outcomes {
        tasks.entry(&o.task_id).or_default().push(o);
    }
    tasks
        .into_iter()
        .map(|(task_id, all)| task_row(task_id, &all))
        .collect()
}

fn task_row(task_id: &str, all: &[&EpisodeOutcome]) -> TaskRow {
    let valid: Vec<_> = all.iter().filter(|o| !o.infra_failure).collect();
    let resolved = valid.iter().filter(|o| o.resolved).count();
    TaskRow {
        task_id: task_id.to_string(),
        samples: valid.len(),
        resolved,
        submitted: valid.iter().filter(|o| o.submitted).count(),
        infra_failures: all.len() - valid.len(),
        mean_turns: mean(&valid.iter().map(|o| o.turns as f64).collect::<Vec<_>>()),
        pass_at_1: share(resolved, valid.len()),
    }
}

fn pass_at_k_over_tasks(rows: &[TaskRow], k: usize) -> Option<PassAtK> {
    if k == 0 {
        return None;
    }
    let used: Vec<f64> = rows
        .iter()
        .filter(|r| r.samples >= k)
        .map(|r| pass_at_k(r.samples, r.resolved, k))
        .collect();
    Some(PassAtK {
        k,
        value: mean(&used),
        tasks_used: used.len(),
        tasks_skipped: rows.len() - used.len(),
    })
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Standard error of the mean with the sample (n - 1) standard deviation.
fn sem(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs);
    let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    Some((var / xs.len() as f64).sqrt())
}

/// A plain-text rendering: the headline numbers, then one row per task.
pub fn render(summary: &EvalSummary) -> String {
    let pct = |x: f64| format!("{:.1}", 100.0 * x);
    let mut out =
        format!(
        "Pass@1 {}%{} over {} runs, {} tasks, {} episodes ({} infrastructure failures excluded)\n",
        pct(summary.pass_at_1),
        summary.pass_at_1_sem.map_or(String::new(), |s| format!(" +- {}%", pct(s))),
        summary.runs,
        summary.tasks,
        summary.episodes,
        summary.infra_failures,
    );
    if let Some(p) = &summary.pass_at_k {
        out += &format!(
            "Pass@{} {}% over {} tasks ({} with fewer than {} samples left out)\n",
            p.k,
            pct(p.value),
            p.tasks_used,
            p.tasks_skipped,
            p.k
        );
    }
    out += &format!(
        "submitted {}% of episodes, {:.1} turns on average\n\n",
        pct(summary.submit_share),
        summary.mean_turns
    );
    out += &format!(
        "{:<40} {:>7} {:>8} {:>9} {:>5} {:>6} {:>7}\n",
        "task", "samples", "resolved", "submitted", "infra", "turns", "pass@1"
    );
    for r in &summary.per_task {
        out += &format!(
            "{:<40} {:>7} {:>8} {:>9} {:>5} {:>6.1} {:>7}\n",
            r.task_id,
            r.samples,
            r.resolved,
            r.submitted,
            r.infra_failures,
            r.mean_turns,
            pct(r.pass_at_1)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(task: &str, run: u32, resolved: bool, submitted: bool, turns: usize) -> EpisodeOutcome {
        EpisodeOutcome {
            task_id: task.into(),
            run,
            infra_failure: false,
            resolved,
            submitted,
            turns,
        }
    }

    /// Three tasks, two runs; C's second run is an infrastructure failure.
    fn golden() -> Vec<EpisodeOutcome> {
        let mut c1 = o("C", 1, false, false, 3);
        c1.infra_failure = true;
        vec![
            o("A", 0, true, true, 5),
            o("A", 1, true, true, 7),
            o("B", 0, true, true, 12),
            o("B", 1, false, false, 40),
            o("C", 0, false, true, 10),
            c1,
        ]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn golden_summary_by_hand() {
        let s = summarize(&golden(), 2);
        // Run 0: A, B of A, B, C resolved = 2/3. Run 1: A of A, B = 1/2 (C excluded).
        assert_eq!(
            s.per_run
                .iter()
                .map(|r| (r.resolved, r.episodes))
                .collect::<Vec<_>>(),
            [(2, 3), (1, 2)]
        );
        assert!(close(s.pass_at_1, 7.0 / 12.0), "{}", s.pass_at_1);
        // Sample std of {2/3, 1/2} is sqrt(2) / 12; divided by sqrt(2) runs: 1/12.
        assert!(
            close(s.pass_at_1_sem.unwrap(), 1.0 / 12.0),
            "{:?}",
            s.pass_at_1_sem
        );
        // Pass@2: A (2 of 2) = 1, B (1 of 2) = 1, C has 1 valid sample: left out.
        let p = s.pass_at_k.unwrap();
        assert_eq!((p.value, p.tasks_used, p.tasks_skipped), (1.0, 2, 1));
        assert!(close(s.submit_share, 4.0 / 5.0));
        assert!(close(s.mean_turns, 74.0 / 5.0));
        assert_eq!(
            (s.tasks, s.runs, s.episodes, s.infra_failures),
            (3, 2, 5, 1)
        );
    }

    #[test]
    fn golden_per_task_rows() {
        let s = summarize(&golden(), 2);
        let rows: Vec<_> = s
            .per_task
            .iter()
            .map(|r| {
                (
                    r.task_id.as_str(),
                    r.samples,
                    r.resolved,
                    r.submitted,
                    r.infra_failures,
                    r.mean_turns,
                    r.pass_at_1,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("A", 2, 2, 2, 0, 6.0, 1.0),
                ("B", 2, 1, 1, 0, 26.0, 0.5),
                ("C", 1, 0, 1, 1, 10.0, 0.0)
            ]
        );
        let text = render(&s);
        assert!(text.starts_with("Pass@1 58.3% +- 8.3% over 2 runs, 3 tasks, 5 episodes (1 infrastructure failures excluded)"), "{text}");
    }

    #[test]
    fn pass_at_k_by_hand() {
        // 1 - C(3,2)/C(5,2) = 1 - 3/10.
        assert!(close(pass_at_k(5, 2, 2), 0.7));
        // 1 - C(9,1)/C(10,1) = 0.1: Pass@1 is c/n.
        assert!(close(pass_at_k(10, 1, 1), 0.1));
        // 1 - C(7,3)/C(10,3) = 1 - 35/120.
        assert!(close(pass_at_k(10, 3, 3), 1.0 - 35.0 / 120.0));
        assert_eq!(pass_at_k(4, 0, 2), 0.0);
        assert_eq!(pass_at_k(4, 3, 2), 1.0);
        // n = k: solved in at least one run.
        assert_eq!(pass_at_k(3, 1, 3), 1.0);
    }

    #[test]
    fn pass_at_k_matches_binomials_on_a_grid() {
        let binom = |n: u64, k: u64| {
            if k > n {
                return 0.0;
            }
            (0..k).fold(1.0f64, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
        };
        for n in 1..=20usize {
            for c in 0..=n {
                for k in 1..=n {
                    let direct = 1.0 - binom((n - c) as u64, k as u64) / binom(n as u64, k as u64);
                    let stable = pass_at_k(n, c, k);
                    assert!(
                        (direct - stable).abs() < 1e-9,
                        "n={n} c={c} k={k}: {direct} vs {stable}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_single_run_has_no_sem_and_empty_input_is_zeros() {
        let s = summarize(&[o("A", 0, true, true, 3)], 1);
        assert_eq!((s.pass_at_1, s.pass_at_1_sem), (1.0, None));
        let e = summarize(&[], 1);
        assert_eq!(
            (e.pass_at_1, e.episodes, e.pass_at_k.unwrap().tasks_used),
            (0.0, 0, 0)
        );
    }
}
