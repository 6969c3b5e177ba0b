//! Building task environments (`swerl prepare`): a shared Python environment per
//! (interpreter, packages), and per task the repository installed into it.
//!
//! Layout under the environment root:
//! ```text
//! <env-root>/envs/<key>/          shared, read-only: python/ (a relocated interpreter, if
//!                                 the sandbox cannot see the host's), venv/, env.json, build.log
//! <env-root>/envs/<key>.lock      held while that environment is built
//! <env-root>/<instance_id>/       the task's source: repo/ (base_commit, one commit), what
//!                                 the install step changed in venv/ (an overlay layer over the
//!                                 shared one), swerl-env.json (the manifest), install.log
//! ```
//! Inside a sandbox `/env` shows the task's source over the shared environment
//! (`SandboxSpec::shared_env`), so `/env/venv` is the task's virtual environment with the
//! repository installed in editable mode from `/testbed`, and an agent's `pip install`
//! lands in its own copy-on-write layer.
//!
//! SWE-bench builds the same split: an environment image per (repo, version) from
//! environment_setup_commit, then an instance image that runs pre_install and install at
//! base_commit. Here the key of a shared environment is a hash of everything that decides
//! its contents (interpreter version and origin, the requirements text, package lists, the
//! build environment variables and this recipe's version), so tasks that share
//! (repo, version, environment_setup_commit) share one, and a changed input builds a new one.
//!
//! Builds run the task's own commands, so they run inside the sandbox like everything else,
//! with the one difference that the network is reachable. Their result is sealed before use:
//! owned by root, set-uid/set-gid bits cleared, device nodes other than overlay whiteouts,
//! fifos and sockets removed. Everything is built in a temporary directory and renamed into
//! place when complete, under a lock, so a killed prepare never leaves a half-built
//! environment under a final name, and a rerun skips what is complete.

use crate::envspec::{clean_requirements, env_spec, EnvSpec, Packages};
use crate::grade::shell_quote;
use crate::prepare::{export_single_commit, PrepareError, RepoSource};
use crate::python::{relocate, Interpreter, PythonSources};
use crate::task::Task;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use swerl_sandbox::{host_command, Limits, LocalFactory, Sandbox, SandboxSpec};

/// The manifest file in a prepared task source.
pub const MANIFEST: &str = "swerl-env.json";
/// Bumped whenever the build steps change, so older environments are not reused.
const RECIPE: u32 = 2;
/// The virtual environment inside the sandbox.
pub const VENV: &str = "/env/venv";

/// How environments are built.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub env_root: PathBuf,
    pub pythons: PythonSources,
    /// Extra variables for build commands only (e.g. `PIP_INDEX_URL` of a mirror).
    pub build_env: Vec<(String, String)>,
    /// Wall-clock limit of each build script.
    pub timeout: Duration,
}

/// What a prepared task's sandboxes need to know: written by `prepare`, read by every
/// sandbox made from the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The shared environment, relative to the environment root (`envs/<key>`).
    pub shared_env: String,
    pub env_key: String,
    /// Full version of the interpreter, e.g. "3.9.2".
    pub python: String,
    /// Where the spec came from.
    pub origin: String,
    /// Run before every test command.
    pub eval_commands: Vec<String>,
    /// Commands of the spec that were not run, and why.
    pub skipped: Vec<String>,
}

impl Manifest {
    /// The variables that activate the environment in a sandbox shell.
    pub fn activation(&self) -> Vec<(String, String)> {
        vec![
            (
                "PATH".into(),
                format!("{VENV}/bin:/usr/local/bin:/usr/bin:/bin"),
            ),
            ("VIRTUAL_ENV".into(), VENV.into()),
        ]
    }
}

/// Reads the manifest of a prepared source (`None` for a source without an environment).
pub fn read_manifest(env_source: &Path) -> Result<Option<Manifest>, String> {
    let path = env_source.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}; run `swerl prepare` again", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Sets up `spec` for a sandbox over a prepared source: the shared environment as the layer
