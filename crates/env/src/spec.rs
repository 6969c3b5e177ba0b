//! What SWE-bench derives from a task row: the test files (from the test_patch headers), the
//! test command and the log parser (from repo + version, unless the task overrides them).
//!
//! Conventions follow SWE-bench's harness constants for its Python repositories: `pytest -rA`
//! for most, Django's `tests/runtests.py` with dotted module names, sympy's `bin/test`,
//! seaborn's `pytest --no-header -rA`, sphinx through tox, astropy's classic verbose pytest.
//! Overrides, first match wins: the task's `test_cmd` / `log_parser` fields, then SWE-rebench's
//! `install_config.test_cmd` / `install_config.log_parser`, then the repository table.
//! A task's own `test_cmd` is the complete command, run verbatim (the bundled tasks name
//! their test files in it); every other command gets the test files appended, as SWE-bench
//! and SWE-rebench do.

use crate::parsers::LogParser;
use crate::task::Task;
use serde_json::Value;

/// How one task's tests are run and read.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSpec {
    /// Every path the test_patch touches (old and new names): restored to base before the
    /// test_patch is applied, so a model cannot pre-empt the tests.
    pub test_files: Vec<String>,
    /// Arguments naming the tests to run (paths, or dotted modules for Django).
    pub directives: Vec<String>,
    /// The full shell command: base command, then the directives (or the task's own
    /// `test_cmd` verbatim).
    pub test_cmd: String,
    pub log_parser: LogParser,
}

/// Why a task's test spec cannot be derived.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "task {instance_id}: no test command known for repo `{repo}` (version `{version}`); add the fields \
         `test_cmd` (e.g. \"pytest -rA\") and `log_parser` (one of: {names}) to the task"
    )]
    UnknownRepo {
        instance_id: String,
        repo: String,
        version: String,
        names: String,
    },
    #[error("task {instance_id}: the test_patch names a path outside the repository: {source}")]
    UnsafeTestPath {
        instance_id: String,
        #[source]
        source: crate::paths::UnsafePath,
    },
    #[error("task {instance_id}: unknown log_parser `{name}`; use one of: {names}")]
    UnknownParser {
        instance_id: String,
        name: String,
        names: String,
    },
}

/// Test-patch paths with these endings are data, not tests to run (SWE-bench's list; its
/// `csv` entry really has no dot).
const NON_TEST_EXTS: [&str; 11] = [
    ".json", ".png", "csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml", ".toml",
];

const PYTEST: &str = "pytest -rA";
const ASTROPY_PYTEST: &str = "pytest -rA -vv -o console_output_style=classic --tb=no";
const DJANGO: &str = "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1";
const DJANGO_NO_PARALLEL: &str = "./tests/runtests.py --verbosity 2";
const SEABORN: &str = "pytest --no-header -rA";
const SPHINX: &str = "tox --current-env -epy39 -v --";
const SYMPY: &str =
    "PYTHONWARNINGS='ignore::UserWarning,ignore::SyntaxWarning' bin/test -C --verbose";

/// Derives the test spec of a task.
pub fn test_spec(task: &Task) -> Result<TestSpec, SpecError> {
    let files = patch_files(&task.test_patch);
    let test_files = touched_paths(&files);
    for path in &test_files {
        crate::paths::relative_path("test_patch path", path).map_err(|source| {
            SpecError::UnsafeTestPath {
                instance_id: task.instance_id.clone(),
                source,
            }
        })?;
    }
    let directives = directives(&task.repo, &files);
    let (base, parser) = command_and_parser(task)?;
    let test_cmd = if task.test_cmd.is_some() || directives.is_empty() {
        base
    } else {
        format!("{base} {}", directives.join(" "))
    };
    Ok(TestSpec {
        test_files,
        directives,
        test_cmd,
        log_parser: parser,
    })
}

/// The base command and the parser, overrides first.
fn command_and_parser(task: &Task) -> Result<(String, LogParser), SpecError> {
    let config = |key: &str| {
        task.install_config
            .as_ref()
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
    };
    let parser_name = task.log_parser.as_deref().or_else(|| config("log_parser"));
    let parser = match parser_name {
        Some(name) => Some(
            parser_by_name(name).ok_or_else(|| SpecError::UnknownParser {
                instance_id: task.instance_id.clone(),
                name: name.to_string(),
                names: LogParser::names(),
            })?,
        ),
        None => None,
    };
    let command = task
        .test_cmd
        .as_deref()
        .or_else(|| config("test_cmd"))
        .map(str::to_string);
    let known = repo_convention(&task.repo, &task.version);
    match (command, parser, known) {
        (Some(cmd), parser, known) => Ok((
            cmd,
            parser.or(known.map(|k| k.1)).unwrap_or(LogParser::Pytest),
        )),
        (None, parser, Some((cmd, known_parser))) => {
            Ok((cmd.to_string(), parser.unwrap_or(known_parser)))
        }
        (None, _, None) => Err(SpecError::UnknownRepo {
            instance_id: task.instance_id.clone(),
            repo: task.repo.clone(),
            version: task.version.clone(),
            names: LogParser::names(),
        }),
    }
}

