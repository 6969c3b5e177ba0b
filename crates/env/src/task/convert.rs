//! Field-by-field conversion between JSON objects and [`Task`]s.

use super::{FieldError, Task};
use serde_json::{Map, Value};

/// Fields the task type models; everything else goes to `extra`.
const KNOWN: [&str; 19] = [
    "instance_id",
    "repo",
    "base_commit",
    "problem_statement",
    "patch",
    "test_patch",
    "FAIL_TO_PASS",
    "PASS_TO_PASS",
    "version",
    "environment_setup_commit",
    "created_at",
    "hints_text",
    "docker_image",
    "image_name",
    "install_config",
    "requirements",
    "meta",
    "test_cmd",
    "log_parser",
];

/// A short name for a JSON value's kind, for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn err(field: &str, message: String) -> FieldError {
    FieldError {
        field: field.to_string(),
        message,
    }
}

pub(super) fn task_from_json(value: Value) -> Result<Task, FieldError> {
    let Value::Object(mut obj) = value else {
        return Err(err(
            "<row>",
            format!(
                "expected a JSON object with the task's fields, found {}",
                kind(&value)
            ),
        ));
    };
    let task = Task {
        instance_id: required_str(&mut obj, "instance_id")?,
        repo: required_str(&mut obj, "repo")?,
        base_commit: optional_str(&mut obj, "base_commit")?.unwrap_or_default(),
        problem_statement: required_str(&mut obj, "problem_statement")?,
        patch: required_str(&mut obj, "patch")?,
        test_patch: required_str(&mut obj, "test_patch")?,
        fail_to_pass: test_list(&mut obj, "FAIL_TO_PASS")?,
        pass_to_pass: test_list(&mut obj, "PASS_TO_PASS")?,
        version: version(&mut obj)?,
        environment_setup_commit: optional_str(&mut obj, "environment_setup_commit")?
            .unwrap_or_default(),
        created_at: optional_str(&mut obj, "created_at")?.unwrap_or_default(),
        hints_text: optional_str(&mut obj, "hints_text")?.unwrap_or_default(),
        docker_image: optional_str(&mut obj, "docker_image")?,
        image_name: optional_str(&mut obj, "image_name")?,
        install_config: optional_any(&mut obj, "install_config"),
        requirements: optional_any(&mut obj, "requirements"),
        meta: optional_any(&mut obj, "meta"),
        test_cmd: optional_str(&mut obj, "test_cmd")?,
        log_parser: optional_str(&mut obj, "log_parser")?,
        extra: Map::new(),
    };
    let task = Task { extra: obj, ..task };
    check_names(&task)?;
    Ok(task)
}

/// Ids and repos must be non-empty: they name directories and select test commands. The id
/// and an `env_repo` are untrusted names of host directories (see `crate::paths`).
fn check_names(task: &Task) -> Result<(), FieldError> {
    for (field, value) in [("instance_id", &task.instance_id), ("repo", &task.repo)] {
        if value.trim().is_empty() {
            return Err(err(field, "expected a non-empty string".into()));
        }
    }
    crate::paths::check_instance_id(&task.instance_id).map_err(|m| err("instance_id", m))?;
    if let Some(env_repo) = task.extra.get("env_repo") {
        let env_repo = env_repo.as_str().ok_or_else(|| {
            err(
                "env_repo",
                format!("expected a string, found {}", kind(env_repo)),
            )
        })?;
        crate::paths::relative_path("env_repo", env_repo).map_err(|e| err("env_repo", e.reason))?;
    }
    Ok(())
}

fn required_str(obj: &mut Map<String, Value>, field: &str) -> Result<String, FieldError> {
    match obj.remove(field) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(err(
            field,
            format!("expected a string, found {}", kind(&other)),
        )),
        None => Err(err(field, "missing; expected a string".into())),
    }
}

fn optional_str(obj: &mut Map<String, Value>, field: &str) -> Result<Option<String>, FieldError> {
    match obj.remove(field) {
        Some(Value::String(s)) => Ok(Some(s)),
        None | Some(Value::Null) => Ok(None),
        Some(other) => Err(err(
            field,
            format!("expected a string or null, found {}", kind(&other)),
        )),
    }
}

fn optional_any(obj: &mut Map<String, Value>, field: &str) -> Option<Value> {
    obj.remove(field).filter(|v| !v.is_null())
}

/// `version` is a string in SWE-bench; some exports write it as a number (`0.6`).
fn version(obj: &mut Map<String, Value>) -> Result<String, FieldError> {
    match obj.remove("version") {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => {
            obj.insert("version".into(), other);
            Ok(optional_str(obj, "version")?.unwrap_or_default())
        }
        None => Ok(String::new()),
    }
}