/// under it and the activation variables (the caller's own variables win). Returns the
/// manifest, `None` for a source without an environment.
pub fn apply_environment(spec: &mut SandboxSpec) -> Result<Option<Manifest>, String> {
    let Some(manifest) = read_manifest(&spec.env_source)? else {
        return Ok(None);
    };
    let root = spec
        .env_source
        .parent()
        .ok_or_else(|| format!("{} has no parent", spec.env_source.display()))?;
    let shared = root.join(&manifest.shared_env);
    let sane = manifest.shared_env.starts_with("envs/")
        && !manifest.shared_env.contains("..")
        && shared.join("env.json").is_file();
    if !sane {
        return Err(format!(
            "{}: shared environment `{}` is missing; run `swerl prepare` again",
            spec.env_source.join(MANIFEST).display(),
            manifest.shared_env
        ));
    }
    spec.shared_env = Some(shared);
    let mut env = manifest.activation();
    env.retain(|(k, _)| !spec.env.iter().any(|(key, _)| key == k));
    env.append(&mut spec.env);
    spec.env = env;
    Ok(Some(manifest))
}

/// What preparing one task did.
#[derive(Debug, Clone, Serialize)]
pub struct PrepareReport {
    pub instance_id: String,
    pub source: PathBuf,
    /// `None` for a task without an environment spec (system Python).
    pub env_key: Option<String>,
    /// The shared environment was already built.
    pub env_cached: bool,
    /// The task's source was already prepared with this environment.
    pub source_cached: bool,
    pub env_seconds: f64,
    pub install_seconds: f64,
}

/// Prepares `task`: its shared environment (built or found) and its source with the
/// repository installed. Idempotent; safe to run concurrently with other prepares.
pub fn prepare_task(
    task: &Task,
    repo: RepoSource<'_>,
    factory: &LocalFactory,
    opts: &BuildOptions,
) -> Result<PrepareReport, PrepareError> {
    let ctx = Ctx::new(&task.instance_id);
    let Some(spec) = env_spec(task).map_err(|e| ctx.invalid(e.to_string()))? else {
        let source = crate::prepare::prepare_env_source(&opts.env_root, &task.instance_id, repo)?;
        return Ok(PrepareReport {
            instance_id: task.instance_id.clone(),
            source,
            env_key: None,
            env_cached: true,
            source_cached: true,
            env_seconds: 0.0,
            install_seconds: 0.0,
        });
    };
    let interp = opts
        .pythons
        .find(&spec.python)
        .map_err(|e| ctx.invalid(e.to_string()))?;
    let requirements = requirements_text(&ctx, task, &spec, repo)?;
    let t = Instant::now();
    let (key, env_cached) = ensure_shared_env(&ctx, &spec, &interp, &requirements, factory, opts)?;
    let env_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (source, source_cached) =
        ensure_task_source(&ctx, task, &spec, &interp, &key, repo, factory, opts)?;
    Ok(PrepareReport {
        instance_id: task.instance_id.clone(),
        source,
        env_key: Some(key),
        env_cached,
        source_cached,
        env_seconds,
        install_seconds: t.elapsed().as_secs_f64(),
    })
}

/// Error context for one task.
struct Ctx {
    instance_id: String,
}

