//! Which Python environment a task needs, as SWE-bench's harness specifies it: the Python
//! version, the packages (a requirements file at environment_setup_commit, a package list,
//! extra pip packages), the pre-install and install commands, and commands run before the tests.
//!
//! Sources, first match wins: the row's own `install_config` (SWE-rebench rows carry one;
//! our own test repositories use it too), then SWE-bench's table for (repo, version), kept
//! as data in `data/swebench-env-specs.json` with its source named inside. A task with
//! neither has no environment to build and runs with the sandbox's system Python.
//!
//! SWE-bench builds with conda; there is no conda here, so a conda package list
//! (`packages: "pandas scipy"`) is installed with pip under the same names, and a spec that
//! needs a conda `environment.yml` is refused with a clear error rather than approximated.

use crate::task::Task;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The environment a task needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvSpec {
    /// Where the spec came from, for reports ("SWE-bench v4.1.0 table: repo version", ...).
    pub origin: String,
    /// `major.minor` of the interpreter, e.g. "3.9".
    pub python: String,
    pub packages: Packages,
    /// Installed with pip after `packages`.
    pub pip_packages: Vec<String>,
    /// Run in the repository before `install` (per task, like SWE-bench's instance image).
    pub pre_install: Vec<String>,
    /// Installs the repository itself, e.g. `python -m pip install -e .`.
    pub install: Option<String>,
    /// Run before every test command (SWE-bench's `eval_commands`).
    pub eval_commands: Vec<String>,
    /// Upgrade pip, setuptools (below 81, which dropped pkg_resources) and wheel first, as a
    /// fresh conda environment has recent ones (the index must serve them). `install_config`
    /// may set `"upgrade_pip": false` (swerl's own key).
    pub upgrade_pip: bool,
}

/// How the environment's packages are named.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Packages {
    None,
    /// A requirements file read from the repository at environment_setup_commit (the first
    /// of these paths that exists).
    Requirements {
        paths: Vec<String>,
    },
    /// Package names installed with pip.
    List {
        names: Vec<String>,
    },
}

/// Why a task's environment spec cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvSpecError {
    #[error("task {instance_id}: install_config is not usable: {reason}")]
    BadConfig { instance_id: String, reason: String },
    #[error(
        "task {instance_id}: its environment needs a conda environment.yml ({origin}), which the \
         local builder cannot reproduce without conda; use --backend container with the task's image"
    )]
    Conda { instance_id: String, origin: String },
}

/// One row of the table or an `install_config`, as SWE-bench writes it.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawSpec {
    python: Option<String>,
    packages: Option<String>,
    pip_packages: Option<Vec<String>>,
    pre_install: Option<Vec<String>>,
    install: Option<String>,
    eval_commands: Option<Vec<String>>,
    /// SWE-rebench: where the requirements file is.
    reqs_path: Option<Vec<String>>,
    upgrade_pip: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Table {
    specs: BTreeMap<String, BTreeMap<String, RawSpec>>,
    requirements_paths: BTreeMap<String, Vec<String>>,
}

const TABLE_JSON: &str = include_str!("../data/swebench-env-specs.json");

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| serde_json::from_str(TABLE_JSON).expect("the bundled spec table parses"))
}

/// The environment `task` needs, or `None` when neither its row nor SWE-bench's table names one.
pub fn env_spec(task: &Task) -> Result<Option<EnvSpec>, EnvSpecError> {
    if let Some(config) = task.install_config.as_ref().filter(|c| is_env_config(c)) {
        let raw: RawSpec =
            serde_json::from_value(config.clone()).map_err(|e| EnvSpecError::BadConfig {
                instance_id: task.instance_id.clone(),
                reason: e.to_string(),
            })?;
        let default_reqs = vec!["requirements.txt".to_string()];
        let reqs = raw.reqs_path.clone().unwrap_or(default_reqs);
        return from_raw(task, raw, "install_config of the row".into(), reqs).map(Some);
    }
    let Some(raw) = table()
        .specs
        .get(&task.repo)
        .and_then(|v| v.get(&task.version))
    else {
        return Ok(None);
    };
    let reqs = table()
        .requirements_paths
        .get(&task.repo)
        .cloned()
        .unwrap_or_default();
    let origin = format!("SWE-bench v4.1.0 table: {} {}", task.repo, task.version);
    from_raw(task, raw.clone(), origin, reqs).map(Some)
}

/// An install_config describes an environment when it names a Python or an install step
/// (some rows carry only `test_cmd` / `log_parser`, which `spec` reads).
fn is_env_config(config: &Value) -> bool {
    ["python", "install", "packages", "pip_packages"]
        .iter()
        .any(|k| config.get(k).is_some())
}

