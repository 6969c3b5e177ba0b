//! SWE-bench / SWE-rebench task rows: the [`Task`] type and loading from JSON, JSONL and
//! Parquet files.
//!
//! Rows are converted field by field from JSON values (Parquet rows are first turned into
//! JSON objects), so a malformed row yields a [`RowError`] that names the file, the row, the
//! field and what was expected, while the other rows still load. Unknown fields are kept in
//! [`Task::extra`] and written back on serialisation.

mod convert;
mod parquet_io;

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use parquet_io::{read_parquet_rows, write_parquet};

/// One SWE-bench-style task instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub instance_id: String,
    /// `owner/name` on GitHub, e.g. `django/django`; selects test command and log parser.
    pub repo: String,
    pub base_commit: String,
    pub problem_statement: String,
    /// The gold patch (source changes only).
    pub patch: String,
    /// The patch that adds or changes the tests used for grading.
    pub test_patch: String,
    /// Tests that must go from failing to passing (`FAIL_TO_PASS`).
    pub fail_to_pass: Vec<String>,
    /// Tests that must keep passing (`PASS_TO_PASS`).
    pub pass_to_pass: Vec<String>,
    pub version: String,
    pub environment_setup_commit: String,
    pub created_at: String,
    pub hints_text: String,
    /// SWE-rebench: container image of the task environment (`docker_image` or `image_name`).
    pub docker_image: Option<String>,
    pub image_name: Option<String>,
    /// SWE-rebench: install configuration (kept as given; may carry a `test_cmd`).
    pub install_config: Option<Value>,
    pub requirements: Option<Value>,
    pub meta: Option<Value>,
    /// Override: the complete test command, run verbatim in the repository root.
    pub test_cmd: Option<String>,
    /// Override: log parser name (see `parsers::LogParser::name`).
    pub log_parser: Option<String>,
    /// Every other field of the row, kept in order for round trips.
    pub extra: Map<String, Value>,
}

impl Task {
    /// Converts one JSON object into a task. Errors name the offending field.
    pub fn from_json(value: Value) -> Result<Task, FieldError> {
        convert::task_from_json(value)
    }

    /// The task as a JSON object in SWE-bench form (FAIL_TO_PASS / PASS_TO_PASS as lists),
    /// with every extra field kept.
    pub fn to_json(&self) -> Value {
        convert::task_to_json(self)
    }

    /// An extra field's string value (e.g. `env_repo` of the bundled tasks).
    pub fn extra_str(&self, key: &str) -> Option<&str> {
        self.extra.get(key).and_then(Value::as_str)
    }

    /// The task's own environment image: `docker_image`, else `image_name` (SWE-rebench
    /// rows carry one of them; SWE-bench rows neither, see [`ImageTemplate`]).
    pub fn environment_image(&self) -> Option<&str> {
        [&self.docker_image, &self.image_name]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|s| !s.trim().is_empty())
    }
}

/// How the image of a task that names none is derived from its instance id, e.g. SWE-bench's
/// published images: `swebench/sweb.eval.x86_64.{swebench_id}:latest`.
///
/// Placeholders: `{instance_id}` as it is; `{swebench_id}` in the form of SWE-bench's Docker
/// Hub images (lowercase, `__` written `_1776_`: `django__django-11099` becomes
/// `django_1776_django-11099`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTemplate(String);

impl ImageTemplate {
    /// A template; it must use a placeholder, or every task would share one image.
    pub fn new(template: &str) -> Result<ImageTemplate, String> {
        if !template.contains("{instance_id}") && !template.contains("{swebench_id}") {
            return Err(format!(
                "image template `{template}` has no {{instance_id}} or {{swebench_id}} placeholder; \
                 for one image for every task use --image instead"
            ));
        }
        Ok(ImageTemplate(template.to_string()))
    }

    /// The image of `instance_id`.
    pub fn render(&self, instance_id: &str) -> String {
        let swebench = instance_id.to_lowercase().replace("__", "_1776_");
        self.0
            .replace("{instance_id}", instance_id)
            .replace("{swebench_id}", &swebench)
    }

    /// Gives every task without an image of its own the template's (its `docker_image`).
    pub fn apply(&self, tasks: &mut [Task]) {
        for task in tasks.iter_mut().filter(|t| t.environment_image().is_none()) {
            task.docker_image = Some(self.render(&task.instance_id));
        }
    }
}

impl serde::Serialize for Task {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Task {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Task::from_json(value).map_err(serde::de::Error::custom)
    }
}

