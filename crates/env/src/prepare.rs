//! Prepared environment sources: `<root>/<instance_id>/repo/` holds the repository at
//! base_commit as a fresh git repository with exactly one commit, so that no later commit
//! (the fix) can be read from history inside a sandbox.
//!
//! The commit is deterministic (fixed author, committer, dates and message; user and system
//! git configuration ignored): the same tree always gives the same commit id. A source is
//! built in a temporary directory next to its final place and renamed into place when
//! complete, so a crash never leaves a half-prepared source under the final name, and an
//! existing complete source is reused as is.
//!
//! Only `swerl_sandbox::host_command` spawns processes (git); this module never runs task
//! code.

use crate::paths::resolve_inside;
use std::path::{Path, PathBuf};
use swerl_sandbox::host_command;

/// Where a task's repository comes from.
#[derive(Debug, Clone, Copy)]
pub enum RepoSource<'a> {
    /// A directory of plain files (any `.git` inside is ignored), e.g. the bundled
    /// `tasks/bundled/repos/<name>/`.
    Files(&'a Path),
    /// A git checkout and the commit to export from it (the checkout is only read: a private
    /// index file is used, so neither its index nor its HEAD changes).
    Git { checkout: &'a Path, commit: &'a str },
}

/// Why a source could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("preparing {instance_id}: i/o on {}: {source}", path.display())]
    Io {
        instance_id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("preparing {instance_id}: `{command}` failed: {output}")]
    Git {
        instance_id: String,
        command: String,
        output: String,
    },
    #[error("preparing {instance_id}: {source}")]
    Sandbox {
        instance_id: String,
        #[source]
        source: swerl_sandbox::SandboxError,
    },
    #[error("preparing {instance_id}: {reason}")]
    Invalid { instance_id: String, reason: String },
}

/// Fixed identity and time of the single commit.
const GIT_ENV: [&str; 8] = [
    "GIT_AUTHOR_NAME=swerl",
    "GIT_AUTHOR_EMAIL=swerl@localhost",
    "GIT_AUTHOR_DATE=946684800 +0000",
    "GIT_COMMITTER_NAME=swerl",
    "GIT_COMMITTER_EMAIL=swerl@localhost",
    "GIT_COMMITTER_DATE=946684800 +0000",
    "GIT_CONFIG_GLOBAL=/dev/null",
    "GIT_CONFIG_NOSYSTEM=1",
];

/// The prepared source of `instance_id` under `root` (`<root>/<instance_id>`), building it
/// from `source` unless a complete one exists. Returns the path to pass as
/// `SandboxSpec::env_source`.
pub fn prepare_env_source(
    root: &Path,
    instance_id: &str,
    source: RepoSource<'_>,
) -> Result<PathBuf, PrepareError> {
    let ctx = Ctx { instance_id };
    check_id(&ctx)?;
    std::fs::create_dir_all(root).map_err(|e| ctx.io(root, e))?;
    let root = root.canonicalize().map_err(|e| ctx.io(root, e))?;
    let target = root.join(instance_id);
    if is_complete(&target) {
        return Ok(target);
    }
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{instance_id}.tmp-"))
        .tempdir_in(&root)
        .map_err(|e| ctx.io(&root, e))?;
    export_single_commit(instance_id, source, tmp.path())?;
    move_into_place(&ctx, tmp, &target)?;
    Ok(target)
}

/// Writes the repository of `source` into `<dir>/repo` as a git repository with one
/// deterministic commit.
pub(crate) fn export_single_commit(
    instance_id: &str,
    source: RepoSource<'_>,
    dir: &Path,
) -> Result<(), PrepareError> {
    let ctx = Ctx { instance_id };
    let repo = dir.join("repo");
    match source {
        RepoSource::Files(from) => copy_tree(&ctx, from, &repo)?,
        RepoSource::Git { checkout, commit } => export_commit(&ctx, checkout, commit, dir)?,
    }
    single_commit(&ctx, &repo)?;
    if let RepoSource::Git { checkout, commit } = source {
        carry_last_tag(&ctx, checkout, commit, &repo)?;
    }
    Ok(())
}

