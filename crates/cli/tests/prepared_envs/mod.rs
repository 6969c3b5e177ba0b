//! `swerl prepare` end to end on a repository made here that needs a real install step: a
//! dependency from a package index stand-in (a local HTTP server, reachable only from the
//! build), an editable install by the repository's own PEP 517/660 build backend, a console
//! script the tests call, and, when `scripts/setup` installed one, a Python other than the
//! host's. Then `swerl validate` and `swerl rollout --policy scripted` on the prepared
//! tasks, with no environment made by hand; then the pytest-on-pytest trap.

use super::common::{require_sandbox, root, swerl, text};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use swerl_sandbox::host_command_checked;

/// The repository's own build backend: a wheel of `src/gizmo` (a regular install) or one
/// holding a `.pth` pointing at `src/` (editable), with the dependency and console script.
const BACKEND: &str = r#"import base64, hashlib, os, zipfile
NAME, VERSION = "gizmo", "1.0"
DIST = "%s-%s.dist-info" % (NAME, VERSION)
META = "Metadata-Version: 2.1\nName: gizmo\nVersion: 1.0\nRequires-Dist: tinydep==1.0\n"
ENTRY = "[console_scripts]\ngizmo-cli = gizmo.cli:main\n"
def _wheel(directory, files):
    name = "%s-%s-py3-none-any.whl" % (NAME, VERSION)
    files = dict(files)
    files[DIST + "/METADATA"] = META
    files[DIST + "/WHEEL"] = "Wheel-Version: 1.0\nGenerator: gizmo\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[DIST + "/entry_points.txt"] = ENTRY
    record = []
    with zipfile.ZipFile(os.path.join(directory, name), "w") as z:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
            z.writestr(path, data)
        record.append(DIST + "/RECORD,,")
        z.writestr(DIST + "/RECORD", "\n".join(record) + "\n")
    return name
def get_requires_for_build_wheel(config_settings=None):
    return []
get_requires_for_build_editable = get_requires_for_build_wheel
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {}
    for base, _, names in os.walk("src/gizmo"):
        for n in names:
            if n.endswith(".py"):
                p = os.path.join(base, n)
                files[os.path.relpath(p, "src")] = open(p).read()
    return _wheel(wheel_directory, files)
def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"gizmo.pth": os.path.abspath("src") + "\n"})
"#;

/// The repository's test runner: pytest's `-rA` summary lines, without pytest.
const RUNNER: &str = r#"import importlib, sys, traceback
for path in sys.argv[1:]:
    module = importlib.import_module(path[:-3].replace("/", "."))
    for name in sorted(n for n in dir(module) if n.startswith("test_")):
        try:
            getattr(module, name)()
            print("PASSED %s::%s" % (path, name))
        except Exception:
            traceback.print_exc()
            print("FAILED %s::%s" % (path, name))
"#;

const CORE_BUGGY: &str = "import tinydep\n\n\ndef scale(x):\n    return tinydep.double(x) + 1\n\n\ndef shout(s):\n    return s.upper()\n";

/// The repository at its base commit, as a git working tree; returns the commit id.
fn make_repo(dir: &Path) -> String {
    let files: [(&str, &str); 7] = [
        ("pyproject.toml", "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\"_build\"]\n"),
        ("_build/backend.py", BACKEND),
        ("run_tests.py", RUNNER),
        ("src/gizmo/__init__.py", ""),
        ("src/gizmo/core.py", CORE_BUGGY),
        ("src/gizmo/cli.py", "import sys\nfrom gizmo.core import scale\n\n\ndef main():\n    print(\"scaled:\", scale(int(sys.argv[1])))\n"),
        ("tests/__init__.py", ""),
    ];
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::write(dir.join("tests/test_cli.py"), CLI_TEST).unwrap();
    let git = |args: &[&str]| host_command_checked("git", args, dir).unwrap();
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "base",
    ]);
    String::from_utf8(git(&["rev-parse", "HEAD"]).stdout)
        .unwrap()
        .trim()
        .to_string()
}

/// Calls the console script from the environment's PATH and the dependency through it.
const CLI_TEST: &str = "import subprocess\n\n\ndef test_console_script():\n    out = subprocess.run([\"gizmo-cli\", \"0\"], capture_output=True, text=True, check=True).stdout\n    assert out.startswith(\"scaled:\"), out\n";