/// A problem with one field of one row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct FieldError {
    /// The field's name (`<row>` when the row itself is not an object).
    pub field: String,
    /// What was expected and what was found.
    pub message: String,
}

/// A row that could not be loaded; the other rows of the file still load.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: row {row}: {error}", file.display())]
pub struct RowError {
    pub file: PathBuf,
    /// 1-based row number (for JSONL: the line number).
    pub row: usize,
    pub error: FieldError,
}

/// A file that could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum TaskFileError {
    #[error("cannot read task file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("task file {}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("task file {}: unknown extension; use .json (array of rows), .jsonl or .parquet", path.display())]
    Extension { path: PathBuf },
}

/// The result of loading a file: the good rows and an error per bad row.
#[derive(Debug, Default)]
pub struct LoadedTasks {
    pub tasks: Vec<Task>,
    pub errors: Vec<RowError>,
}

/// Loads tasks from a `.json` (array of objects), `.jsonl` (one object per line) or
/// `.parquet` file. Bad rows (including a repeated instance_id) are reported in
/// [`LoadedTasks::errors`]; the rest load.
pub fn load_tasks(path: &Path) -> Result<LoadedTasks, TaskFileError> {
    let rows = read_rows(path)?;
    let mut loaded = LoadedTasks::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (row, value) in rows {
        let error = |error| RowError {
            file: path.to_path_buf(),
            row,
            error,
        };
        match value.and_then(Task::from_json) {
            Ok(task) => match seen.insert(task.instance_id.clone(), row) {
                Some(first) => loaded.errors.push(error(duplicate(first))),
                None => loaded.tasks.push(task),
            },
            Err(e) => loaded.errors.push(error(e)),
        }
    }
    Ok(loaded)
}

fn duplicate(first_row: usize) -> FieldError {
    FieldError {
        field: "instance_id".into(),
        message: format!("duplicate of row {first_row}"),
    }
}

/// One row: its 1-based number and its JSON object (or why it is not one).
type Row = (usize, Result<Value, FieldError>);

/// Reads a file's rows.
fn read_rows(path: &Path) -> Result<Vec<Row>, TaskFileError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "json" => read_json_array(path),
        "jsonl" | "ndjson" => read_jsonl(path),
        "parquet" => read_parquet_rows(path),
        _ => Err(TaskFileError::Extension {
            path: path.to_path_buf(),
        }),
    }
}

fn read_text(path: &Path) -> Result<String, TaskFileError> {
    std::fs::read_to_string(path).map_err(|source| TaskFileError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json_array(path: &Path) -> Result<Vec<Row>, TaskFileError> {
    let format = |reason: String| TaskFileError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let value: Value = serde_json::from_str(&read_text(path)?)
        .map_err(|e| format(format!("not valid JSON: {e}")))?;
    match value {
        Value::Array(rows) => Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, Ok(v)))
            .collect()),
        other => Err(format(format!(
            "expected a JSON array of task objects, found {}",
            convert::kind(&other)
        ))),
    }
}

/// JSONL rows; a line that is not valid JSON is a row error, not a file error. Blank lines
/// are skipped (row numbers stay line numbers).
fn read_jsonl(path: &Path) -> Result<Vec<Row>, TaskFileError> {
    let text = read_text(path)?;
    let rows = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    Ok(rows
        .map(|(i, line)| {
            let value = serde_json::from_str(line).map_err(|e| FieldError {
                field: "<row>".into(),
                message: format!(
                    "expected one JSON object per line, but the line is not valid JSON: {e}"
                ),
            });
            (i + 1, value)
        })
        .collect())
}

/// Tasks as JSONL text (one SWE-bench-form object per line).
pub fn to_jsonl<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> serde_json::Result<String> {
    let mut out = String::new();
    for task in tasks {
        out.push_str(&serde_json::to_string(&task.to_json())?);
        out.push('\n');
    }
    Ok(out)
}

/// Writes tasks as JSONL (one SWE-bench-form object per line).
pub fn write_jsonl(path: &Path, tasks: &[Task]) -> std::io::Result<()> {
    std::fs::write(path, to_jsonl(tasks).map_err(std::io::Error::other)?)
}

/// Writes tasks as a JSON array.
pub fn write_json(path: &Path, tasks: &[Task]) -> std::io::Result<()> {
    let rows: Vec<Value> = tasks.iter().map(Task::to_json).collect();
    std::fs::write(
        path,
        serde_json::to_string_pretty(&rows).map_err(std::io::Error::other)?,
    )
}
