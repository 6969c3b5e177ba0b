//! Prepared environment sources: single deterministic commit, no future history, atomic.

use std::path::Path;
use swerl_env::prepare::{head_commit, is_complete, prepare_env_source, RepoSource};
use swerl_sandbox::host_command;

/// Runs git in `dir` (test setup and inspection only) and returns stdout.
fn git(dir: &Path, args: &[&str]) -> (bool, String) {
    let mut argv = vec![
        "GIT_CONFIG_GLOBAL=/dev/null",
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
    ];
    argv.extend_from_slice(args);
    let out = host_command("env", &argv, dir).unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn plain_repo(dir: &Path) {
    write(
        &dir.join("calc/ops.py"),
        "def add(a, b):\n    return a - b\n",
    );
    write(&dir.join("tests/test_ops.py"), "from calc.ops import add\n");
    write(&dir.join(".git/secret"), "history that must not leak");
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn plain_files_become_one_deterministic_commit() {
    let (src, root_a, root_b) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    plain_repo(src.path());
    let a = prepare_env_source(root_a.path(), "calc-1", RepoSource::Files(src.path())).unwrap();
    let b = prepare_env_source(root_b.path(), "calc-1", RepoSource::Files(src.path())).unwrap();
    assert!(is_complete(&a));
    assert_eq!(
        std::fs::read_to_string(a.join("repo/calc/ops.py")).unwrap(),
        "def add(a, b):\n    return a - b\n"
    );
    assert!(
        !a.join("repo/.git/secret").exists(),
        "the source's .git must not be copied"
    );
    let (_, log) = git(
        &a.join("repo"),
        &["log", "--format=%an %ae %ad %cd %s", "--date=unix"],
    );
    assert_eq!(log, "swerl swerl@localhost 946684800 946684800 base");
    assert_eq!(head_commit(&a).unwrap(), head_commit(&b).unwrap());
    let (_, status) = git(&a.join("repo"), &["status", "--porcelain"]);
    assert_eq!(status, "", "all files committed");
    assert_eq!(
        entries(root_a.path()),
        ["calc-1"],
        "no temporary directory left"
    );
}

#[test]
fn an_existing_source_is_reused() {
    let (src, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    plain_repo(src.path());
    let first = prepare_env_source(root.path(), "calc-1", RepoSource::Files(src.path())).unwrap();
    write(&first.join("repo/marker"), "kept");
    let second = prepare_env_source(root.path(), "calc-1", RepoSource::Files(src.path())).unwrap();
    assert_eq!(first, second);
    assert!(
        second.join("repo/marker").exists(),
        "a complete source must not be rebuilt"
    );
}

#[test]
fn git_checkout_is_exported_without_future_history() {
    let (checkout, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let repo = checkout.path();
    assert!(git(repo, &["init", "-q"]).0);
    write(&repo.join("lib.py"), "BUG = True\n");
    assert!(git(repo, &["add", "-A"]).0 && git(repo, &["commit", "-qm", "base"]).0);
    let (_, base) = git(repo, &["rev-parse", "HEAD"]);
    write(&repo.join("lib.py"), "BUG = False\n");
    assert!(git(repo, &["commit", "-qam", "the fix"]).0);
    let (_, fix) = git(repo, &["rev-parse", "HEAD"]);
    write(&repo.join("lib.py"), "uncommitted\n");

    let env = prepare_env_source(
        root.path(),
        "lib-1",
        RepoSource::Git {
            checkout: repo,
            commit: &base,
        },
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(env.join("repo/lib.py")).unwrap(),
        "BUG = True\n"
    );
    let (_, count) = git(&env.join("repo"), &["rev-list", "--all", "--count"]);
    assert_eq!(count, "1");
    assert!(
        !git(&env.join("repo"), &["cat-file", "-e", &fix]).0,
        "the fix commit must be unreachable"
    );
    // The checkout itself is untouched: same HEAD, same uncommitted change, clean index.
    assert_eq!(git(repo, &["rev-parse", "HEAD"]).1, fix);
    assert_eq!(git(repo, &["status", "--porcelain"]).1, "M lib.py");
}

#[test]
fn a_failed_preparation_leaves_nothing_behind() {
    let (checkout, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    assert!(git(checkout.path(), &["init", "-q"]).0);
    let err = prepare_env_source(
        root.path(),
        "x-1",
        RepoSource::Git {
            checkout: checkout.path(),
            commit: "deadbeef",
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("deadbeef"), "{err}");
    assert!(
        entries(root.path()).is_empty(),
        "{:?}",
        entries(root.path())
    );
    let missing = root.path().join("nope");
    assert!(prepare_env_source(root.path(), "x-1", RepoSource::Files(&missing)).is_err());
    assert!(entries(root.path()).is_empty());
}

#[test]
fn env_sources_prepare_from_the_named_repository_or_explain() {
    use swerl_env::prepare::EnvSources;
    let (repos, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    plain_repo(&repos.path().join("calc"));
    let mut task = swerl_env::task::Task::from_json(serde_json::json!({
        "instance_id": "calc-7", "repo": "someone/other", "problem_statement": "", "patch": "", "test_patch": "",
        "FAIL_TO_PASS": [], "PASS_TO_PASS": [], "env_repo": "calc"}))
    .unwrap();
    let sources = EnvSources {
        env_root: root.path().join("envs"),
        repos: Some(repos.path().to_path_buf()),
        repos_in_image: false,
    };
    let env = sources.source_for(&task).unwrap();
    assert_eq!(env, root.path().join("envs/calc-7").canonicalize().unwrap());
    assert!(env.join("repo/calc/ops.py").is_file());

    task.instance_id = "calc-8".into();
    task.extra.clear();
    let err = sources.source_for(&task).unwrap_err().to_string();
    assert!(
        err.contains("no prepared source") && err.contains("someone__other"),
        "{err}"
    );
    let none = EnvSources {
        env_root: root.path().join("envs"),
        repos: None,
        repos_in_image: false,
    };
    assert!(none
        .source_for(&task)
        .unwrap_err()
        .to_string()
        .contains("no --repos given"));
    // With the repository in the task's image nothing is looked up or prepared.
    let in_image = EnvSources {
        repos_in_image: true,
        ..none
    };
    let path = in_image.source_for(&task).unwrap();
    assert_eq!(path, root.path().join("envs").join(&task.instance_id));
    assert!(!path.exists());
}

/// Regression: a source prepared moments before an episode and then edited within the same
/// second by a same-length line looked unchanged to git's stat check (and to Python's
/// bytecode cache), so the agent's diff came out empty. Prepared files are aged to the
/// commit date, so any later edit changes the whole-second mtime.
#[test]
fn same_second_same_length_edit_is_seen_by_git() {
    let (src, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    plain_repo(src.path());
    let source = prepare_env_source(root.path(), "calc-1", RepoSource::Files(src.path())).unwrap();
    let repo = source.join("repo");
    let ops = repo.join("calc/ops.py");
    let mtime = std::fs::metadata(&ops).unwrap().modified().unwrap();
    assert_eq!(
        mtime
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        946_684_800,
        "prepared files carry the commit's date"
    );
    // Copy the index first, so it is not "racily clean" (newer than the edit).
    std::fs::copy(repo.join(".git/index"), repo.join(".git/index.copy")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&ops, "def add(a, b):\n    return a + b\n").unwrap();
    let idx = format!("GIT_INDEX_FILE={}", repo.join(".git/index.copy").display());
    let out = host_command("env", &[&idx, "git", "diff", "--stat"], &repo).unwrap();
    let stat = String::from_utf8_lossy(&out.stdout);
    assert!(
        stat.contains("calc/ops.py"),
        "git missed the edit: {stat:?}"
    );
}

/// Task rows are hostile input: an `env_repo` that is absolute, climbs out with `..` or
/// passes through a symlink must never select a host directory outside `--repos` (an
/// absolute one used to replace the base: `Path::join` drops it, and the host directory was
/// copied into the sandbox).
#[test]
fn env_repo_outside_the_repos_root_is_refused_by_name() {
    use swerl_env::prepare::EnvSources;
    let (repos, root, secret) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    std::fs::write(secret.path().join("secret.txt"), "host secret\n").unwrap();
    plain_repo(&repos.path().join("calc"));
    std::os::unix::fs::symlink(secret.path(), repos.path().join("linked")).unwrap();
    let sources = EnvSources {
        env_root: root.path().join("envs"),
        repos: Some(repos.path().to_path_buf()),
        repos_in_image: false,
    };
    let outside = secret.path().to_str().unwrap().to_string();
    for (i, env_repo) in [outside.as_str(), "../calc", "calc/../../x", "linked"]
        .into_iter()
        .enumerate()
    {
        let mut task = swerl_env::task::Task::from_json(serde_json::json!({
            "instance_id": format!("evil-{i}"), "repo": "someone/other", "problem_statement": "",
            "patch": "", "test_patch": "", "FAIL_TO_PASS": [], "PASS_TO_PASS": []}))
        .unwrap();
        task.extra.insert("env_repo".into(), env_repo.into());
        let err = sources
            .source_for(&task)
            .expect_err(&format!("env_repo `{env_repo}` must be refused"))
            .to_string();
        assert!(
            err.contains("env_repo") && err.contains(env_repo),
            "the error names the field and the value: {err}"
        );
        let prepared = root.path().join("envs").join(&task.instance_id);
        assert!(!prepared.exists(), "nothing was prepared for `{env_repo}`");
    }
}