impl Ctx {
    fn new(id: &str) -> Ctx {
        Ctx {
            instance_id: id.to_string(),
        }
    }
    fn invalid(&self, reason: String) -> PrepareError {
        PrepareError::Invalid {
            instance_id: self.instance_id.clone(),
            reason,
        }
    }
    fn io(&self, path: &Path, source: std::io::Error) -> PrepareError {
        PrepareError::Io {
            instance_id: self.instance_id.clone(),
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The requirements file of the spec, read from the repository at environment_setup_commit
/// (or base_commit), cleaned as SWE-bench does; empty when the spec names none.
fn requirements_text(
    ctx: &Ctx,
    task: &Task,
    spec: &EnvSpec,
    repo: RepoSource<'_>,
) -> Result<String, PrepareError> {
    let Packages::Requirements { paths } = &spec.packages else {
        return Ok(String::new());
    };
    let commit = if task.environment_setup_commit.is_empty() {
        &task.base_commit
    } else {
        &task.environment_setup_commit
    };
    let read = |path: &str| -> Option<String> {
        match repo {
            RepoSource::Git { checkout, .. } => {
                let spec = format!("{commit}:{path}");
                let out = host_command("git", &["show", &spec], checkout).ok()?;
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            }
            RepoSource::Files(dir) => std::fs::read_to_string(dir.join(path)).ok(),
        }
    };
    for path in paths {
        if let Some(text) = read(path) {
            return Ok(clean_requirements(path, &text, &read));
        }
    }
    Err(ctx.invalid(format!(
        "{}: none of its requirements files ({}) exists at commit {commit}",
        spec.origin,
        paths.join(", ")
    )))
}

/// The key of a shared environment: a hash of everything that decides its contents.
fn env_key(
    spec: &EnvSpec,
    interp: &Interpreter,
    requirements: &str,
    opts: &BuildOptions,
) -> String {
    let material = serde_json::json!({
        "recipe": RECIPE,
        "python": interp.version,
        "interpreter": interp.executable,
        "requirements": requirements,
        "packages": spec.packages,
        "pip_packages": spec.pip_packages,
        "upgrade_pip": spec.upgrade_pip,
        "build_env": opts.build_env,
    });
    let digest = Sha256::digest(material.to_string().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Finds or builds the shared environment; returns (key, was it already built).
fn ensure_shared_env(
    ctx: &Ctx,
    spec: &EnvSpec,
    interp: &Interpreter,
    requirements: &str,
    factory: &LocalFactory,
    opts: &BuildOptions,
) -> Result<(String, bool), PrepareError> {
    let key = env_key(spec, interp, requirements, opts);
    let envs = opts.env_root.join("envs");
    std::fs::create_dir_all(&envs).map_err(|e| ctx.io(&envs, e))?;
    let target = envs.join(&key);
    if target.join("env.json").is_file() {
        return Ok((key, true));
    }
    let _lock = lock(ctx, &envs.join(format!("{key}.lock")))?;
    if target.join("env.json").is_file() {
        return Ok((key, true));
    }
    remove_leftovers(ctx, &envs, &key)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{key}.tmp-"))
        .tempdir_in(&envs)
        .map_err(|e| ctx.io(&envs, e))?;
    let dir = tmp.path();
    for sub in ["repo", ".build"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| ctx.io(dir, e))?;
    }
    relocate(interp, dir).map_err(|e| ctx.invalid(e.to_string()))?;
    let reqs = dir.join(".build/requirements.txt");
    std::fs::write(&reqs, requirements).map_err(|e| ctx.io(&reqs, e))?;
    let script = env_script(spec, interp);
    let changes = run_build(ctx, factory, opts, dir, None, &script, "build.log")?;
    merge_layer(&changes, dir).map_err(|e| ctx.io(dir, e))?;
    let _ = std::fs::remove_dir_all(&changes);
    for sub in ["repo", ".build"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
    seal(dir).map_err(|e| ctx.io(dir, e))?;
    let info = serde_json::json!({"key": key, "python": interp.version, "origin": spec.origin, "spec": spec});
    write_json(ctx, &dir.join("env.json"), &info)?;
    let kept = tmp.keep();
    std::fs::rename(&kept, &target).map_err(|e| ctx.io(&target, e))?;
    Ok((key, false))
}

/// The shared environment's build: a virtual environment on the spec's interpreter, then
/// its packages (SWE-bench's environment image, with pip where it uses conda).
fn env_script(spec: &EnvSpec, interp: &Interpreter) -> String {
    let mut lines = vec![
        "set -ex".to_string(),
        format!(
            "{} -m venv {VENV}",
            shell_quote(&interp.sandbox_executable())
        ),
        format!(". {VENV}/bin/activate"),
    ];
    if spec.upgrade_pip {
        // setuptools 81 dropped pkg_resources, which repositories of SWE-bench's era import
        // at run time; the conda environments SWE-bench's logs came from still had it.
        lines.push("python -m pip install --upgrade pip wheel 'setuptools<81'".into());
    }
    match &spec.packages {
        Packages::None => {}
        Packages::Requirements { .. } => {
            lines.push("python -m pip install -r /env/.build/requirements.txt".into())
        }
        // Conda package names installed with pip (module docs of envspec); they are shell
        // words in SWE-bench's scripts too.
        Packages::List { names } => {
            lines.push(format!("python -m pip install {}", names.join(" ")))
        }
    }
    if !spec.pip_packages.is_empty() {
        lines.push(format!(
            "python -m pip install {}",
            spec.pip_packages.join(" ")
        ));
    }
    lines.join("\n")
}

/// Commands that install system packages cannot run: the sandbox's /usr is the host's,
/// read-only. They are reported as skipped instead.
fn is_system_install(command: &str) -> bool {
    let c = command.trim_start();
    ["apt-get ", "apt ", "yum ", "dnf ", "apk "]
        .iter()
        .any(|p| c.starts_with(p) || c.contains(&format!("&& {p}")))
}

/// The task's source: the repository at base_commit, installed into the shared environment.
#[allow(clippy::too_many_arguments)]
fn ensure_task_source(
    ctx: &Ctx,
    task: &Task,
    spec: &EnvSpec,
    interp: &Interpreter,
    key: &str,
    repo: RepoSource<'_>,
    factory: &LocalFactory,
    opts: &BuildOptions,
) -> Result<(PathBuf, bool), PrepareError> {
    let root = &opts.env_root;
    let target = root.join(&task.instance_id);
    let current = |t: &Path| {
        read_manifest(t)
            .ok()
            .flatten()
            .is_some_and(|m| m.env_key == key)
    };
    if current(&target) {
        return Ok((target, true));
    }
    let _lock = lock(ctx, &root.join(format!(".{}.lock", task.instance_id)))?;
    if current(&target) {
        return Ok((target, true));
    }
    remove_leftovers(ctx, root, &task.instance_id)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.tmp-", task.instance_id))
        .tempdir_in(root)
        .map_err(|e| ctx.io(root, e))?;
    let dir = tmp.path();
    export_single_commit(&task.instance_id, repo, dir)?;
    let shared = root.join("envs").join(key);
    let (script, skipped) = install_script(spec);
    let changes = run_build(
        ctx,
        factory,
        opts,
        dir,
        Some(&shared),
        &script,
        "install.log",
    )?;
    merge_layer(&changes, dir).map_err(|e| ctx.io(dir, e))?;
    let _ = std::fs::remove_dir_all(&changes);
    seal(dir).map_err(|e| ctx.io(dir, e))?;
    let manifest = Manifest {
        shared_env: format!("envs/{key}"),
        env_key: key.to_string(),
        python: interp.version.clone(),
        origin: spec.origin.clone(),
        eval_commands: spec.eval_commands.clone(),
        skipped,
    };
    write_json(ctx, &dir.join(MANIFEST), &manifest)?;
    replace_dir(ctx, tmp.keep(), &target)?;
    Ok((target, false))
}

/// pre_install and install in the repository, as SWE-bench's instance image runs them; a
/// tracked file the install changed is folded into the single commit, as SWE-bench commits
/// it, so the agent's diff starts clean.
fn install_script(spec: &EnvSpec) -> (String, Vec<String>) {
    let mut lines = vec![
        "set -ex".to_string(),
        format!(". {VENV}/bin/activate"),
        "cd /testbed".into(),
    ];
    let mut skipped = Vec::new();
    for command in spec.pre_install.iter().chain(&spec.install) {
        if is_system_install(command) {
            skipped.push(format!(
                "`{command}`: installs system packages, which the local sandbox cannot (its /usr is the host's); \
                 install them on the host if the tests need them"
            ));
        } else {
            lines.push(command.clone());
        }
    }
    lines.push(
        "if ! git diff --quiet; then git add -u && GIT_COMMITTER_DATE='946684800 +0000' git -c user.name=swerl \
         -c user.email=swerl@localhost commit -q --amend --no-verify --no-edit; fi"
            .into(),
    );
    (lines.join("\n"), skipped)
}

/// Runs `script` in a sandbox over `dir` (and `shared` below it) with the network on, and
/// returns the directory holding what it changed (next to `dir`). A failing script is an
/// error carrying the end of its log; the whole log is kept as `<dir>/<log>`.
fn run_build(
    ctx: &Ctx,
    factory: &LocalFactory,
    opts: &BuildOptions,
    dir: &Path,
    shared: Option<&Path>,
    script: &str,
    log: &str,
) -> Result<PathBuf, PrepareError> {
    let spec = SandboxSpec {
        env_source: dir.to_path_buf(),
        workdir: "/testbed".into(),
        limits: build_limits(opts.timeout),
        env: opts.build_env.clone(),
        shared_env: shared.map(Path::to_path_buf),
        network: true,
        ..Default::default()
    };
    let sandbox_err = |e: swerl_sandbox::SandboxError| PrepareError::Sandbox {
        instance_id: ctx.instance_id.clone(),
        source: e,
    };
    let mut sb = factory.create_local(&spec).map_err(sandbox_err)?;
    let wrapped = format!(
        "( {script}\n) > /tmp/swerl-build.log 2>&1; status=$?; tail -c 6000 /tmp/swerl-build.log; (exit $status)"
    );
    let out = sb.exec(&wrapped, Some(opts.timeout)).map_err(sandbox_err)?;
    let full_log = sb.read_file("/tmp/swerl-build.log").unwrap_or_default();
    if out.exit_code != Some(0) {
        let logs = opts.env_root.join("logs");
        let log_path = logs.join(format!("{}.{log}", ctx.instance_id));
        let _ = std::fs::create_dir_all(&logs).and_then(|()| std::fs::write(&log_path, &full_log));
        return Err(ctx.invalid(format!(
            "the environment build failed ({}; full log: {}):\n{}",
            if out.timed_out {
                format!("timed out after {} s", opts.timeout.as_secs())
            } else {
                format!("exit status {:?}", out.exit_code)
            },
            log_path.display(),
            out.output.trim_end()
        )));
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let changes = dir.with_file_name(format!("{name}.changes"));
    sb.keep_changes(&changes).map_err(sandbox_err)?;
    std::fs::write(dir.join(log), &full_log).map_err(|e| ctx.io(dir, e))?;
    Ok(changes)
}

/// Builds install packages: more time, memory and processes than an agent command.
fn build_limits(timeout: Duration) -> Limits {
    Limits {
        memory_bytes: 16 << 30,
        max_processes: 1024,
        file_size_bytes: 4 << 30,
        // The writable layer is a tmpfs: only what the build writes takes memory.
        disk_bytes: 16 << 30,
        cpu_seconds: timeout.as_secs().max(60),
        output_bytes: 20_000,
        command_timeout: timeout,
        ..Limits::default()
    }
}

/// Moves an overlay upper layer's entries into `into`: a directory present on both sides
/// (and not opaque) is merged; anything else replaces what `into` had. Whiteouts and opaque
/// directories are moved as they are, so they keep hiding what the layer below holds.
fn merge_layer(upper: &Path, into: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(into)?;
    for entry in std::fs::read_dir(upper)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), into.join(entry.file_name()));
        let kind = entry.file_type()?;
        let dst_meta = std::fs::symlink_metadata(&dst).ok();
        if kind.is_dir() && !is_opaque(&src) && dst_meta.as_ref().is_some_and(|m| m.is_dir()) {
            merge_layer(&src, &dst)?;
            continue;
        }
        match dst_meta {
            Some(m) if m.is_dir() => std::fs::remove_dir_all(&dst)?,
            Some(_) => std::fs::remove_file(&dst)?,
            None => {}
        }
        std::fs::rename(&src, &dst)?;
    }
    Ok(())
}

/// An overlay directory that hides the lower layers' contents (`trusted.overlay.opaque=y`).
fn is_opaque(dir: &Path) -> bool {
    let mut value = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut value), Ok(1) if value[0] == b'y')
}

/// Makes a build's output safe to share (module docs): root owns everything, no set-uid or
/// set-gid bits, no device nodes but whiteouts (character 0:0), no fifos or sockets.
fn seal(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(dir)?;
    std::os::unix::fs::lchown(dir, Some(0), Some(0))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Ok(());
    }
    if kind.is_char_device() && meta.rdev() == 0 {
        return Ok(());
    }
    if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() || kind.is_socket() {
        return std::fs::remove_file(dir);
    }
    let mode = meta.permissions().mode();
    if mode & 0o6000 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & !0o6000))?;
    }
    if kind.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            seal(&entry?.path())?;
        }
    }
    Ok(())
}

