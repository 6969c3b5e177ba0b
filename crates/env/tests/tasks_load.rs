//! Loading the 11 real SWE-bench Lite dev rows from JSON, JSONL and Parquet, and per-row
//! error reporting.

use std::path::{Path, PathBuf};
use swerl_env::spec::test_spec;
use swerl_env::task::{load_tasks, write_jsonl, write_parquet, ImageTemplate, Task};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/swebench-lite-dev")
}

fn load_clean(path: &Path) -> Vec<Task> {
    let loaded = load_tasks(path).unwrap();
    assert!(
        loaded.errors.is_empty(),
        "{}: {:?}",
        path.display(),
        loaded.errors
    );
    loaded.tasks
}

#[test]
fn real_rows_load_in_all_three_forms() {
    let json = load_clean(&fixtures().join("instances.json"));
    assert_eq!(json.len(), 11);
    assert_eq!(json[0].instance_id, "sqlfluff__sqlfluff-1517");
    assert_eq!(
        json[0].fail_to_pass,
        ["test/dialects/ansi_test.py::test__dialect__ansi_multiple_semicolons[select"]
    );
    assert!(json
        .iter()
        .all(|t| !t.fail_to_pass.is_empty() && !t.test_patch.is_empty()));
    assert!(
        json.iter().any(|t| t.pass_to_pass.is_empty()),
        "pydicom-901 has an empty PASS_TO_PASS"
    );
    assert_eq!(load_clean(&fixtures().join("instances.jsonl")), json);
    assert_eq!(load_clean(&fixtures().join("instances.parquet")), json);
}

/// SWE-bench rows name no image: the template gives each the name of SWE-bench's published
/// image; a SWE-rebench row's own image wins.
#[test]
fn real_rows_get_swebench_image_names_and_own_images_win() {
    let mut tasks = load_clean(&fixtures().join("instances.json"));
    assert!(tasks.iter().all(|t| t.environment_image().is_none()));
    tasks[1].image_name = Some("swerebench/own:1".into());
    let template = ImageTemplate::new("swebench/sweb.eval.x86_64.{swebench_id}:latest").unwrap();
    template.apply(&mut tasks);
    assert_eq!(tasks[0].instance_id, "sqlfluff__sqlfluff-1517");
    assert_eq!(
        tasks[0].environment_image(),
        Some("swebench/sweb.eval.x86_64.sqlfluff_1776_sqlfluff-1517:latest")
    );
    assert_eq!(tasks[1].environment_image(), Some("swerebench/own:1"));
    assert_eq!(
        ImageTemplate::new("reg/{instance_id}")
            .unwrap()
            .render("Org__Repo-1"),
        "reg/Org__Repo-1"
    );
    let err = ImageTemplate::new("one-image:latest").unwrap_err();
    assert!(err.contains("--image"), "{err}");
}

#[test]
fn every_real_row_has_a_test_spec() {
    for task in load_clean(&fixtures().join("instances.json")) {
        let spec = test_spec(&task).unwrap();
        assert!(
            spec.test_cmd.starts_with("pytest -rA "),
            "{}: {}",
            task.instance_id,
            spec.test_cmd
        );
        assert!(!spec.test_files.is_empty());
        for file in &spec.test_files {
            assert!(
                task.test_patch
                    .contains(&format!("diff --git a/{file} b/{file}")),
                "{file}"
            );
        }
    }
}

#[test]
fn written_files_round_trip_with_extra_fields() {
    let dir = tempfile::tempdir().unwrap();
    let mut tasks = load_clean(&fixtures().join("instances.json"));
    tasks[0].extra.insert("env_repo".into(), "calc".into());
    tasks[1].test_cmd = Some("python3 -m pytest -rA".into());
    tasks[1].meta = Some(serde_json::json!({"difficulty": 2}));
    write_jsonl(&dir.path().join("t.jsonl"), &tasks).unwrap();
    assert_eq!(load_clean(&dir.path().join("t.jsonl")), tasks);
    write_parquet(&dir.path().join("t.parquet"), &tasks).unwrap();
    let back = load_clean(&dir.path().join("t.parquet"));
    assert_eq!(back[0].extra_str("env_repo"), Some("calc"));
    assert_eq!(back[1].test_cmd.as_deref(), Some("python3 -m pytest -rA"));
    // Parquet stores non-string values JSON-encoded; the test lists decode back.
    assert_eq!(back[1].meta, Some(serde_json::json!("{\"difficulty\":2}")));
    assert_eq!(back[2..], tasks[2..]);
}

