//! An image that carries its repository with upstream history (as SWE-bench images do: the
//! fix is a later commit in `.git`) must give the agent a repository with one commit and no
//! trace of the later ones (docs/method.md section 10, point 10).

mod common;

use common::{factory_with, run, spec};
use swerl_container::ContainerConfig;
use swerl_sandbox::Sandbox;

const IMAGE: &str = "swerl-test-history:latest";

/// Saves an image whose /testbed is at "base" while a branch and a tag point at a later
/// "fix" commit; returns the fix's commit id.
fn image_with_future_history() -> String {
    let f = factory_with(ContainerConfig {
        squash_history: false,
        ..ContainerConfig::default()
    });
    let mut sb = f
        .create_container(&spec())
        .expect("a sandbox of the test image");
    let setup = run(
        &mut sb,
        "git config user.name t && git config user.email t@t && \
         printf 'def mul(a, b):\\n    return a * b\\n' >> calc.py && \
         git commit -qam 'the fix' && git branch upstream && git tag v2 && \
         git reset -q --hard HEAD~1 && git rev-parse upstream",
    );
    assert_eq!(setup.exit_code, Some(0), "{}", setup.output);
    sb.save_as_image(IMAGE)
        .expect("commit the container as an image");
    sb.teardown().unwrap();
    assert_image_is_not_a_sandbox(IMAGE);
    setup.output.trim().to_string()
}

/// Containers other tools make from a saved image must not carry the sandbox label (the
/// sweep would remove them) nor the sandbox's init entrypoint.
fn assert_image_is_not_a_sandbox(image: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let socket = ContainerConfig::default();
    let docker =
        bollard::Docker::connect_with_unix(socket.socket_path(), 60, bollard::API_DEFAULT_VERSION)
            .unwrap();
    let inspected = rt.block_on(docker.inspect_image(image)).unwrap();
    let config = inspected.config.unwrap_or_default();
    let labels = config.labels.unwrap_or_default();
    assert_eq!(
        labels.get(swerl_container::LABEL).map(String::as_str),
        Some("0")
    );
    assert!(config.entrypoint.unwrap_or_default().is_empty());
}

#[test]
fn an_images_future_history_is_gone_and_the_tree_is_the_base() {
    let fix = image_with_future_history();
    let with_image = || {
        let mut s = spec();
        s.image = Some(IMAGE.to_string());
        s
    };

    // As saved, the history is there (so the check below is not vacuous).
    let keep = factory_with(ContainerConfig {
        squash_history: false,
        ..ContainerConfig::default()
    });
    let mut raw = keep.create_container(&with_image()).unwrap();
    let commits = run(&mut raw, "git rev-list --all | wc -l");
    assert_eq!(commits.output.trim(), "2", "{}", commits.output);
    raw.teardown().unwrap();

    let f = factory_with(ContainerConfig::default());
    let mut sb = f.create_container(&with_image()).unwrap();
    for (cmd, want) in [
        ("git rev-list --all | wc -l", "1"),
        ("git tag | wc -l", "0"),
        ("git branch -a | wc -l", "1"),
        ("git status --porcelain | wc -l", "0"),
        ("grep -c mul calc.py || true", "0"),
        (
            "git fsck --unreachable --no-reflogs 2>/dev/null | wc -l",
            "0",
        ),
    ] {
        let out = run(&mut sb, cmd);
        assert_eq!(out.output.trim(), want, "`{cmd}`: {}", out.output);
    }
    let lookup = run(&mut sb, &format!("git cat-file -t {fix}"));
    assert_ne!(
        lookup.exit_code,
        Some(0),
        "the fix's commit is still readable"
    );
    // The agent's diff is against the base tree.
    let edit = run(&mut sb, "echo '# edited' >> calc.py && git diff --stat");
    assert!(edit.output.contains("calc.py"), "{}", edit.output);
    sb.teardown().unwrap();
}
