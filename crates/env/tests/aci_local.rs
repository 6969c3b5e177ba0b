//! The ACI tools and `SweEpisode` against a real bubblewrap sandbox (`LocalFactory`, needs
//! root like the sandbox crate's own tests) over a tiny prepared repository.

use std::path::{Path, PathBuf};
use std::time::Duration;

use swerl_agent::Environment;
use swerl_env::aci::AciConfig;
use swerl_env::episode::SweEpisode;
use swerl_sandbox::{host_command_checked, Limits, LocalFactory, SandboxSpec};

/// A prepared environment source: `repo/` holding a one-commit git repository.
struct Fixture {
    _dir: tempfile::TempDir,
    env_source: PathBuf,
}

fn git(repo: &Path, args: &[&str]) -> String {
    let mut full = vec![
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "-c",
        "init.defaultBranch=main",
    ];
    full.extend_from_slice(args);
    let out = host_command_checked("git", &full, repo).expect("git");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let env_source = dir.path().join("env");
    let repo = env_source.join("repo");
    std::fs::create_dir_all(repo.join("pkg")).unwrap();
    std::fs::write(
        repo.join("pkg/calc.py"),
        "def add(a, b):\n\treturn a - b  \n\n\ndef sub(a, b):\n\treturn a - b\n",
    )
    .unwrap();
    std::fs::write(repo.join("pkg/win.txt"), "one\r\ntwo\r\n").unwrap();
    std::fs::write(repo.join("README.md"), "calc\n").unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "base"]);
    Fixture {
        _dir: dir,
        env_source,
    }
}

fn episode(fx: &Fixture, command_timeout: Duration) -> SweEpisode {
    let spec = SandboxSpec {
        env_source: fx.env_source.clone(),
        workdir: "/testbed".into(),
        limits: Limits::default(),
        env: vec![],
        image: None,
    };
    let factory = LocalFactory::new().expect("factory");
    let config = AciConfig {
        command_timeout,
        ..AciConfig::default()
    };
    SweEpisode::start(&factory, &spec, "add() subtracts", config).expect("episode")
}

fn step(ep: &mut SweEpisode, cmd: &str) -> String {
    let step = ep.step(cmd).expect("no infrastructure failure");
    assert!(!step.submitted);
    step.observation
}

#[test]
fn tools_work_in_a_real_sandbox_and_the_diff_applies_to_the_source() {
    let fx = fixture();
    let mut ep = episode(&fx, Duration::from_secs(30));
    let obs = step(&mut ep, "open pkg/calc.py");
    assert!(
        obs.starts_with(
            "[File: /testbed/pkg/calc.py (6 lines total)]\n1:def add(a, b):\n2:\treturn a - b  \n"
        ),
        "{obs}"
    );
    assert!(
        obs.ends_with("(Current directory: /testbed, current file: /testbed/pkg/calc.py) bash-$"),
        "{obs}"
    );
    let obs = step(&mut ep, "edit 2:2 << 'EOF'\n\treturn a + b  \nEOF");
    assert!(
        obs.starts_with("File updated. Please review") && obs.contains("2:\treturn a + b  \n"),
        "{obs}"
    );
    let obs = step(&mut ep, "search_dir 'return a'");
    assert!(obs.starts_with("Found 2 matching lines in 1 file for \"return a\" in /testbed:\n/testbed/pkg/calc.py (2 matching lines)\n"), "{obs}");
    let obs = step(&mut ep, "find_file '*.txt'");
    assert!(
        obs.starts_with("Found 1 file named \"*.txt\" in /testbed:\n/testbed/pkg/win.txt\n"),
        "{obs}"
    );
    let obs = step(&mut ep, "create tests/test_calc.py");
    assert!(
        obs.starts_with("[File: /testbed/tests/test_calc.py (0 lines total)]"),
        "{obs}"
    );
    step(&mut ep, "edit 1:1 << 'EOF'\nfrom pkg.calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\nEOF");
    let obs = step(
        &mut ep,
        "cd pkg && python3 -c 'import calc; print(calc.add(2, 2))'",
    );
    assert!(obs.starts_with("4\n(Current directory: /testbed/pkg, current file: /testbed/tests/test_calc.py) bash-$"), "{obs}");
    let obs = step(&mut ep, "open win.txt");
    assert!(
        obs.starts_with("[File: /testbed/pkg/win.txt (2 lines total)]\n1:one\n2:two\n"),
        "{obs}"
    );
    step(&mut ep, "replace 'one\ntwo' 'ONE\nTWO'");
    let diff = ep.diff().expect("diff");
    assert!(
        diff.contains("+\treturn a + b  \n") && diff.contains("new file mode"),
        "{diff}"
    );
    assert!(diff.contains("+ONE\r\n+TWO\r\n"), "CRLF kept: {diff:?}");
    assert!(ep.step("submit").unwrap().submitted);

    // The environment source is untouched, and the patch applies to a clone of it.
    let repo = fx.env_source.join("repo");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    let clone = fx.env_source.join("clone");
    git(&fx.env_source, &["clone", "-q", "repo", "clone"]);
    std::fs::write(fx.env_source.join("p.diff"), &diff).unwrap();
    git(&clone, &["apply", "../p.diff"]);
    let calc = std::fs::read_to_string(clone.join("pkg/calc.py")).unwrap();
    assert!(
        calc.starts_with("def add(a, b):\n\treturn a + b  \n"),
        "{calc}"
    );
    assert!(clone.join("tests/test_calc.py").is_file());
    assert_eq!(
        std::fs::read(clone.join("pkg/win.txt")).unwrap(),
        b"ONE\r\nTWO\r\n"
    );
}

