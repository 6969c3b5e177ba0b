//! Table 1 (as Markdown, for the terminal and the README) and the per-task changes.

use std::collections::BTreeMap;

use serde::Serialize;
use swerl_rollout::EvalSummary;

use crate::{pass1, pass_k, pct, StageResult};

/// The paper's Table 1 for our stages: one row per stage, Pass@1 +- SEM and Pass@k on each
/// split, and the share of submits and mean turns over both splits together.
pub fn table1_markdown(stages: &[StageResult]) -> String {
    let mut out = String::from(
        "| stage | train Pass@1 (%) | train Pass@k (%) | held-out Pass@1 (%) | held-out Pass@k (%) | submit share (%) | mean turns |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in stages {
        let (train, heldout) = (s.train.as_ref(), s.heldout.as_ref());
        let (submit, turns) = pooled(&[train, heldout]);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            s.stage,
            pass1(train),
            pass_k(train),
            pass1(heldout),
            pass_k(heldout),
            submit.map_or_else(|| "-".into(), pct),
            turns.map_or_else(|| "-".into(), |t| format!("{t:.1}")),
        ));
    }
    out
}

/// Submit share and mean turns over the episodes of all given summaries (weighted by their
/// episode counts, so the two splits count as one evaluation).
fn pooled(summaries: &[Option<&EvalSummary>]) -> (Option<f64>, Option<f64>) {
    let present: Vec<&EvalSummary> = summaries
        .iter()
        .flatten()
        .copied()
        .filter(|s| s.episodes > 0)
        .collect();
    let n: usize = present.iter().map(|s| s.episodes).sum();
    if n == 0 {
        return (None, None);
    }
    let w = |f: fn(&EvalSummary) -> f64| {
        present
            .iter()
            .map(|s| f(s) * s.episodes as f64)
            .sum::<f64>()
            / n as f64
    };
    (Some(w(|s| s.submit_share)), Some(w(|s| s.mean_turns)))
}

/// One task's pass rate in the first and the last stage that evaluated it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskChange {
    pub task_id: String,
    /// `train` or `heldout`.
    pub split: String,
    pub first: f64,
    pub last: f64,
}

impl TaskChange {
    pub fn improved(&self) -> bool {
        self.last > self.first
    }
}

/// Every task's pass rate in the first and last stage, train tasks first, each split in id
/// order.
pub fn task_changes(stages: &[StageResult]) -> Vec<TaskChange> {
    let mut out = Vec::new();
    for split in ["train", "heldout"] {
        let pick = |s: &StageResult| match split {
            "train" => s.train.clone(),
            _ => s.heldout.clone(),
        };
        let evaluated: Vec<EvalSummary> = stages.iter().filter_map(pick).collect();
        let (Some(first), Some(last)) = (evaluated.first(), evaluated.last()) else {
            continue;
        };
        let rates = |s: &EvalSummary| -> BTreeMap<String, f64> {
            s.per_task
                .iter()
                .map(|t| (t.task_id.clone(), t.pass_at_1))
                .collect()
        };
        let (a, b) = (rates(first), rates(last));
        for (task, &first) in &a {
            out.push(TaskChange {
                task_id: task.clone(),
                split: split.into(),
                first,
                last: b.get(task).copied().unwrap_or(0.0),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::stage;

    #[test]
    fn table_has_one_row_per_stage_with_sem_and_pass_at_k() {
        let t = table1_markdown(&[stage("Base", 1), stage("RFT", 3)]);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 4, "{t}");
        // Task a resolves in 1 of 4 runs, b never: per-run rates 0.5, 0, 0, 0.
        // Mean 12.5 %, sample std 0.25, SEM 0.125 -> 12.5 %; Pass@4 = 50 %.
        assert!(
            rows[2].starts_with("| Base | 12.5 ± 12.5 | 50.0 (k=4) | 0.0 ± 0.0 |"),
            "{}",
            rows[2]
        );
        // Submits: a's resolved runs (1 of 8 train episodes, none of 8 held-out) -> 6.25 %.
        assert!(rows[2].ends_with("| 6.2 | 5.0 |"), "{}", rows[2]);
        assert!(rows[3].starts_with("| RFT | 37.5 ± "), "{}", rows[3]);
    }

    #[test]
    fn missing_summaries_print_dashes() {
        let mut s = stage("RFT", 0);
        s.train = None;
        s.heldout = None;
        let t = table1_markdown(&[s]);
        assert!(
            t.lines()
                .nth(2)
                .unwrap()
                .ends_with("| - | - | - | - | - | - |"),
            "{t}"
        );
    }

    #[test]
    fn changes_compare_first_and_last_stage() {
        let changes = task_changes(&[stage("Base", 1), stage("RFT", 2), stage("DAPO", 4)]);
        let a = changes
            .iter()
            .find(|c| c.task_id == "a" && c.split == "train")
            .unwrap();
        assert_eq!((a.first, a.last), (0.25, 1.0));
        assert!(a.improved());
        let b = changes
            .iter()
            .find(|c| c.task_id == "b" && c.split == "heldout")
            .unwrap();
        assert!(!b.improved());
        assert_eq!(changes.len(), 4);
    }
}
