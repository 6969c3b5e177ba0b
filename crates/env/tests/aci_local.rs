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
        ..Default::default()
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

/// The attacks of issue 13 through every file tool, against any backend: writes to the
/// host's kernel settings through /proc/sys, reads of endless devices, FIFOs and the
/// operator's terminal. Each attempt must be an observation (never a hang, never a host
/// change) and the episode must go on.
mod hostile_file_tools {
    use super::*;
    use swerl_sandbox::SandboxFactory;

    const SYSCTL: &str = "/proc/sys/kernel/printk_ratelimit_burst";

    /// Holds the host value of a harmless kernel setting: a file lock keeps such tests (in
    /// every test binary) from interleaving, and drop restores the value if an attack got
    /// through, so even a failing run leaves the host as it was.
    struct HostSysctl {
        before: String,
        _lock: nix::fcntl::Flock<std::fs::File>,
    }

    impl HostSysctl {
        fn hold() -> HostSysctl {
            let file = std::fs::File::create("/tmp/swerl-sysctl-attack.lock").unwrap();
            let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| e)
                .unwrap();
            let before = std::fs::read_to_string(SYSCTL).unwrap();
            HostSysctl {
                before,
                _lock: lock,
            }
        }

        fn now(&self) -> String {
            std::fs::read_to_string(SYSCTL).unwrap()
        }
    }

    impl Drop for HostSysctl {
        fn drop(&mut self) {
            if self.now() != self.before {
                std::fs::write(SYSCTL, &self.before).unwrap();
            }
        }
    }

    /// Runs every attack in a fresh episode of `factory`.
    pub fn every_file_tool_is_refused(factory: &dyn SandboxFactory, spec: &SandboxSpec) {
        let config = AciConfig {
            command_timeout: Duration::from_secs(30),
            ..AciConfig::default()
        };
        let mut ep = SweEpisode::start(factory, spec, "attack", config).expect("episode");
        let host = HostSysctl::hold();
        let bumped = host.before.trim().parse::<u64>().unwrap() + 1;
        let edit = |file: &str| format!("edit --file {file} 1:1 << 'EOF'\n{bumped}\nEOF");
        let attacks = [
            format!("open {SYSCTL}"),
            edit(SYSCTL),
            format!("create {SYSCTL}"),
            format!("search_file 1 {SYSCTL}"),
            "open /testbed/../proc/sys/kernel/printk_ratelimit_burst".to_string(),
            // Through a symlink the agent planted, and through a regular file it opened
            // and then swapped for a symlink into /proc/sys.
            format!("ln -sf {SYSCTL} /tmp/burst"),
            edit("/tmp/burst"),
            "echo 1 > /tmp/plain".to_string(),
            "open /tmp/plain".to_string(),
            format!("ln -sf {SYSCTL} /tmp/plain"),
            format!("edit 1:1 << 'EOF'\n{bumped}\nEOF"),
            format!("replace --replace-all {} {bumped}", host.before.trim()),
            "goto 1".to_string(),
            "scroll_down".to_string(),
        ];
        for attack in &attacks {
            let obs = step(&mut ep, attack);
            assert_eq!(
                host.now(),
                host.before,
                "`{attack}` changed the host: {obs}"
            );
            let is_shell = attack.starts_with("ln ") || attack.starts_with("echo ");
            let opened_plain = attack == "open /tmp/plain";
            if !is_shell && !opened_plain {
                assert!(
                    obs.starts_with("Error: "),
                    "`{attack}` was not refused: {obs}"
                );
            }
        }
        // Endless devices, FIFOs and the terminal: refused at once, nothing blocks.
        step(&mut ep, "mkfifo /tmp/fifo; ln -sf /dev/zero /tmp/zero");
        for target in [
            "/dev/zero",
            "/tmp/zero",
            "/tmp/fifo",
            "/dev/tty",
            "/proc/self/environ",
        ] {
            for tool in ["open", "search_file x"] {
                let obs = step(&mut ep, &format!("{tool} {target}"));
                assert!(obs.starts_with("Error: "), "`{tool} {target}`: {obs}");
            }
        }
        let obs = step(&mut ep, "echo still here");
        assert!(obs.starts_with("still here\n"), "{obs}");
        ep.sandbox_mut().teardown().unwrap();
    }
}

#[test]
fn every_file_tool_refuses_proc_sys_devices_and_fifos_on_the_local_backend() {
    let fx = fixture();
    let spec = SandboxSpec {
        env_source: fx.env_source.clone(),
        workdir: "/testbed".into(),
        limits: Limits::default(),
        env: vec![],
        image: None,
        ..Default::default()
    };
    let factory = LocalFactory::new().expect("factory");
    hostile_file_tools::every_file_tool_is_refused(&factory, &spec);
}

/// The same attacks through the container backend (podman's service, as the other container
/// tests: scripts/setup-containers).
#[test]
fn every_file_tool_refuses_proc_sys_devices_and_fifos_on_the_container_backend() {
    let spec = SandboxSpec {
        env_source: "/nonexistent-env-source".into(),
        workdir: "/testbed".into(),
        limits: Limits::default(),
        env: vec![],
        image: None,
        ..Default::default()
    };
    let factory = swerl_container::ContainerFactory::new(Default::default()).unwrap_or_else(|e| {
        panic!(
            "container tests need podman's Docker API service: run scripts/setup-containers ({e})"
        )
    });
    hostile_file_tools::every_file_tool_is_refused(&factory, &spec);
}
