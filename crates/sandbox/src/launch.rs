//! The command line that starts one sandboxed shell:
//!
//! ```text
//! unshare --mount --propagation private            # private mount namespace (root)
//!   sh -c 'mount -t overlay ... MERGED && exec bwrap ...'
//!     bwrap --unshare-{ipc,pid,net,uts,cgroup} --die-with-parent --new-session ...
//!       setpriv --reuid UID ... prlimit --as ... --nproc ... -- bash --noprofile --norc
//! ```
//!
//! The overlay is mounted only inside the private mount namespace, so it disappears with the
//! sandbox's last process: nothing can leak onto the host's mount table, even after a crash.
//! bubblewrap 0.8 cannot mount an overlay itself, and doing it from Rust before exec would
//! need `unsafe` pre-exec hooks; util-linux's `unshare` and `mount` do it in ~2 ms.
//!
//! No user namespace: the shell runs as a real, otherwise unused host uid (see `scratch`), so
//! RLIMIT_NPROC (counted per real uid and ignored for root) contains fork bombs per sandbox.
//! It keeps only CAP_DAC_OVERRIDE and CAP_FOWNER (ambient), because the read-only lower layer
//! belongs to root and the agent must be able to edit it through the overlay as the
//! SWE-bench images' root user could; every mount but the workspace, /tmp and the state dir
//! is read-only, and /etc files that are not world-readable are masked, so these
//! capabilities reach nothing beyond the sandbox's own files.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::scratch::Scratch;
use crate::{Limits, SandboxError};

/// Where the whole environment source (repo, venv, ...) appears inside, read-write.
pub const ENV_MOUNT: &str = "/env";
/// Where the shell keeps its exported variables between restarts (inside the sandbox).
pub(crate) const STATE_DIR: &str = "/run/swerl";
pub(crate) const STATE_FILE: &str = "/run/swerl/env";

/// The descriptor on which bubblewrap reads the seccomp program.
const SECCOMP_FD: u32 = 9;

/// The host-side part of a launch, run by `/bin/sh` inside the private mount namespace: join
/// the sandbox's cgroups (every later process inherits them), mount the overlay, then become
/// bubblewrap with the seccomp program on [`SECCOMP_FD`]. Arguments: mount, overlay options,
/// merged dir, seccomp file, N, N `cgroup.procs` files, bubblewrap and its arguments.
const WRAPPER: &str = r#"m=$1 o=$2 d=$3 f=$4 n=$5; shift 5
while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 1; shift; n=$((n-1)); done
"$m" -t overlay overlay -o "$o" "$d" && exec "$@" 9<"$f""#;

/// Host programs resolved once per factory.
#[derive(Debug, Clone)]
pub(crate) struct HostTools {
    unshare: PathBuf,
    mount: PathBuf,
    bwrap: PathBuf,
    /// Host system directories bound read-only (or recreated as symlinks).
    system: Vec<SystemEntry>,
    /// Files and dirs under /etc that only root may read: hidden inside.
    masked: Vec<(PathBuf, bool)>,
}

#[derive(Debug, Clone)]
enum SystemEntry {
    Dir(PathBuf),
    Symlink { link: PathBuf, target: PathBuf },
}

impl HostTools {
    /// Finds unshare, mount and bwrap, and surveys the system dirs to expose.
    pub fn discover() -> Result<HostTools, SandboxError> {
        Ok(HostTools {
            unshare: find_program("unshare")?,
            mount: find_program("mount")?,
            bwrap: find_program("bwrap")?,
            system: survey_system_dirs(),
            masked: root_only_entries(Path::new("/etc"), 4),
        })
    }
}

/// Everything one launch needs.
#[derive(Debug)]
pub(crate) struct LaunchPlan<'a> {
    pub tools: &'a HostTools,
    pub scratch: &'a Scratch,
    pub env_source: &'a Path,
    /// A read-only layer under `env_source` (see `SandboxSpec::shared_env`).
    pub shared_env: Option<&'a Path>,
    /// Share the host's network namespace (environment builds only).
    pub network: bool,
    pub workdir: &'a str,
    pub limits: &'a Limits,
    pub env: &'a [(String, String)],
    /// `cgroup.procs` files the launch joins before anything of the agent runs.
    pub cgroup_procs: Vec<PathBuf>,
    /// Seccomp and the read-only kernel settings and root (off only in the benchmark).
    pub walls: bool,
}