fn from_raw(
    task: &Task,
    raw: RawSpec,
    origin: String,
    requirement_paths: Vec<String>,
) -> Result<EnvSpec, EnvSpecError> {
    let bad = |reason: String| EnvSpecError::BadConfig {
        instance_id: task.instance_id.clone(),
        reason,
    };
    let python = raw.python.unwrap_or_else(|| "3.9".into());
    if !valid_python(&python) {
        return Err(bad(format!("python `{python}` is not a version like 3.9")));
    }
    let packages = match raw.packages.as_deref().map(str::trim) {
        None | Some("") => Packages::None,
        Some("requirements.txt") => Packages::Requirements {
            paths: requirement_paths,
        },
        Some("environment.yml") => {
            return Err(EnvSpecError::Conda {
                instance_id: task.instance_id.clone(),
                origin,
            })
        }
        Some(list) => Packages::List {
            names: list.split_whitespace().map(str::to_string).collect(),
        },
    };
    Ok(EnvSpec {
        origin,
        python,
        packages,
        pip_packages: raw.pip_packages.unwrap_or_default(),
        pre_install: raw.pre_install.unwrap_or_default(),
        install: raw.install,
        eval_commands: raw.eval_commands.unwrap_or_default(),
        upgrade_pip: raw.upgrade_pip.unwrap_or(true),
    })
}

/// `3` or `3.9` style, digits and one dot at most.
fn valid_python(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    (1..=2).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// SWE-bench's cleaning of a requirements file: lines that install the repository itself
/// (`-e .`, `.[test]`) and comments are dropped, and `-r other.txt` is replaced by that file
/// (read through `read`, relative to the first file's directory). A yanked package is
/// renamed as SWE-bench does (types-pkg_resources -> types-setuptools).
pub fn clean_requirements(path: &str, text: &str, read: &dyn Fn(&str) -> Option<String>) -> String {
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    let excluded = |l: &str| {
        let l = l.trim();
        l.starts_with("-e .") || l.starts_with('#') || l.starts_with(".[test")
    };
    let mut included = Vec::new();
    let mut own = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.trim().strip_prefix("-r") {
            let nested = if dir.is_empty() {
                name.trim().to_string()
            } else {
                format!("{dir}/{}", name.trim())
            };
            if let Some(nested_text) = read(&nested) {
                included.extend(
                    nested_text
                        .lines()
                        .filter(|l| !excluded(l))
                        .map(str::to_string),
                );
            }
        } else if !excluded(line) {
            own.push(line.to_string());
        }
    }
    included.push(own.join("\n"));
    included
        .join("\n")
        .lines()
        .map(|l| {
            if l.starts_with("types-pkg_resources") {
                "types-setuptools"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(repo: &str, version: &str, config: Option<Value>) -> Task {
        let mut row = serde_json::json!({"instance_id": "x-1", "repo": repo, "version": version,
            "problem_statement": "", "patch": "", "test_patch": "", "FAIL_TO_PASS": [], "PASS_TO_PASS": []});
        if let Some(c) = config {
            row["install_config"] = c;
        }
        Task::from_json(row).unwrap()
    }

    #[test]
    fn table_rows_follow_swe_bench() {
        let spec = env_spec(&task("sqlfluff/sqlfluff", "0.6", None))
            .unwrap()
            .unwrap();
        assert_eq!(spec.python, "3.9");
        assert_eq!(
            spec.packages,
            Packages::Requirements {
                paths: vec!["requirements_dev.txt".into()]
            }
        );
        assert_eq!(spec.install.as_deref(), Some("python -m pip install -e ."));
        let pvlib = env_spec(&task("pvlib/pvlib-python", "0.8", None))
            .unwrap()
            .unwrap();
        assert_eq!(
            pvlib.packages,
            Packages::List {
                names: vec!["pandas".into(), "scipy".into()]
            }
        );
        assert!(pvlib.pip_packages.contains(&"pytest".to_string()));
        let pydicom = env_spec(&task("pydicom/pydicom", "1.3", None))
            .unwrap()
            .unwrap();
        assert_eq!(pydicom.python, "3.6");
        assert!(env_spec(&task("someone/else", "1.0", None))
            .unwrap()
            .is_none());
    }

    #[test]
    fn install_config_wins_and_conda_is_refused() {
        let config = serde_json::json!({"python": "3.11", "install": "pip install -e .",
            "pip_packages": ["pytest"], "upgrade_pip": false, "test_cmd": "pytest -rA"});
        let spec = env_spec(&task("sqlfluff/sqlfluff", "0.6", Some(config)))
            .unwrap()
            .unwrap();
        assert_eq!(spec.python, "3.11");
        assert!(!spec.upgrade_pip);
        assert_eq!(spec.origin, "install_config of the row");
        let only_tests = serde_json::json!({"test_cmd": "pytest"});
        let spec = env_spec(&task("pvlib/pvlib-python", "0.9", Some(only_tests)))
            .unwrap()
            .unwrap();
        assert!(spec.origin.starts_with("SWE-bench"));
        let conda = env_spec(&task("pydata/xarray", "0.12", None)).unwrap_err();
        assert!(conda.to_string().contains("environment.yml"), "{conda}");
        let bad = serde_json::json!({"python": "3.9; rm -rf /"});
        assert!(env_spec(&task("a/b", "1", Some(bad))).is_err());
    }

    #[test]
    fn requirements_are_cleaned_like_swe_bench() {
        let read = |p: &str| (p == "req/extra.txt").then(|| "six\n# c\n-e .\n".to_string());
        let text = "-r extra.txt\n-e .\npytest>=6\n# comment\ntypes-pkg_resources==1\n";
        assert_eq!(
            clean_requirements("req/dev.txt", text, &read),
            "six\npytest>=6\ntypes-setuptools"
        );
    }
}
