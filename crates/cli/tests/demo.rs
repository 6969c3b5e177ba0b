//! `swerl demo --quick` end to end: every stage of the pipeline (tokenizer, starting model,
//! base evaluation, RFT, DAPO stage 1 and 2, evaluations) runs for real in sandboxes; the run
//! folder holds the table, the report and the plots; a rerun after removing the last stages'
//! markers resumes them (stored episodes and checkpoints are reused, nothing is redone); a
//! rerun with another plan is refused.

mod common;

use common::{require_sandbox, swerl, text};
use std::path::Path;

const STAGES: [&str; 11] = [
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
];

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn quick_demo_runs_every_stage_reports_and_resumes() {
    require_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let out = swerl(&["demo", "--quick", "--out", run_s]);
    assert!(out.status.success(), "{}", text(&out));
    for stage in STAGES {
        assert!(
            run.join(stage).join("stage.json").is_file(),
            "{stage} unfinished"
        );
    }

    // The stand-in base model was trained on fixes and on premature submissions alike.
    let premature = run.join("demonstrations/premature/trajectories.jsonl");
    let premature = swerl_rollout::read_trajectories(&premature).unwrap();
    assert_eq!(
        premature.len(),
        2,
        "one premature submission per train task"
    );
    assert!(premature
        .iter()
        .all(|t| t.grade.as_ref().is_some_and(|g| !g.resolved)));
    let pretrain: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("pretrain/model/rft_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(pretrain["selection"]["kept"], 4, "{pretrain}");

    // Table 1: one row per stage; both splits evaluated with k = 2 runs.
    let table = std::fs::read_to_string(run.join("table.md")).unwrap();
    for row in [
        "| Base (SFT on demonstrations) |",
        "| RFT |",
        "| DAPO stage 1 |",
        "| DAPO stage 2 |",
    ] {
        assert!(table.contains(row), "{row} missing:\n{table}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4);
    for s in stages {
        // Two train tasks and one held-out task, two runs each; nothing failed for
        // infrastructure reasons.
        assert_eq!(s["train"]["episodes"], 4, "{s}");
        assert_eq!(s["heldout"]["episodes"], 2, "{s}");
        assert_eq!(s["train"]["infra_failures"], 0, "{s}");
        assert_eq!(s["train"]["pass_at_k"]["k"], 2, "{s}");
    }
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("Table 1"));
    assert_eq!(html.matches("<svg").count(), 4);
    assert!(html.contains("Turn 1 (model,"), "no trajectory rendered");
    for plot in ["pass_at_1.svg", "reward.svg", "turns.svg", "kl.svg"] {
        assert!(run.join("plots").join(plot).is_file(), "{plot}");
    }
    // The models of every stage load as whole model directories.
    let final_model = run.join("dapo-stage2/checkpoints");
    assert!(final_model.join("latest").is_file());
    let metrics = lines(&run.join("dapo-stage1/metrics.jsonl"));
    assert_eq!(metrics, 1, "one stage-1 iteration");

    // Resume: the last two stages lose their markers (as after a kill) and rerun from what
    // they stored: DAPO from its checkpoint, the evaluation from its episodes.
    let episodes = lines(&run.join("eval-stage2/trajectories.jsonl"));
    for stage in ["dapo-stage2", "eval-stage2"] {
        std::fs::remove_file(run.join(stage).join("stage.json")).unwrap();
    }
    let again = swerl(&["demo", "--quick", "--out", run_s]);
    let said = text(&again);
    assert!(again.status.success(), "{said}");
    assert!(said.contains("== pretrain: done before"), "{said}");
    assert!(
        said.contains("0 episodes run (6 already stored, skipped)"),
        "{said}"
    );
    assert_eq!(lines(&run.join("eval-stage2/trajectories.jsonl")), episodes);
    assert_eq!(
        lines(&run.join("dapo-stage2/metrics.jsonl")),
        1,
        "stage 2 ran again"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("table.md"))
            .unwrap()
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        table.lines().skip(1).collect::<Vec<_>>(),
        "the resumed run reports the same table"
    );

    // Another plan into the same folder is refused before anything runs.
    let other = swerl(&["demo", "--out", run_s]);
    assert!(!other.status.success());
    assert!(text(&other).contains("another plan"), "{}", text(&other));
}
