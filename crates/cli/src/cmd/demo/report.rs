//! Gathers the demo's results from its run folder into a [`swerl_report::Report`] and writes
//! `report.html`, `table.md`, `report.json` and `plots/*.svg`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use swerl_report::{
    plots, render_html, table1_markdown, task_changes, Curve, Example, Report, StageResult,
};
use swerl_rollout::read_trajectories;
use swerl_train::metrics_log::MetricsRow;
use swerl_trajectory::Trajectory;

use super::Demo;
use crate::common::write_atomic;

/// The Table 1 rows: (name, the stage whose model is evaluated, its evaluation stage).
const ROWS: [(&str, &str, &str); 4] = [
    ("Base (SFT on demonstrations)", "pretrain", "eval-base"),
    ("RFT", "rft", "eval-rft"),
    ("DAPO stage 1", "dapo-stage1", "eval-stage1"),
    ("DAPO stage 2", "dapo-stage2", "eval-stage2"),
];

/// Every stage in pipeline order (for the timing table).
const STAGES: [&str; 12] = [
    "tokenizer-and-init",
    "demonstrations",
    "pretrain",
    "eval-base",
    "rft-samples",
    "rft",
    "eval-rft",
    "dapo-stage1",
    "eval-stage1",
    "dapo-stage2",
    "eval-stage2",
    "report",
];

/// What [`write`] wrote.
pub struct Written {
    pub table: String,
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub improved: usize,
}

/// Builds the report of `demo` and writes its files; `wall_s` is this invocation's time.
pub fn write(demo: &Demo, wall_s: f64) -> anyhow::Result<Written> {
    let report = gather(demo, wall_s)?;
    let table = table1_markdown(&report.stages);
    let improved = task_changes(&report.stages)
        .iter()
        .filter(|c| c.improved())
        .count();
    let plot_dir = demo.out.join("plots");
    for plot in plots(&report) {
        write_atomic(&plot_dir.join(&plot.file), plot.svg.as_bytes())?;
    }
    let html = demo.out.join("report.html");
    write_atomic(&html, render_html(&report).as_bytes())?;
    let markdown = demo.out.join("table.md");
    let md = format!("{}\n\n{table}", report.provenance);
    write_atomic(&markdown, md.as_bytes())?;
    let json = serde_json::json!({
        "provenance": report.provenance,
        "stages": report.stages,
        "task_changes": task_changes(&report.stages),
        "timings_s": report.timings,
    });
    write_atomic(
        &demo.out.join("report.json"),
        &serde_json::to_vec_pretty(&json)?,
    )?;
    Ok(Written {
        table,
        html,
        markdown,
        improved,
    })
}

fn gather(demo: &Demo, wall_s: f64) -> anyhow::Result<Report> {
    let stages = ROWS
        .iter()
        .map(|(name, model_stage, eval_stage)| StageResult {
            stage: (*name).to_string(),
            model: demo
                .done(model_stage)
                .and_then(|d| d.model)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            train: demo.summary(eval_stage, "train"),
            heldout: demo.summary(eval_stage, "heldout"),
            note: demo.done(model_stage).and_then(|d| d.note),
        })
        .collect();
    let mut timings: Vec<(String, f64)> = STAGES
        .iter()
        .filter_map(|s| demo.done(s).map(|d| ((*s).to_string(), d.seconds)))
        .collect();
    timings.push((
        "this invocation (all stages it ran, and the report)".into(),
        wall_s,
    ));
    timings.retain(|(name, _)| name != "report");
    Ok(Report {
        title: format!(
            "swerl demo ({} preset): the pipeline in miniature",
            demo.plan.preset
        ),
        provenance: provenance(),
        notes: notes(demo),
        stages,
        curves: curves(&demo.out)?,
        examples: examples(demo)?,
        timings,
        config: serde_json::to_value(&demo.plan)?,
    })
}

/// Date, machine and command of this report.
fn provenance() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let command: Vec<String> = std::env::args().collect();
    format!(
        "Produced on {} UTC by `{}` (swerl {}) on {} cores, {}.",
        utc_now(),
        command.join(" "),
        env!("CARGO_PKG_VERSION"),
        cores,
        std::env::consts::ARCH
    )
}