/// Holds an exclusive lock on `path` (created if missing) until dropped.
fn lock(ctx: &Ctx, path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, PrepareError> {
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| ctx.io(path, e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| ctx.io(path, std::io::Error::from(e)))
}

/// Removes what killed builds of `key` (an environment key or an instance id) left in
/// `envs`: temporary directories and change layers. Called with the key's lock held, so no
/// live build owns them.
fn remove_leftovers(ctx: &Ctx, envs: &Path, key: &str) -> Result<(), PrepareError> {
    let prefix = format!(".{key}.tmp-");
    for entry in std::fs::read_dir(envs)
        .map_err(|e| ctx.io(envs, e))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
    Ok(())
}

/// Puts the finished `new` at `target`, replacing an older source (one prepared without
/// this environment) only once the new one is complete.
fn replace_dir(ctx: &Ctx, new: PathBuf, target: &Path) -> Result<(), PrepareError> {
    if std::fs::symlink_metadata(target).is_ok() {
        let old = target.with_extension(format!("old-{}", std::process::id()));
        std::fs::rename(target, &old).map_err(|e| ctx.io(target, e))?;
        std::fs::rename(&new, target).map_err(|e| ctx.io(target, e))?;
        let _ = std::fs::remove_dir_all(&old);
        return Ok(());
    }
    std::fs::rename(&new, target).map_err(|e| ctx.io(target, e))
}

fn write_json(ctx: &Ctx, path: &Path, value: &impl Serialize) -> Result<(), PrepareError> {
    let text = serde_json::to_string_pretty(value).expect("plain data serialises");
    std::fs::write(path, text + "\n").map_err(|e| ctx.io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_installs_are_recognised() {
        assert!(is_system_install(
            "apt-get update && apt-get install -y ffmpeg"
        ));
        assert!(is_system_install("sed -i x && apt-get install y"));
        assert!(!is_system_install("python -m pip install -e ."));
    }

    #[test]
    fn merge_replaces_files_and_merges_directories() {
        let t = tempfile::tempdir().unwrap();
        let (upper, lower) = (t.path().join("u"), t.path().join("l"));
        for d in [upper.join("repo/pkg"), lower.join("repo/pkg")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(lower.join("repo/pkg/a.py"), "old").unwrap();
        std::fs::write(lower.join("repo/pkg/b.py"), "kept").unwrap();
        std::fs::write(upper.join("repo/pkg/a.py"), "new").unwrap();
        std::fs::create_dir_all(upper.join("venv/lib")).unwrap();
        merge_layer(&upper, &lower).unwrap();
        let read = |p: &str| std::fs::read_to_string(lower.join(p)).unwrap();
        assert_eq!(read("repo/pkg/a.py"), "new");
        assert_eq!(read("repo/pkg/b.py"), "kept");
        assert!(lower.join("venv/lib").is_dir());
    }

    #[test]
    fn seal_clears_setuid_and_removes_fifos() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("tool");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4755)).unwrap();
        nix::unistd::mkfifo(&t.path().join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        seal(t.path()).unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
        assert!(!t.path().join("pipe").exists());
    }
}