/// FAIL_TO_PASS / PASS_TO_PASS: a JSON list of strings, or a string holding one (the
/// Hugging Face form).
fn test_list(obj: &mut Map<String, Value>, field: &str) -> Result<Vec<String>, FieldError> {
    const EXPECTED: &str =
        "expected a JSON list of test ids or a JSON-encoded string of such a list";
    let value = match obj.remove(field) {
        None => return Err(err(field, format!("missing; {EXPECTED}"))),
        Some(Value::String(s)) => serde_json::from_str(&s).map_err(|e| {
            err(
                field,
                format!("{EXPECTED}, found a string that is not JSON ({e})"),
            )
        })?,
        Some(v) => v,
    };
    let Value::Array(items) = value else {
        return Err(err(field, format!("{EXPECTED}, found {}", kind(&value))));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s),
            other => Err(err(
                field,
                format!("{EXPECTED}; item {i} is {}", kind(&other)),
            )),
        })
        .collect()
}

pub(super) fn task_to_json(task: &Task) -> Value {
    let mut obj = Map::new();
    let mut put = |k: &str, v: Value| {
        obj.insert(k.to_string(), v);
    };
    put("instance_id", task.instance_id.clone().into());
    put("repo", task.repo.clone().into());
    put("base_commit", task.base_commit.clone().into());
    put("problem_statement", task.problem_statement.clone().into());
    put("patch", task.patch.clone().into());
    put("test_patch", task.test_patch.clone().into());
    put("FAIL_TO_PASS", task.fail_to_pass.clone().into());
    put("PASS_TO_PASS", task.pass_to_pass.clone().into());
    put("version", task.version.clone().into());
    put(
        "environment_setup_commit",
        task.environment_setup_commit.clone().into(),
    );
    put("created_at", task.created_at.clone().into());
    put("hints_text", task.hints_text.clone().into());
    put_optional(&mut obj, task);
    for (k, v) in &task.extra {
        if !KNOWN.contains(&k.as_str()) {
            obj.insert(k.clone(), v.clone());
        }
    }
    Value::Object(obj)
}

fn put_optional(obj: &mut Map<String, Value>, task: &Task) {
    let strings = [
        ("docker_image", &task.docker_image),
        ("image_name", &task.image_name),
        ("test_cmd", &task.test_cmd),
        ("log_parser", &task.log_parser),
    ];
    for (k, v) in strings {
        if let Some(v) = v {
            obj.insert(k.into(), v.clone().into());
        }
    }
    let values = [
        ("install_config", &task.install_config),
        ("requirements", &task.requirements),
        ("meta", &task.meta),
    ];
    for (k, v) in values {
        if let Some(v) = v {
            obj.insert(k.into(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row() -> Value {
        json!({"instance_id": "o__r-1", "repo": "o/r", "base_commit": "abc", "problem_statement": "p",
               "patch": "", "test_patch": "", "FAIL_TO_PASS": "[\"t::a\"]", "PASS_TO_PASS": ["t::b"],
               "version": 1.0, "custom": {"x": 1}})
    }

    #[test]
    fn accepts_lists_and_encoded_lists_and_keeps_extra() {
        let task = task_from_json(row()).unwrap();
        assert_eq!(task.fail_to_pass, vec!["t::a"]);
        assert_eq!(task.pass_to_pass, vec!["t::b"]);
        assert_eq!(task.version, "1.0");
        assert_eq!(task.extra["custom"], json!({"x": 1}));
        let back = task_from_json(task_to_json(&task)).unwrap();
        assert_eq!(back, task);
    }

    #[test]
    fn errors_name_field_and_expectation() {
        let mut bad = row();
        bad["PASS_TO_PASS"] = json!(3);
        let e = task_from_json(bad).unwrap_err();
        assert_eq!(e.field, "PASS_TO_PASS");
        assert!(e.message.contains("expected a JSON list"), "{e}");
        let mut bad = row();
        bad.as_object_mut().unwrap().remove("repo");
        assert_eq!(task_from_json(bad).unwrap_err().field, "repo");
        let mut bad = row();
        bad["FAIL_TO_PASS"] = json!("[1]");
        assert!(task_from_json(bad)
            .unwrap_err()
            .message
            .contains("item 0 is a number"));
    }

    #[test]
    fn rejects_path_like_ids() {
        let mut bad = row();
        bad["instance_id"] = json!("../x");
        assert_eq!(task_from_json(bad).unwrap_err().field, "instance_id");
    }
}