#[test]
fn malformed_rows_are_reported_and_others_load() {
    let dir = tempfile::tempdir().unwrap();
    let good = load_clean(&fixtures().join("instances.json"));
    let mut lines: Vec<String> = good[..3]
        .iter()
        .map(|t| serde_json::to_string(t).unwrap())
        .collect();
    let mut bad = serde_json::to_value(&good[3]).unwrap();
    bad["FAIL_TO_PASS"] = serde_json::json!(42);
    lines.insert(1, bad.to_string());
    lines.push("{not json".into());
    lines.push(serde_json::to_string(&good[0]).unwrap());
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();

    let loaded = load_tasks(&path).unwrap();
    assert_eq!(loaded.tasks.len(), 3);
    let messages: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(
        messages[0].contains("bad.jsonl: row 2: field `FAIL_TO_PASS`: expected a JSON list"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].contains("row 5") && messages[1].contains("not valid JSON"),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].contains("row 6: field `instance_id`: duplicate of row 1"),
        "{}",
        messages[2]
    );
}

#[test]
fn unknown_extension_and_non_array_json_are_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "a,b").unwrap();
    assert!(load_tasks(&csv)
        .unwrap_err()
        .to_string()
        .contains("use .json"));
    let obj = dir.path().join("t.json");
    std::fs::write(&obj, "{}").unwrap();
    assert!(load_tasks(&obj)
        .unwrap_err()
        .to_string()
        .contains("expected a JSON array"));
}

/// Regenerates instances.jsonl and instances.parquet from instances.json:
/// `cargo test -p swerl-env --test tasks_load -- --ignored regenerate_fixtures`.
#[test]
#[ignore]
fn regenerate_fixtures() {
    let tasks = load_clean(&fixtures().join("instances.json"));
    write_jsonl(&fixtures().join("instances.jsonl"), &tasks).unwrap();
    write_parquet(&fixtures().join("instances.parquet"), &tasks).unwrap();
}

/// Instance ids name directories and sandboxes: only a plain name is accepted.
#[test]
fn instance_ids_that_are_not_plain_names_are_row_errors() {
    let row = |id: &str| {
        serde_json::json!({"instance_id": id, "repo": "o/r", "problem_statement": "", "patch": "",
            "test_patch": "", "FAIL_TO_PASS": [], "PASS_TO_PASS": []})
    };
    for bad in [
        "/etc", "..", "a/b", ".hidden", "a\\b", "a b", "a\nb", "-rf", "x\0y",
    ] {
        let err = Task::from_json(row(bad)).expect_err(bad);
        assert_eq!(err.field, "instance_id", "{bad:?}: {err}");
    }
    let long = "a".repeat(300);
    assert!(Task::from_json(row(&long)).is_err());
    for good in [
        "django__django-11099",
        "swerl-bundled__cronlite-1",
        "a.b_c+d-1",
    ] {
        assert!(Task::from_json(row(good)).is_ok(), "{good}");
    }
}

/// Paths in a test patch are resolved inside the repository: absolute paths and `..` are a
/// named error, not a file the grader restores or deletes.
#[test]
fn test_patch_paths_must_stay_inside_the_repository() {
    for header in [
        "diff --git a//etc/passwd b//etc/passwd",
        "diff --git a/../outside.py b/../outside.py",
        "diff --git a/tests/../../x.py b/tests/../../x.py",
    ] {
        let task = Task::from_json(serde_json::json!({"instance_id": "x-1", "repo": "o/r",
            "problem_statement": "", "patch": "", "test_patch": format!("{header}\n"),
            "FAIL_TO_PASS": [], "PASS_TO_PASS": [], "test_cmd": "pytest", "log_parser": "pytest"}))
        .unwrap();
        let err = test_spec(&task).expect_err(header).to_string();
        assert!(err.contains("test_patch") && err.contains("x-1"), "{err}");
    }
}