impl LaunchPlan<'_> {
    /// The command that starts the sandboxed shell.
    pub fn command(&self) -> Result<Command, SandboxError> {
        let seccomp = self.seccomp_file()?;
        let mut cmd = Command::new(&self.tools.unshare);
        cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"]);
        cmd.arg(WRAPPER);
        cmd.arg("swerl-sandbox");
        cmd.arg(&self.tools.mount);
        cmd.arg(self.overlay_options()?);
        cmd.arg(self.scratch.path("merged"));
        cmd.arg(seccomp.as_deref().unwrap_or(Path::new("/dev/null")));
        cmd.arg(self.cgroup_procs.len().to_string());
        cmd.args(&self.cgroup_procs);
        cmd.arg(&self.tools.bwrap);
        cmd.args(self.bwrap_args(seccomp.is_some()));
        cmd.args(self.inner_command());
        cmd.env_clear().envs(self.environment());
        Ok(cmd)
    }

    /// The seccomp program in the scratch dir (written once per sandbox), `None` where this
    /// architecture has no filter.
    fn seccomp_file(&self) -> Result<Option<PathBuf>, SandboxError> {
        let Some(program) = crate::seccomp::program().filter(|_| self.walls) else {
            return Ok(None);
        };
        let path = self.scratch.path("seccomp.bpf");
        if !path.exists() {
            std::fs::write(&path, program).map_err(|e| crate::scratch::io_err(&path, e))?;
        }
        Ok(Some(path))
    }

    fn overlay_options(&self) -> Result<String, SandboxError> {
        let mut layers = vec![self.env_source];
        layers.extend(self.shared_env);
        let mut lower = Vec::new();
        for layer in layers {
            let text = layer.to_string_lossy();
            if text.contains([',', ':', '\n']) {
                return Err(SandboxError::Start(format!(
                    "environment layer {text} contains ',' or ':', which overlayfs options cannot carry; move it to a plain path"
                )));
            }
            lower.push(text);
        }
        let lower = lower.join(":");
        // index=off: a restarted shell remounts the same upper dir; without the inode index
        // the kernel allows that even if the old superblock is still being torn down.
        // nosuid,nodev: the layers may come from an environment build that ran a task's own
        // commands; a set-uid file or device node planted there must stay inert.
        Ok(format!(
            "nosuid,nodev,lowerdir={lower},upperdir={},workdir={},index=off",
            self.scratch.layer("upper").display(),
            self.scratch.layer("work").display()
        ))
    }

    fn bwrap_args(&self, seccomp: bool) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
            a.extend(items.iter().map(|i| i.as_ref().to_owned()))
        };
        // No --unshare-user: see the module docs (the uid must be a real host uid).
        for flag in [
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ] {
            push(&[&flag]);
        }
        if !self.network {
            push(&[&"--unshare-net"]);
        }
        push(&[
            &"--die-with-parent",
            &"--new-session",
            &"--hostname",
            &"sandbox",
        ]);
        for entry in &self.tools.system {
            match entry {
                SystemEntry::Dir(d) => push(&[&"--ro-bind", d, d]),
                SystemEntry::Symlink { link, target } => push(&[&"--symlink", target, link]),
            }
        }
        let empty = self.scratch.path("empty");
        for (path, is_dir) in &self.tools.masked {
            if *is_dir {
                push(&[&"--tmpfs", path]);
            } else {
                push(&[&"--ro-bind", &empty, path]);
            }
        }
        let merged = self.scratch.path("merged");
        push(&[&"--proc", &"/proc", &"--dev", &"/dev"]);
        if self.walls {
            // The kernel's settings stay read-only inside, whatever a process's capabilities:
            // bubblewrap covers /proc/sys and /proc/sysrq-trigger only when it judges them
            // writable, and did not here. Per-netns values follow the reader's namespace, so
            // binding the host's /proc/sys shows the sandbox its own.
            push(&[&"--ro-bind", &"/proc/sys", &"/proc/sys"]);
            push(&[
                &"--ro-bind-try",
                &"/proc/sysrq-trigger",
                &"/proc/sysrq-trigger",
            ]);
        }
        push(&[&"--bind", &self.scratch.layer("tmp"), &"/tmp"]);
        push(&[&"--bind", &self.scratch.layer("state"), &STATE_DIR]);
        push(&[&"--bind", &merged, &ENV_MOUNT]);
        push(&[&"--bind", &merged.join("repo"), &self.workdir]);
        push(&[&"--chdir", &self.workdir]);
        // bubblewrap's root is a tmpfs: read-only, or it would be unmetered disk in memory.
        if self.walls {
            push(&[&"--remount-ro", &"/"]);
        }
        if seccomp {
            push(&[&"--seccomp", &SECCOMP_FD.to_string()]);
        }
        a
    }

    /// Drops to the sandbox uid with two ambient capabilities, sets the rlimits, runs bash.
    fn inner_command(&self) -> Vec<String> {
        let uid = self.scratch.uid;
        let caps = "+dac_override,+fowner";
        let l = self.limits;
        vec![
            "/usr/bin/setpriv".into(),
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".into(),
            "--no-new-privs".into(),
            format!("--inh-caps=-all,{caps}"),
            format!("--ambient-caps={caps}"),
            format!("--bounding-set=-all,{caps}"),
            "/usr/bin/prlimit".into(),
            format!("--as={}", l.memory_bytes),
            format!("--nproc={}", l.max_processes),
            format!("--fsize={}", l.file_size_bytes),
            format!("--cpu={}", l.cpu_seconds),
            "--".into(),
            "/bin/bash".into(),
            "--noprofile".into(),
            "--norc".into(),
        ]
    }

    /// The shell's environment: a fixed, minimal base, git made usable, then the caller's.
    fn environment(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", "/tmp"),
            ("TMPDIR", "/tmp"),
            ("USER", "swerl"),
            ("LOGNAME", "swerl"),
            ("LANG", "C.UTF-8"),
            ("TERM", "dumb"),
            ("PAGER", "cat"),
            ("GIT_PAGER", "cat"),
            // The repo belongs to root while the shell runs as the sandbox uid.
            ("GIT_CONFIG_COUNT", "3"),
            ("GIT_CONFIG_KEY_0", "safe.directory"),
            ("GIT_CONFIG_VALUE_0", "*"),
            ("GIT_CONFIG_KEY_1", "user.name"),
            ("GIT_CONFIG_VALUE_1", "swerl"),
            ("GIT_CONFIG_KEY_2", "user.email"),
            ("GIT_CONFIG_VALUE_2", "swerl@localhost"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in self.env {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }
}

/// A one-shot sandbox running `bash -c script` with the same namespaces and system mounts as
/// a real one but no overlay or shell: the naive alternative the benchmark compares against.
pub(crate) fn fresh_bwrap_command(tools: &HostTools, script: &str) -> Command {
    let mut cmd = Command::new(&tools.bwrap);
    cmd.args([
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
    ]);
    for entry in &tools.system {
        match entry {
            SystemEntry::Dir(d) => cmd.arg("--ro-bind").arg(d).arg(d),
            SystemEntry::Symlink { link, target } => cmd.arg("--symlink").arg(target).arg(link),
        };
    }
    cmd.args([
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "/bin/bash",
        "-c",
        script,
    ]);
    cmd
}

fn find_program(name: &str) -> Result<PathBuf, SandboxError> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| SandboxError::Start(format!("`{name}` not found in /usr/bin or /bin; install it (scripts/setup installs bubblewrap and util-linux)")))
}