/// A parser by its name, SWE-bench's function name (`parse_log_pydicom`) or the short
/// repository alias SWE-bench uses for it (`pydicom`, `astropy`, ...).
pub fn parser_by_name(name: &str) -> Option<LogParser> {
    let name = name.strip_prefix("parse_log_").unwrap_or(name);
    LogParser::from_name(name).or(match name {
        "astroid" | "flask" | "marshmallow" | "pvlib" | "pyvista" | "sqlfluff" | "xarray" => {
            Some(LogParser::Pytest)
        }
        "pydicom" | "requests" | "pylint" => Some(LogParser::PytestOptions),
        "astropy" | "scikit" | "sphinx" => Some(LogParser::PytestV2),
        _ => None,
    })
}

/// SWE-bench's test command and parser for a known repository (None for others).
pub fn repo_convention(repo: &str, version: &str) -> Option<(&'static str, LogParser)> {
    use LogParser::*;
    Some(match repo {
        "django/django" if version == "1.9" => (DJANGO_NO_PARALLEL, Django),
        "django/django" => (DJANGO, Django),
        "sympy/sympy" => (SYMPY, Sympy),
        "mwaskom/seaborn" => (SEABORN, Seaborn),
        "sphinx-doc/sphinx" => (SPHINX, PytestV2),
        "astropy/astropy" => (ASTROPY_PYTEST, PytestV2),
        "scikit-learn/scikit-learn" => (PYTEST, PytestV2),
        "matplotlib/matplotlib" => (PYTEST, Matplotlib),
        "pydicom/pydicom" | "psf/requests" | "pylint-dev/pylint" => (PYTEST, PytestOptions),
        "pytest-dev/pytest"
        | "pallets/flask"
        | "pydata/xarray"
        | "marshmallow-code/marshmallow"
        | "pvlib/pvlib-python"
        | "pylint-dev/astroid"
        | "pyvista/pyvista"
        | "sqlfluff/sqlfluff" => (PYTEST, Pytest),
        _ => return None,
    })
}

/// One file section of a unified git diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchFile {
    /// Path before the change (`None` for a new file).
    pub old: Option<String>,
    /// Path after the change (`None` for a deleted file).
    pub new: Option<String>,
}

/// The files of a git diff, from its `diff --git a/X b/Y` headers and the `new file mode` /
/// `deleted file mode` lines after them. As in SWE-bench, `b/` is split at its last
/// occurrence, so paths must not contain ` b/`.
pub fn patch_files(patch: &str) -> Vec<PatchFile> {
    let mut files: Vec<PatchFile> = Vec::new();
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            if let Some((old, new)) = rest.rsplit_once(" b/") {
                files.push(PatchFile {
                    old: Some(old.to_string()),
                    new: Some(new.to_string()),
                });
            }
        } else if let Some(last) = files.last_mut() {
            if line.starts_with("new file mode") {
                last.old = None;
            } else if line.starts_with("deleted file mode") {
                last.new = None;
            }
        }
    }
    files
}

/// Every path a diff touches, old and new names, deduplicated in order.
fn touched_paths(files: &[PatchFile]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in files.iter().flat_map(|f| [&f.old, &f.new]).flatten() {
        if !out.contains(path) {
            out.push(path.clone());
        }
    }
    out
}

/// The tests to run: new paths of the test_patch that are not data files. Deleted files are
/// left out (running them would fail for a reason unrelated to the patch). Django takes
/// dotted module names relative to `tests/`.
fn directives(repo: &str, files: &[PatchFile]) -> Vec<String> {
    let paths = files.iter().filter_map(|f| f.new.as_deref());
    let paths = paths.filter(|p| !NON_TEST_EXTS.iter().any(|ext| p.ends_with(ext)));
    if repo == "django/django" {
        paths.map(django_module).collect()
    } else {
        paths.map(str::to_string).collect()
    }
}