/// A diff adding `path` with `text`.
fn new_file_diff(path: &str, text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let body: String = lines.iter().map(|l| format!("+{l}\n")).collect();
    format!(
        "diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{} @@\n{body}",
        lines.len()
    )
}

/// The diff of replacing `old` by `new` in `src/gizmo/core.py`, made by git in `repo`.
fn core_diff(repo: &Path, old: &str, new: &str) -> String {
    let file = repo.join("src/gizmo/core.py");
    std::fs::write(&file, CORE_BUGGY.replace(old, new)).unwrap();
    let diff = host_command_checked("git", &["diff"], repo).unwrap();
    std::fs::write(&file, CORE_BUGGY).unwrap();
    String::from_utf8(diff.stdout).unwrap()
}

/// Two tasks on the same repository, version and environment_setup_commit (one shared
/// environment), each with a gold patch, a test patch and a scripted solution.
fn tasks(repo: &Path, commit: &str, python: &str) -> Vec<serde_json::Value> {
    let config = serde_json::json!({
        "python": python,
        "pip_packages": ["pip==23.0.1", "tinydep==1.0"],
        "upgrade_pip": false,
        "install": "python -m pip install -e .",
    });
    let task = |n: usize, test: &str, gold: String, fix: &str| {
        let test_file = format!("tests/test_fix{n}.py");
        serde_json::json!({
            "instance_id": format!("gizmo__gizmo-{n}"), "repo": "gizmo/gizmo", "version": "1.0",
            "base_commit": commit, "environment_setup_commit": commit,
            "problem_statement": "a bug", "patch": gold,
            "test_patch": new_file_diff(&test_file, test),
            "FAIL_TO_PASS": [format!("{test_file}::test_fixed")],
            "PASS_TO_PASS": ["tests/test_cli.py::test_console_script"],
            "install_config": config,
            "test_cmd": format!("python run_tests.py tests/test_cli.py {test_file}"),
            "log_parser": "pytest",
            "demo_commands": ["gizmo-cli 2", "python -c 'import tinydep, sys; print(sys.version)'", fix, "submit"],
        })
    };
    vec![
        task(1, "from gizmo.core import scale\n\n\ndef test_fixed():\n    assert scale(2) == 4\n",
            core_diff(repo, "double(x) + 1", "double(x)"),
            "sed -i 's/double(x) + 1/double(x)/' src/gizmo/core.py"),
        task(2, "from gizmo.core import shout\n\n\ndef test_fixed():\n    assert shout(\"hi\") == \"HI!\"\n",
            core_diff(repo, "return s.upper()", "return s.upper() + \"!\""),
            "sed -i 's/return s.upper()/return s.upper() + \"!\"/' src/gizmo/core.py"),
    ]
}

/// A package index stand-in: serves `root` over HTTP on a loopback port until the test ends.
fn serve(root: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let mut file = root.join(path.trim_start_matches('/').replace("..", ""));
            if file.is_dir() {
                file = file.join("index.html");
            }
            let mut out = &stream;
            let _ = match std::fs::read(&file) {
                Ok(body) => {
                    let kind = if file.extension().is_some_and(|e| e == "html") {
                        "text/html"
                    } else {
                        "application/octet-stream"
                    };
                    let head = format!(
                        "HTTP/1.0 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    out.write_all(head.as_bytes())
                        .and_then(|()| out.write_all(&body))
                }
                Err(_) => out.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            };
        }
    });
    port
}