/// Tags the single commit with the newest tag reachable from `commit` in the checkout, as
/// SWE-bench's images keep the tags up to base_commit: versioneer and setuptools_scm read
/// the package's version from it, and without one an install resolved `pvlib 0+untagged`
/// against dependencies asking for `pvlib>=0.6`. A tag reachable from base_commit says
/// nothing about later history.
fn carry_last_tag(
    ctx: &Ctx<'_>,
    checkout: &Path,
    commit: &str,
    repo: &Path,
) -> Result<(), PrepareError> {
    let Ok(tag) = git(
        ctx,
        checkout,
        &[],
        &["describe", "--tags", "--abbrev=0", commit],
    ) else {
        return Ok(());
    };
    if tag.is_empty() || tag.starts_with('-') {
        return Ok(());
    }
    git(ctx, repo, &[], &["tag", &tag]).map(|_| ())
}

/// How `task`'s repository is read from `dir`: a git repository (working tree or bare
/// mirror) at the task's base_commit, or a plain folder as it is.
pub fn repo_source<'a>(task: &'a crate::task::Task, dir: &'a Path) -> RepoSource<'a> {
    if is_git(dir) && !task.base_commit.is_empty() {
        RepoSource::Git {
            checkout: dir,
            commit: &task.base_commit,
        }
    } else {
        RepoSource::Files(dir)
    }
}

/// A working tree with `.git`, or a bare repository (a mirror: `HEAD` and `objects/`).
pub fn is_git(dir: &Path) -> bool {
    dir.join(".git").exists() || (dir.join("HEAD").is_file() && dir.join("objects").is_dir())
}

/// A task whose spec names a Python environment (SWE-bench's table or its install_config)
/// is only graded in a source `swerl prepare` built with that environment: running it with
/// the sandbox's system Python scored wrong interpreters and missing packages as failures.
fn needs_no_environment(task: &crate::task::Task, target: &Path) -> Result<(), PrepareError> {
    let spec = crate::envspec::env_spec(task).map_err(|e| PrepareError::Invalid {
        instance_id: task.instance_id.clone(),
        reason: e.to_string(),
    })?;
    let Some(spec) = spec else { return Ok(()) };
    if target.join(crate::envbuild::MANIFEST).is_file() {
        return Ok(());
    }
    Err(PrepareError::Invalid {
        instance_id: task.instance_id.clone(),
        reason: format!(
            "it needs a Python {} environment ({}) and {} has none; build it first with              `swerl prepare --tasks FILE --env-root {} --repos DIR`",
            spec.python,
            spec.origin,
            target.display(),
            target.parent().map_or_else(String::new, |p| p.display().to_string())
        ),
    })
}

/// Whether `<dir>/repo` is a git repository: only complete sources are ever renamed in.
pub fn is_complete(env_source: &Path) -> bool {
    env_source.join("repo").join(".git").is_dir()
}

struct Ctx<'a> {
    instance_id: &'a str,
}

impl Ctx<'_> {
    fn io(&self, path: &Path, source: std::io::Error) -> PrepareError {
        PrepareError::Io {
            instance_id: self.instance_id.to_string(),
            path: path.to_path_buf(),
            source,
        }
    }

    fn invalid(&self, reason: String) -> PrepareError {
        PrepareError::Invalid {
            instance_id: self.instance_id.to_string(),
            reason,
        }
    }
}

fn check_id(ctx: &Ctx<'_>) -> Result<(), PrepareError> {
    let id = ctx.instance_id;
    crate::paths::check_instance_id(id)
        .map_err(|why| ctx.invalid(format!("instance id `{}` {why}", id.escape_default())))
}

/// Renames the finished temporary directory to `target`. If another process finished the
/// same source first, its copy is kept and ours is dropped.
fn move_into_place(
    ctx: &Ctx<'_>,
    tmp: tempfile::TempDir,
    target: &Path,
) -> Result<(), PrepareError> {
    if target.exists() && !is_complete(target) {
        // A leftover from an older, non-atomic tool or a manual copy: replace it.
        std::fs::remove_dir_all(target).map_err(|e| ctx.io(target, e))?;
    }
    let tmp_path = tmp.keep();
    match std::fs::rename(&tmp_path, target) {
        Ok(()) => Ok(()),
        Err(_) if is_complete(target) => {
            let _ = std::fs::remove_dir_all(&tmp_path);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp_path);
            Err(ctx.io(target, e))
        }
    }
}

