//! Checks that a test run measured the repository under test, not the environment around it.
//! A failed check is an environment error: the grade is unknown (never a reward of 0 or 1),
//! and the episode is retried or excluded.
//!
//! - Before the patch: the interpreter the prepared environment names runs, at its version
//!   (a missing or broken interpreter), and every package of the repository imports from
//!   /testbed (the pytest-on-pytest trap: tests importing an installed copy, so
//!   FAIL_TO_PASS "already passes"). These run on the base repository, so no patch can
//!   trigger them.
//! - After the test run: a log that names none of the listed tests, whether or not a
//!   collection error says why. A model patch can cause this (a syntax error, deleted tests),
//!   so the grader attributes it by running the tests once more without the patch: only
//!   when they are missing there too is it the environment's fault.

use crate::envbuild::Manifest;
use crate::grade::shell_quote;
use std::collections::BTreeMap;
use std::time::Duration;
use swerl_sandbox::{Sandbox, SandboxError};
use swerl_trajectory::grade::TestStatus;

/// Finds the repository's top-level packages (in /testbed, /testbed/src, /testbed/lib) and
/// where Python imports each from, run from /tmp so the working directory does not count.
/// Python 3.5+ syntax: it runs on the task's interpreter.
const IMPORT_PROBE: &str = r#"
import importlib.util, json, os, sys
root = sys.argv[1]
skip = {'test', 'tests', 'testing', 'doc', 'docs', 'examples', 'benchmarks', 'scripts', 'tools', 'build'}
found = {}
for base in (root, os.path.join(root, 'src'), os.path.join(root, 'lib')):
    if not os.path.isdir(base):
        continue
    for name in sorted(os.listdir(base)):
        if name in skip or name in found or not name.isidentifier():
            continue
        if os.path.isfile(os.path.join(base, name, '__init__.py')):
            try:
                spec = importlib.util.find_spec(name)
            except Exception as e:
                found[name] = 'error: %s' % e
                continue
            if spec is None:
                found[name] = None
            else:
                locs = list(spec.submodule_search_locations or [])
                found[name] = os.path.realpath(spec.origin if spec.origin not in (None, 'namespace') else (locs[0] if locs else ''))
print('SWERL-IMPORTS ' + json.dumps(found))
"#;

/// Runs the checks that need no test run (module docs). `Ok(None)`: the environment is sound.
pub fn probe(
    sb: &mut dyn Sandbox,
    manifest: Option<&Manifest>,
    timeout: Duration,
) -> Result<Option<String>, SandboxError> {
    let python = if manifest.is_some() {
        "python"
    } else {
        "python3"
    };
    if let Some(m) = manifest {
        let out = sb.exec(
            "python -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])'",
            Some(timeout),
        )?;
        let got = out.output.trim();
        if out.exit_code != Some(0) || got != m.python {
            return Ok(Some(format!(
                "missing interpreter: the environment's `python` should be Python {} but {}",
                m.python,
                if out.exit_code == Some(0) {
                    format!("is {got}")
                } else {
                    format!("does not run: {}", tail(got, 400))
                }
            )));
        }
    }
    let workdir = sb.workdir().to_string();
    let command = format!(
        "cd /tmp && {python} -c {} {} 2>&1",
        shell_quote(IMPORT_PROBE),
        shell_quote(&workdir)
    );
    let out = sb.exec(&command, Some(timeout))?;
    if manifest.is_none() && out.exit_code != Some(0) {
        // No prepared environment and no python3 in the sandbox: the task's own test
        // command decides; nothing to say about imports.
        return Ok(None);
    }
    Ok(import_problem(&out.output, &workdir))
}

/// The first repository package that imports from outside `workdir`, as a message.
fn import_problem(output: &str, workdir: &str) -> Option<String> {
    let Some(json) = output
        .lines()
        .find_map(|l| l.strip_prefix("SWERL-IMPORTS "))
    else {
        return Some(format!(
            "the import check did not run: {}",
            tail(output.trim(), 400)
        ));
    };
    let found: BTreeMap<String, Option<String>> = serde_json::from_str(json).ok()?;
    let inside = format!("{}/", workdir.trim_end_matches('/'));
    found.into_iter().find_map(|(name, location)| {
        let location = location?;
        (!location.starts_with(&inside) && !location.is_empty()).then(|| {
            format!(
                "the tests would import `{name}` from {location}, not from {workdir}: an installed copy shadows \
                 the repository under test (install it in editable mode, or remove the copy from the environment)"
            )
        })
    })
}

/// A log that cannot have measured the listed tests: none of them appears in it.
pub fn log_problem(
    log: &str,
    listed: &[&String],
    statuses: &BTreeMap<String, TestStatus>,
) -> Option<String> {
    if listed.is_empty() || listed.iter().any(|id| statuses.contains_key(*id)) {
        return None;
    }
    let why = collection_error(log).map_or_else(
        || "and no collection error explains it".to_string(),
        |line| format!("a collection error hides them: `{line}`"),
    );
    Some(format!(
        "the test log names none of the {} listed tests ({} statuses parsed); {why}",
        listed.len(),
        statuses.len()
    ))
}

/// pytest's (and Django's and sympy's) ways of saying a test module could not be imported.
fn collection_error(log: &str) -> Option<String> {
    const MARKERS: [&str; 6] = [
        "ERROR collecting",
        "ImportError while loading conftest",
        "ImportError while importing test module",
        "ModuleNotFoundError",
        "errors during collection",
        "ImportError:",
    ];
    log.lines()
        .find(|l| MARKERS.iter().any(|m| l.contains(m)))
        .map(|l| tail(l.trim(), 300))
}

fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_copy_is_reported() {
        let out = "noise\nSWERL-IMPORTS {\"calc\": \"/testbed/calc/__init__.py\", \"pytest\": \
                   \"/env/venv/lib/python3.9/site-packages/pytest/__init__.py\", \"other\": null}\n";
        let problem = import_problem(out, "/testbed").unwrap();
        assert!(problem.contains("`pytest` from /env/venv/lib"), "{problem}");
        let fine = "SWERL-IMPORTS {\"calc\": \"/testbed/src/calc/__init__.py\", \"x\": null}";
        assert_eq!(import_problem(fine, "/testbed"), None);
        assert!(import_problem("Traceback", "/testbed").is_some());
    }

    #[test]
    fn a_log_without_the_listed_tests_is_reported_with_its_cause() {
        let (a, b) = ("t.py::a".to_string(), "t.py::b".to_string());
        let listed = vec![&a, &b];
        let log = "==== ERRORS ====\n_____ ERROR collecting t.py _____\nImportError: No module named 'numpy'\n";
        let problem = log_problem(log, &listed, &BTreeMap::new()).unwrap();
        assert!(problem.contains("none of the 2 listed tests"), "{problem}");
        assert!(problem.contains("ERROR collecting t.py"), "{problem}");
        let mut statuses = BTreeMap::new();
        statuses.insert(b.clone(), TestStatus::Failed);
        assert_eq!(log_problem(log, &listed, &statuses), None);
        assert_eq!(log_problem(log, &[], &BTreeMap::new()), None);
    }
}