/// The index: `tinydep` built here, and Debian's pip wheel (pip >= 21.3 installs editable
/// projects through PEP 660; the ensurepip of older Pythons brings an older pip).
fn make_index(dir: &Path) {
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let script = "import zipfile, sys\nz = zipfile.ZipFile(sys.argv[1] + '/tinydep-1.0-py3-none-any.whl', 'w')\n\
        z.writestr('tinydep.py', 'def double(x):\\n    return 2 * x\\n')\n\
        z.writestr('tinydep-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: tinydep\\nVersion: 1.0\\n')\n\
        z.writestr('tinydep-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n\
        z.writestr('tinydep-1.0.dist-info/RECORD', '')\nz.close()\n";
    host_command_checked("python3", &["-c", script, files.to_str().unwrap()], dir).unwrap();
    let pip = Path::new("/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl");
    assert!(
        pip.is_file(),
        "Debian's python3-pip-whl is missing (scripts/setup installs python3-venv)"
    );
    std::fs::copy(pip, files.join(pip.file_name().unwrap())).unwrap();
    for (project, wheel) in [
        ("tinydep", "tinydep-1.0-py3-none-any.whl"),
        ("pip", "pip-23.0.1-py3-none-any.whl"),
    ] {
        let page = dir.join("simple").join(project);
        std::fs::create_dir_all(&page).unwrap();
        let html =
            format!("<html><body><a href=\"../../files/{wheel}\">{wheel}</a></body></html>\n");
        std::fs::write(page.join("index.html"), html).unwrap();
    }
}

/// The interpreter the tasks ask for: Debian's 3.9 from `scripts/setup` where it is
/// installed (a version other than the host's), else the host's own.
fn python_for_tasks() -> (String, Option<PathBuf>) {
    let other = root().join(".venv/pythons/3.9/bin/python3.9");
    if other.is_file() {
        return ("3.9".into(), Some(other));
    }
    let out = host_command_checked(
        "python3",
        &["-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        Path::new("/"),
    )
    .unwrap();
    let host = String::from_utf8_lossy(&out.stdout).trim().to_string();
    eprintln!("note: no second Python under .venv/pythons (scripts/setup-python39); the environment uses the host's {host}");
    (host, None)
}

#[test]
fn prepare_builds_a_shared_environment_that_validate_and_rollout_use() {
    require_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let (repos, index) = (dir.path().join("repos"), dir.path().join("index"));
    let commit = make_repo(&repos.join("gizmo"));
    make_index(&index);
    let port = serve(index);
    let (python, interpreter) = python_for_tasks();
    let tasks_file = dir.path().join("tasks.jsonl");
    let rows: String = tasks(&repos.join("gizmo"), &commit, &python)
        .iter()
        .map(|t| t.to_string() + "\n")
        .collect();
    std::fs::write(&tasks_file, rows).unwrap();
    let envs = dir.path().join("envs");
    let index_url = format!("PIP_INDEX_URL=http://127.0.0.1:{port}/simple/");
    let python_arg = interpreter.map(|p| format!("{python}={}", p.display()));
    let (t, e, r) = (
        tasks_file.to_str().unwrap(),
        envs.to_str().unwrap(),
        repos.to_str().unwrap(),
    );
    let report = dir.path().join("prepare.json");
    let mut prepare = vec![
        "prepare",
        "--tasks",
        t,
        "--env-root",
        e,
        "--repos",
        r,
        "-j",
        "1",
        "--build-env",
        &index_url,
        "--json",
        report.to_str().unwrap(),
    ];
    if let Some(arg) = &python_arg {
        prepare.extend(["--python", arg.as_str()]);
    }
    let out = swerl(&prepare);
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(summary["environments"], 1, "{summary:#}");
    assert_eq!(
        summary["env_cache_hits"], 1,
        "the second task reuses the first one's environment: {summary:#}"
    );

    // Idempotent: a second prepare builds nothing.
    let again = swerl(&prepare);
    assert!(again.status.success(), "{}", text(&again));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(summary["env_cache_hits"], 2, "{summary:#}");
    assert!(
        summary["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["source_cached"] == true),
        "{summary:#}"
    );

    let valid = dir.path().join("valid.jsonl");
    let validate = swerl(&[
        "validate",
        "--tasks",
        t,
        "--env-root",
        e,
        "--repos",
        r,
        "--json",
        dir.path().join("validate.json").to_str().unwrap(),
        "--write-valid",
        valid.to_str().unwrap(),
        "--reruns",
        "2",
    ]);
    assert!(validate.status.success(), "{}", text(&validate));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("validate.json")).unwrap()).unwrap();
    let gold = &report[0]["gold"];
    assert!(
        gold["test_log"]
            .as_str()
            .unwrap()
            .contains("PASSED tests/test_cli.py::test_console_script"),
        "{gold:#}"
    );
    assert_eq!(gold["statuses"]["tests/test_fix1.py::test_fixed"], "PASSED");

    let run = dir.path().join("run");
    let rollout = swerl(&[
        "rollout",
        "--tasks",
        t,
        "--env-root",
        e,
        "--repos",
        r,
        "--out",
        run.to_str().unwrap(),
        "--policy",
        "scripted",
        "--samples",
        "1",
    ]);
    assert!(rollout.status.success(), "{}", text(&rollout));
    let trajectories = std::fs::read_to_string(run.join("trajectories.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = trajectories
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record["grade"]["resolved"], true, "{}", record["grade"]);
        let seen = record.to_string();
        // The agent's shell has the environment: the console script ran and so did the
        // task's interpreter.
        assert!(
            seen.contains("scaled: 4") || seen.contains("scaled:"),
            "{}",
            record["turns"]
        );
        assert!(seen.contains(&format!("{python}.")), "{}", record["turns"]);
    }
}