/// Copies a directory tree, keeping symlinks as symlinks and file permissions, skipping
/// every `.git` entry.
fn copy_tree(ctx: &Ctx<'_>, from: &Path, to: &Path) -> Result<(), PrepareError> {
    if !from.is_dir() {
        return Err(ctx.invalid(format!(
            "repository directory {} does not exist",
            from.display()
        )));
    }
    std::fs::create_dir_all(to).map_err(|e| ctx.io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| ctx.io(from, e))? {
        let entry = entry.map_err(|e| ctx.io(from, e))?;
        if entry.file_name() == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| ctx.io(&src, e))?;
        if kind.is_symlink() {
            let link = std::fs::read_link(&src).map_err(|e| ctx.io(&src, e))?;
            std::os::unix::fs::symlink(link, &dst).map_err(|e| ctx.io(&dst, e))?;
        } else if kind.is_dir() {
            copy_tree(ctx, &src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| ctx.io(&src, e))?;
        }
    }
    Ok(())
}

/// Writes the tree of `commit` from `checkout` into `<tmp>/repo`, through a private index
/// file so the checkout itself is untouched.
fn export_commit(
    ctx: &Ctx<'_>,
    checkout: &Path,
    commit: &str,
    tmp: &Path,
) -> Result<(), PrepareError> {
    let repo = tmp.join("repo");
    std::fs::create_dir_all(&repo).map_err(|e| ctx.io(&repo, e))?;
    let index = format!(
        "GIT_INDEX_FILE={}",
        path_str(ctx, &tmp.join("export.index"))?
    );
    let work_tree = format!("--work-tree={}", path_str(ctx, &repo)?);
    let spec = format!("{commit}^{{commit}}");
    git(
        ctx,
        checkout,
        &[],
        &["rev-parse", "--quiet", "--verify", &spec],
    )
    .map_err(|_| {
        ctx.invalid(format!(
            "commit `{commit}` is not in the git checkout {}",
            checkout.display()
        ))
    })?;
    git(ctx, checkout, &[&index], &[&work_tree, "read-tree", &spec])?;
    git(
        ctx,
        checkout,
        &[&index],
        &[&work_tree, "checkout-index", "--all", "--force"],
    )?;
    let index_path = tmp.join("export.index");
    std::fs::remove_file(&index_path).map_err(|e| ctx.io(&index_path, e))
}

/// Turns `repo` into a git repository with one deterministic commit of all its files
/// (respecting its own .gitignore, as a normal checkout would).
fn single_commit(ctx: &Ctx<'_>, repo: &Path) -> Result<(), PrepareError> {
    age_files(ctx, repo)?;
    git(ctx, repo, &[], &["init", "--quiet"])?;
    git(ctx, repo, &[], &["add", "--all"])?;
    let commit = [
        "commit",
        "--quiet",
        "--no-verify",
        "--no-gpg-sign",
        "--allow-empty",
        "-m",
        "base",
    ];
    git(ctx, repo, &[], &commit)?;
    Ok(())
}

/// The modification time every prepared file gets (2000-01-01, the commit's date).
const SOURCE_MTIME: u64 = 946_684_800;

/// Sets every file's modification time to [`SOURCE_MTIME`], long before any episode.
///
/// Why: Python's bytecode cache and git's index both decide "unchanged" from (mtime in whole
/// seconds, size). A source prepared moments before an episode, then edited within the same
/// second by a same-length line, looked unchanged to both: the agent's rerun used the stale
/// `.pyc` and `git diff` came out empty (regression test in tests/tasks_prepare.rs).
fn age_files(ctx: &Ctx<'_>, dir: &Path) -> Result<(), PrepareError> {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(SOURCE_MTIME);
    let entries = std::fs::read_dir(dir).map_err(|e| ctx.io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| ctx.io(dir, e))?.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| ctx.io(&path, e))?;
        if meta.is_dir() {
            age_files(ctx, &path)?;
        } else if meta.is_file() {
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .map_err(|e| ctx.io(&path, e))?;
            file.set_modified(when).map_err(|e| ctx.io(&path, e))?;
        }
    }
    Ok(())
}