#[test]
fn missing_files_and_directories_are_observations() {
    let fx = fixture();
    let mut ep = episode(&fx, Duration::from_secs(30));
    assert!(
        step(&mut ep, "open nope.py").starts_with("Error: File /testbed/nope.py does not exist\n")
    );
    let obs = step(&mut ep, "open pkg");
    assert!(
        obs.starts_with("Error: /testbed/pkg is a directory, not a file"),
        "{obs}"
    );
    assert!(step(&mut ep, "search_dir x /nowhere")
        .starts_with("Error: directory /nowhere does not exist\n"));
}

#[test]
fn a_command_that_times_out_says_so_and_the_episode_goes_on() {
    let fx = fixture();
    let mut ep = episode(&fx, Duration::from_secs(1));
    let obs = step(&mut ep, "echo started; sleep 30");
    assert!(
        obs.contains("started") && obs.contains("timed out"),
        "{obs}"
    );
    assert!(
        obs.ends_with("(Current directory: /testbed, current file: none) bash-$"),
        "{obs}"
    );
    let obs = step(&mut ep, "open README.md");
    assert!(
        obs.starts_with("[File: /testbed/README.md (1 lines total)]\n1:calc\n"),
        "{obs}"
    );
}

#[test]
fn diff_of_an_untouched_workspace_is_empty() {
    let fx = fixture();
    let mut ep = episode(&fx, Duration::from_secs(30));
    step(&mut ep, "python3 -c 'import pkg.calc'");
    assert_eq!(ep.diff().expect("diff"), "");
}

#[test]
fn tool_scripts_ignore_the_agents_shell_functions() {
    let fx = fixture();
    let mut ep = episode(&fx, Duration::from_secs(30));
    step(
        &mut ep,
        "cd pkg && grep() { echo hijacked; } && find() { echo hijacked; } && mkdir() { :; }",
    );
    let obs = step(&mut ep, "search_dir zzz_absent");
    assert!(
        obs.starts_with("No matches for \"zzz_absent\" in /testbed/pkg\n"),
        "{obs}"
    );
    let obs = step(&mut ep, "find_file nothing.py");
    assert!(
        obs.starts_with("No files named \"nothing.py\" in /testbed/pkg\n"),
        "{obs}"
    );
    let obs = step(&mut ep, "search_dir 'def add'");
    assert!(obs.starts_with("Found 1 matching line in 1 file"), "{obs}");
    let obs = step(&mut ep, "create sub/new.py");
    assert!(
        obs.starts_with("[File: /testbed/pkg/sub/new.py (0 lines total)]"),
        "{obs}"
    );
    // The shell that ran the tools is still the agent's: same directory, same functions.
    let obs = step(&mut ep, "grep x");
    assert!(obs.starts_with("hijacked\n(Current directory: /testbed/pkg, current file: /testbed/pkg/sub/new.py) bash-$"), "{obs}");
}