fn survey_system_dirs() -> Vec<SystemEntry> {
    let mut out = Vec::new();
    for d in [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
    ] {
        let path = PathBuf::from(d);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(target) = std::fs::read_link(&path) {
                out.push(SystemEntry::Symlink { link: path, target });
            }
        } else if meta.is_dir() {
            out.push(SystemEntry::Dir(path));
        }
    }
    out
}

/// Entries under `dir` that others may not read (secrets such as /etc/shadow); `true` marks
/// a directory. Readable directories are searched to `depth`.
fn root_only_entries(dir: &Path, depth: u32) -> Vec<(PathBuf, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if meta.is_dir() {
            if mode & 0o005 != 0o005 {
                out.push((entry.path(), true));
            } else if depth > 0 {
                out.extend(root_only_entries(&entry.path(), depth - 1));
            }
        } else if meta.is_file() && mode & 0o004 == 0 {
            out.push((entry.path(), false));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_is_masked_when_present() {
        let masked = root_only_entries(Path::new("/etc"), 4);
        if let Ok(meta) = std::fs::metadata("/etc/shadow") {
            use std::os::unix::fs::PermissionsExt;
            let hidden = masked.iter().any(|(p, _)| p == Path::new("/etc/shadow"));
            assert_eq!(hidden, meta.permissions().mode() & 0o004 == 0);
        }
        assert!(masked.iter().all(|(p, _)| p.starts_with("/etc")));
    }

    #[test]
    fn caller_env_overrides_the_base() {
        let root = tempfile::tempdir().unwrap();
        let scratch = Scratch::allocate(root.path(), None).unwrap();
        let tools = HostTools::discover().unwrap();
        let extra = vec![("PATH".to_string(), "/env/venv/bin:/usr/bin".to_string())];
        let plan = LaunchPlan {
            tools: &tools,
            scratch: &scratch,
            env_source: Path::new("/x"),
            shared_env: None,
            network: false,
            workdir: "/testbed",
            limits: &Limits::default(),
            env: &extra,
            cgroup_procs: vec![],
            walls: true,
        };
        let env = plan.environment();
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(env.contains(&extra[0]));
    }

    #[test]
    fn odd_env_source_path_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let scratch = Scratch::allocate(root.path(), None).unwrap();
        let tools = HostTools::discover().unwrap();
        let plan = LaunchPlan {
            tools: &tools,
            scratch: &scratch,
            env_source: Path::new("/a:b"),
            shared_env: None,
            network: false,
            workdir: "/testbed",
            limits: &Limits::default(),
            env: &[],
            cgroup_procs: vec![],
            walls: true,
        };
        assert!(matches!(
            plan.overlay_options(),
            Err(SandboxError::Start(_))
        ));
    }
}