/// `YYYY-MM-DD HH:MM` of the current time in UTC (civil-from-days, no time crate needed).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil(secs)
}

/// `YYYY-MM-DD HH:MM` of `secs` since the Unix epoch.
fn civil(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

fn notes(demo: &Demo) -> Vec<String> {
    let (m, p) = (&demo.plan.model, &demo.plan);
    let mut notes = vec![format!(
        "The starting model is not a pretrained instruct model: none can be downloaded on this \
         machine. It is a Qwen2-architecture model with {} layers of width {} and our own \
         byte-level BPE tokenizer ({} ids, trained on the bundled corpus), initialised at \
         random and then supervised on scripted demonstrations of the train split. It stands in \
         for the base instruct model of the paper; its numbers show the pipeline working, not a \
         capable agent.",
        m.layers, m.hidden, p.tokenizer.vocab_size
    )];
    if p.premature_copies > 0 {
        notes.push(format!(
            "Per train task it saw {} demonstration(s) that fix the issue and {} that reproduce \
             it, open the right file and submit without a fix (premature submission, a common \
             failure of real agents). So the base model sometimes fixes and sometimes gives up; \
             what RFT and DAPO can learn here is, from the reward alone, which of its own \
             behaviours to keep.",
            p.demo_copies, p.premature_copies
        ));
    }
    notes.extend([
        format!(
            "The held-out tasks are never demonstrated, sampled for RFT or trained on by DAPO; \
             they are reported apart. A model this small that has seen {} demonstrations is not \
             expected to solve them.",
            demo.task_ids(Some("train")).len()
        ),
        "The stage-2 row is evaluated with stage 2's longer turn and context limits, as in the \
         paper; the other rows with stage 1's."
            .into(),
    ]);
    notes
}

/// The DAPO metrics of both stages, in order.
fn curves(out: &Path) -> anyhow::Result<Vec<Curve>> {
    let mut curves = Vec::new();
    for stage in ["dapo-stage1", "dapo-stage2"] {
        let path = out.join(stage).join("metrics.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str::<MetricsRow>)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("reading {}", path.display()))?;
        curves.push(Curve {
            stage: stage.into(),
            rows,
        });
    }
    Ok(curves)
}

/// Whether a trajectory is the kind an example slot wants.
type Pick<'a> = dyn Fn(&Trajectory) -> bool + 'a;

/// A few trajectories: from the final evaluation a resolved and an unresolved train episode
/// and a held-out one, and the base model's first train episode for comparison.
fn examples(demo: &Demo) -> anyhow::Result<Vec<Example>> {
    let load = |stage: &str| -> anyhow::Result<Vec<Trajectory>> {
        let path = demo.out.join(stage).join(super::TRAJECTORIES);
        if !path.is_file() {
            return Ok(Vec::new());
        }
        Ok(read_trajectories(&path)?)
    };
    let split = |t: &Trajectory| demo.splits.get(&t.task_id).cloned().unwrap_or_default();
    let last = load("eval-stage2")?;
    let base = load("eval-base")?;
    let picks: [(&str, &[Trajectory], &Pick<'_>); 4] = [
        ("Base model, train task", &base, &|t| split(t) == "train"),
        ("DAPO stage 2, train task, resolved", &last, &|t| {
            split(t) == "train" && t.resolved()
        }),
        ("DAPO stage 2, train task, not resolved", &last, &|t| {
            split(t) == "train" && !t.resolved()
        }),
        ("DAPO stage 2, held-out task", &last, &|t| {
            split(t) == "heldout"
        }),
    ];
    Ok(picks
        .iter()
        .filter_map(|(label, from, pick)| {
            from.iter().find(|t| pick(t)).map(|t| Example {
                label: (*label).to_string(),
                trajectory: t.clone(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), "1970-01-01 00:00");
        assert_eq!(civil(951_782_400), "2000-02-29 00:00");
        assert_eq!(
            civil(1_796_169_600 + 3_600 * 13 + 60 * 7),
            "2026-12-02 13:07"
        );
    }
}