/// `tests/admin_views/tests.py` -> `admin_views.tests`.
fn django_module(path: &str) -> String {
    let path = path.strip_suffix(".py").unwrap_or(path);
    let path = path.strip_prefix("tests/").unwrap_or(path);
    path.replace('/', ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "\
diff --git a/tests/test_a.py b/tests/test_a.py
index 1..2 100644
--- a/tests/test_a.py
+++ b/tests/test_a.py
@@ -1 +1 @@
-x
+y
diff --git a/tests/data/new.json b/tests/data/new.json
new file mode 100644
--- /dev/null
+++ b/tests/data/new.json
diff --git a/tests/old_test.py b/tests/old_test.py
deleted file mode 100644
diff --git a/tests/test_b.py b/tests/test_c.py
similarity index 90%
";

    #[test]
    fn reads_headers_with_new_deleted_and_renamed_files() {
        let files = patch_files(PATCH);
        assert_eq!(files.len(), 4);
        assert_eq!(
            files[1],
            PatchFile {
                old: None,
                new: Some("tests/data/new.json".into())
            }
        );
        assert_eq!(
            files[2],
            PatchFile {
                old: Some("tests/old_test.py".into()),
                new: None
            }
        );
        assert_eq!(
            touched_paths(&files),
            [
                "tests/test_a.py",
                "tests/data/new.json",
                "tests/old_test.py",
                "tests/test_b.py",
                "tests/test_c.py"
            ]
        );
        assert_eq!(
            directives("o/r", &files),
            ["tests/test_a.py", "tests/test_c.py"]
        );
    }

    #[test]
    fn django_directives_are_modules() {
        let files =
            patch_files("diff --git a/tests/admin_views/tests.py b/tests/admin_views/tests.py\n");
        assert_eq!(directives("django/django", &files), ["admin_views.tests"]);
    }

    fn task(test_cmd: Option<&str>, install_cmd: Option<&str>) -> Task {
        let mut row = serde_json::json!({"instance_id": "x-1", "repo": "someone/thing", "problem_statement": "",
            "patch": "", "test_patch": "diff --git a/t/test_x.py b/t/test_x.py\n", "FAIL_TO_PASS": [], "PASS_TO_PASS": []});
        if let Some(cmd) = test_cmd {
            row["test_cmd"] = cmd.into();
        }
        if let Some(cmd) = install_cmd {
            row["install_config"] =
                serde_json::json!({"test_cmd": cmd, "log_parser": "parse_log_pytest_v2"});
        }
        Task::from_json(row).unwrap()
    }

    #[test]
    fn overrides_take_precedence_and_unknown_repos_fail_clearly() {
        let spec = test_spec(&task(
            Some("python3 -m pytest -rA t/test_x.py"),
            Some("ignored"),
        ))
        .unwrap();
        assert_eq!(spec.test_cmd, "python3 -m pytest -rA t/test_x.py");
        assert_eq!(spec.log_parser, LogParser::PytestV2);
        let spec = test_spec(&task(None, Some("pytest -rA --tb=no"))).unwrap();
        assert_eq!(spec.test_cmd, "pytest -rA --tb=no t/test_x.py");
        let err = test_spec(&task(None, None)).unwrap_err().to_string();
        assert!(
            err.contains("someone/thing") && err.contains("add the fields `test_cmd`"),
            "{err}"
        );
    }

    #[test]
    fn known_repos_follow_swe_bench() {
        let mut t = task(None, None);
        t.repo = "django/django".into();
        t.version = "3.0".into();
        t.test_patch =
            "diff --git a/tests/admin_views/tests.py b/tests/admin_views/tests.py\n".into();
        let spec = test_spec(&t).unwrap();
        assert_eq!(spec.test_cmd, format!("{DJANGO} admin_views.tests"));
        assert_eq!(spec.log_parser, LogParser::Django);
        t.version = "1.9".into();
        assert!(test_spec(&t)
            .unwrap()
            .test_cmd
            .starts_with("./tests/runtests.py --verbosity 2 admin"));
        t.repo = "sympy/sympy".into();
        t.test_patch =
            "diff --git a/sympy/core/tests/test_basic.py b/sympy/core/tests/test_basic.py\n".into();
        assert_eq!(
            test_spec(&t).unwrap().test_cmd,
            format!("{SYMPY} sympy/core/tests/test_basic.py")
        );
    }

    #[test]
    fn parser_aliases() {
        assert_eq!(
            parser_by_name("parse_log_pydicom"),
            Some(LogParser::PytestOptions)
        );
        assert_eq!(parser_by_name("sympy"), Some(LogParser::Sympy));
        assert_eq!(parser_by_name("junit"), None);
    }
}