/// The trap SWE-bench's pytest tasks fell into: the repository's package is also installed
/// (here Debian's `pluggy`, which python3-pytest brings), the tests import that copy, and a
/// FAIL_TO_PASS test "already passes". Both validate and grade must call it an environment
/// error instead of a verdict.
#[test]
fn tests_importing_an_installed_copy_are_an_environment_error_in_validate_and_grade() {
    require_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repos/shadowed");
    for (path, text) in [
        ("src/pluggy/__init__.py", "def answer():\n    return 41\n"),
        (
            "tests/test_answer.py",
            "import pluggy\n\n\ndef test_answer():\n    assert pluggy.answer() == 42\n",
        ),
    ] {
        std::fs::create_dir_all(repo.join(path).parent().unwrap()).unwrap();
        std::fs::write(repo.join(path), text).unwrap();
    }
    let row = serde_json::json!({
        "instance_id": "shadowed-1", "repo": "swerl-test/shadowed", "base_commit": "",
        "problem_statement": "answer is off by one", "env_repo": "shadowed",
        "patch": "diff --git a/src/pluggy/__init__.py b/src/pluggy/__init__.py\n--- a/src/pluggy/__init__.py\n\
            +++ b/src/pluggy/__init__.py\n@@ -1,2 +1,2 @@\n def answer():\n-    return 41\n+    return 42\n",
        "test_patch": "", "FAIL_TO_PASS": ["tests/test_answer.py::test_answer"], "PASS_TO_PASS": [],
        "test_cmd": "python3 -m pytest -rA -p no:cacheprovider tests/test_answer.py", "log_parser": "pytest",
    });
    let tasks_file = dir.path().join("tasks.jsonl");
    std::fs::write(&tasks_file, row.to_string() + "\n").unwrap();
    let (t, e, r) = (
        tasks_file.to_str().unwrap(),
        dir.path().join("envs").to_str().unwrap().to_string(),
        dir.path().join("repos").to_str().unwrap().to_string(),
    );
    let json = dir.path().join("validate.json");
    let validate = swerl(&[
        "validate",
        "--tasks",
        t,
        "--env-root",
        &e,
        "--repos",
        &r,
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(!validate.status.success(), "{}", text(&validate));
    let stdout = String::from_utf8_lossy(&validate.stdout);
    assert!(stdout.contains("env-error"), "{}", text(&validate));
    assert!(
        stdout.contains("`pluggy` from /usr/lib/python3/dist-packages"),
        "{}",
        text(&validate)
    );

    let preds = dir.path().join("preds.jsonl");
    let pred = serde_json::json!({"instance_id": "shadowed-1", "model_name_or_path": "m", "model_patch": row["patch"]});
    std::fs::write(&preds, pred.to_string() + "\n").unwrap();
    let out = dir.path().join("grade.json");
    let grade = swerl(&[
        "grade",
        "--tasks",
        t,
        "--env-root",
        &e,
        "--repos",
        &r,
        "--predictions",
        preds.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!grade.status.success(), "{}", text(&grade));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(report["resolved"], 0);
    assert_eq!(report["environment_errors"], 1, "{report:#}");
    assert_eq!(report["reports"][0]["outcome"]["kind"], "environment_error");
}
