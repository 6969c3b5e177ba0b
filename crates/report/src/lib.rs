//! Reports of a run: the paper's Table 1 for our model (Pass@1 +- SEM and Pass@k per stage,
//! share of submits, mean turns, train and held-out splits apart), the tasks whose pass rate
//! changed, SVG plots of the DAPO curves, and one self-contained HTML page with the table,
//! the plots and a few trajectories rendered turn by turn with their diffs.
//!
//! Pure rendering: the caller reads summaries, metrics and trajectories and writes the
//! strings this crate returns. Nothing here does I/O, so every output is unit-testable.

mod html;
mod plots;
mod table;

use serde::Serialize;
use swerl_rollout::EvalSummary;
use swerl_train::metrics_log::MetricsRow;
use swerl_trajectory::Trajectory;

pub use html::render_html;
pub use plots::{plots, Plot};
pub use table::{table1_markdown, task_changes, TaskChange};

/// One row of Table 1: one stage's model, evaluated on the train and held-out splits.
#[derive(Debug, Clone, Serialize)]
pub struct StageResult {
    /// The stage's name, e.g. `RFT` or `DAPO stage 1`.
    pub stage: String,
    /// Where the stage's model is.
    pub model: String,
    pub train: Option<EvalSummary>,
    pub heldout: Option<EvalSummary>,
    /// What the reader must know about this row (e.g. "nothing resolved: RFT skipped").
    pub note: Option<String>,
}

/// The per-iteration metrics of one DAPO stage.
#[derive(Debug, Clone)]
pub struct Curve {
    pub stage: String,
    pub rows: Vec<MetricsRow>,
}

/// A trajectory to show turn by turn.
#[derive(Debug, Clone)]
pub struct Example {
    /// Why it is shown, e.g. "DAPO stage 2, held-out, unresolved".
    pub label: String,
    pub trajectory: Trajectory,
}

/// Everything one report shows.
#[derive(Debug, Clone)]
pub struct Report {
    pub title: String,
    /// When, where and by which command the numbers were produced.
    pub provenance: String,
    /// Paragraphs the reader must see before the numbers (what the model is, what it is not).
    pub notes: Vec<String>,
    pub stages: Vec<StageResult>,
    pub curves: Vec<Curve>,
    pub examples: Vec<Example>,
    /// Wall seconds per pipeline stage, in order.
    pub timings: Vec<(String, f64)>,
    /// The resolved configuration of the run.
    pub config: serde_json::Value,
}

/// `12.5` for a rate of 0.125 (percent with one decimal).
pub(crate) fn pct(rate: f64) -> String {
    format!("{:.1}", rate * 100.0)
}

/// `Pass@1 +- SEM` in percent, or `-` without a summary.
pub(crate) fn pass1(s: Option<&EvalSummary>) -> String {
    match s {
        None => "-".into(),
        Some(s) => match s.pass_at_1_sem {
            Some(sem) => format!("{} ± {}", pct(s.pass_at_1), pct(sem)),
            None => pct(s.pass_at_1),
        },
    }
}

/// `Pass@k` in percent with its k, or `-`.
pub(crate) fn pass_k(s: Option<&EvalSummary>) -> String {
    s.and_then(|s| s.pass_at_k.as_ref())
        .map_or_else(|| "-".into(), |p| format!("{} (k={})", pct(p.value), p.k))
}

#[cfg(test)]
pub(crate) mod testdata {
    use super::*;
    use swerl_rollout::{summarize, EpisodeOutcome};

    /// A summary of `runs` runs over tasks `a` and `b` where `a` resolves in the first
    /// `a_resolved` runs and `b` never does.
    pub fn summary(runs: u32, a_resolved: u32) -> EvalSummary {
        let mut outcomes = Vec::new();
        for run in 0..runs {
            for (task, resolved) in [("a", run < a_resolved), ("b", false)] {
                outcomes.push(EpisodeOutcome {
                    task_id: task.into(),
                    run,
                    infra_failure: false,
                    resolved,
                    submitted: resolved,
                    turns: 5,
                });
            }
        }
        summarize(&outcomes, runs as usize)
    }

    pub fn stage(name: &str, a_resolved: u32) -> StageResult {
        StageResult {
            stage: name.into(),
            model: format!("runs/{name}"),
            train: Some(summary(4, a_resolved)),
            heldout: Some(summary(4, 0)),
            note: None,
        }
    }
}