/// Runs git in `cwd` with the fixed environment plus `env`; fails on a non-zero exit.
fn git(ctx: &Ctx<'_>, cwd: &Path, env: &[&str], args: &[&str]) -> Result<String, PrepareError> {
    let mut argv: Vec<&str> = GIT_ENV.to_vec();
    argv.extend_from_slice(env);
    argv.push("git");
    argv.extend_from_slice(args);
    let out = host_command("env", &argv, cwd).map_err(|source| PrepareError::Sandbox {
        instance_id: ctx.instance_id.to_string(),
        source,
    })?;
    if !out.status.success() {
        return Err(PrepareError::Git {
            instance_id: ctx.instance_id.to_string(),
            command: format!("git {}", args.join(" ")),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn path_str<'p>(ctx: &Ctx<'_>, path: &'p Path) -> Result<&'p str, PrepareError> {
    path.to_str()
        .ok_or_else(|| ctx.invalid(format!("path {} is not UTF-8", path.display())))
}

/// The commit id of HEAD in a prepared source (for checks and reports).
pub fn head_commit(env_source: &Path) -> Result<String, PrepareError> {
    let ctx = Ctx { instance_id: "?" };
    git(&ctx, &env_source.join("repo"), &[], &["rev-parse", "HEAD"])
}

/// Finds or builds the environment source of each task: `<env_root>/<instance_id>` when it
/// is already prepared, otherwise prepared from a repository under `repos`.
#[derive(Debug, Clone)]
pub struct EnvSources {
    /// Where prepared sources live (`<env_root>/<instance_id>/repo`).
    pub env_root: PathBuf,
    /// Where repositories to prepare from live: a folder named by the task's `env_repo`
    /// field (the bundled tasks), its instance_id, `owner__name` or `name` of its repo. A
    /// folder with `.git` is exported at the task's base_commit; any other is taken as is.
    pub repos: Option<PathBuf>,
    /// The sandbox backend takes each repository from the task's image (SWE-bench images
    /// carry theirs at /testbed): nothing is prepared, and the source path is only a name.
    pub repos_in_image: bool,
}

impl EnvSources {
    /// The prepared source of `task`, building it when missing (with `repos_in_image`, its
    /// path, unprepared).
    pub fn source_for(&self, task: &crate::task::Task) -> Result<PathBuf, PrepareError> {
        check_id(&Ctx {
            instance_id: &task.instance_id,
        })?;
        let target = self.env_root.join(&task.instance_id);
        if self.repos_in_image {
            return Ok(target);
        }
        needs_no_environment(task, &target)?;
        if is_complete(&target) {
            return Ok(target);
        }
        let dir = self.repo_dir(task)?;
        prepare_env_source(&self.env_root, &task.instance_id, repo_source(task, &dir))
    }

    /// The repository under `repos` that `task` is prepared from.
    pub fn repo_dir(&self, task: &crate::task::Task) -> Result<PathBuf, PrepareError> {
        let candidates = self.candidates(task)?;
        if let Some(dir) = candidates.iter().find(|c| c.is_dir()) {
            return Ok(dir.clone());
        }
        Err(PrepareError::Invalid {
            instance_id: task.instance_id.clone(),
            reason: format!(
                "no prepared source at {} and no repository to prepare it from (looked for {}); \
                 pass --repos DIR with the repository (a working tree or a bare mirror), or prepare the source there yourself",
                self.env_root.join(&task.instance_id).join("repo").display(),
                if candidates.is_empty() {
                    "nothing: no --repos given".to_string()
                } else {
                    candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
                }
            ),
        })
    }

    /// The folders under `repos` that may hold the task's repository. The row's `env_repo`
    /// is untrusted: it must be a relative path that stays inside `repos` without passing
    /// through a symlink, else the task fails with an error naming it (never a quiet
    /// fallback). The derived names (id, repo) are only tried when they are plain names.
    fn candidates(&self, task: &crate::task::Task) -> Result<Vec<PathBuf>, PrepareError> {
        let Some(repos) = &self.repos else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        if let Some(env_repo) = task.extra.get("env_repo") {
            let name = env_repo.as_str().unwrap_or_default();
            let path =
                resolve_inside(repos, "env_repo", name).map_err(|e| PrepareError::Invalid {
                    instance_id: task.instance_id.clone(),
                    reason: format!(
                        "{e} (the task row's repository must be a folder inside --repos {})",
                        repos.display()
                    ),
                })?;
            out.push(path);
        }
        let (long, short) = (
            task.repo.replace('/', "__"),
            task.repo.rsplit('/').next().unwrap_or_default().to_string(),
        );
        // Bare mirrors are conventionally named `<name>.git`.
        let derived = [
            task.instance_id.clone(),
            format!("{long}.git"),
            format!("{short}.git"),
            long,
            short,
        ];
        out.extend(
            derived
                .iter()
                .filter_map(|n| resolve_inside(repos, "repository name", n).ok())
                .filter(|p| p.parent() == Some(repos.as_path())),
        );
        Ok(out)
    }
}
