//! Sandboxes in which agent and grading commands run, and the trait that hides the backend.
//!
//! This is the only crate that spawns processes (ARCHITECTURE.md, invariant 4). It knows
//! nothing about tasks, agents or rewards: it turns a prepared, read-only environment source
//! into a live, isolated, disposable workspace with a persistent shell.
//!
//! What it does not do: decide what a command means (the `env` crate's tools do), or turn a
//! failure into a reward (a `SandboxError` is always an infrastructure failure).
//!
//! # The local backend ([`LocalFactory`], [`LocalSandbox`])
//!
//! Layout inside a sandbox: the environment source (read-only on the host) appears read-write
//! at [`ENV_MOUNT`] (`/env`) through a copy-on-write overlay, and its `repo/` also at
//! `SandboxSpec::workdir` (e.g. `/testbed`); `/usr`, `/etc` and the `/bin`, `/lib*` links
//! of the host are read-only; `/tmp` is a private, per-sandbox directory; `/proc` and a
//! minimal `/dev` are the sandbox's own. Nothing else of the host exists inside (no `/work`,
//! `/root`, `/home`, host `/tmp`), and `/etc` files only root may read are masked.
//!
//! Design decisions:
//! - **Overlay in a private mount namespace.** Creating a workspace is an overlayfs mount
//!   (lower: the environment source; upper/work: the sandbox's scratch dir), not a copy:
//!   milliseconds instead of ~1 s for 50 MB. It is mounted by `unshare -m` + `mount` just
//!   before `exec bwrap` (bubblewrap 0.8 has no overlay options), so it lives only in that
//!   namespace and vanishes with the sandbox's last process: a crash cannot leave a mount on
//!   the host. A restarted shell remounts the same upper dir, so files survive restarts.
//!   The host reads and writes files through `/proc/<pid>/root` of the sandbox's init with
//!   `openat2(RESOLVE_IN_ROOT)`, as the sandbox's user, regular files only, bounded in size
//!   and time (see `files`).
//! - **Limits per sandbox, not per process.** Memory and process count are limits of the
//!   sandbox's cgroup (v2 where the host delegates the controllers, else v1; see `cgroup`),
//!   on top of RLIMIT_AS, RLIMIT_FSIZE and RLIMIT_CPU per process and RLIMIT_NPROC per
//!   sandbox uid; everything the sandbox writes lands in a tmpfs of `Limits::disk_bytes`
//!   (see `scratch`). [`LocalFactory::enforcement`] says which of these the host enforces;
//!   the factory logs it at start, with a warning for any that it cannot.
//! - **Seccomp and read-only kernel settings.** A seccomp filter (see `seccomp`) denies
//!   namespaces, mounts, ptrace, kernel modules, keyrings, BPF and the like; `/proc/sys` and
//!   `/proc/sysrq-trigger` are read-only binds and bubblewrap's root is remounted read-only.
//! - **A real, unused host uid per sandbox.** RLIMIT_NPROC is counted per real uid and not
//!   enforced for root, so each sandbox's shell runs as its own uid from a high range
//!   (2,000,000,000 + random, locked by its scratch dir's name): a fork bomb exhausts only
//!   its own sandbox. There is no user namespace (it would map to root). The shell keeps the
//!   ambient capabilities CAP_DAC_OVERRIDE and CAP_FOWNER so it can edit the root-owned
//!   environment through the overlay, as the root user of a SWE-bench image could; every
//!   other mount is read-only. Files the host writes are given to the sandbox uid.
//! - **Namespaces.** bubblewrap unshares ipc, pid, net (loopback only), uts and cgroup,
//!   with `--die-with-parent` and `--new-session` (no controlling terminal to inject into).
//!   Not `--unshare-all`, because that includes the user namespace.
//! - **Persistent shell protocol**: see `protocol` (random per-command marker with exit code
//!   and cwd; commands read as data and `eval`ed, stdin `/dev/null`, stderr merged).
//! - **Truncation**: the first and last halves of `Limits::output_bytes` are kept, with
//!   `[... output truncated: N bytes omitted ...]` between them (the head shows how a failure
//!   began, the tail how it ended, e.g. pytest's summary).
//! - **Timeouts**: when a command exceeds its wall-clock limit, every process in the sandbox
//!   is killed (the command's process group, its children, setsid'd or background ones: the
//!   PID namespace's init is killed and the kernel kills the rest), the output says
//!   `[command timed out after N s; ...]`, and a new shell starts in the last known cwd with
//!   the exported variables of the last completed command (`export -p` is saved after each
//!   command). A shell that exits (`exit`, `kill -9 $$`) is restarted the same way. Shell
//!   functions, aliases and unexported variables do not survive a restart.
//! - **Startup**: a new shell's first command is a readiness handshake. A launch that dies
//!   (mount or bubblewrap failing) is reported at once with its exit status and output; one
//!   that is alive but silent past `Limits::start_timeout` (default 300 s) is killed and
//!   reported with its process tree (state and kernel wait channel of each process). Every
//!   launch does ~40 mount calls under the kernel's one system-wide mount lock, so at most
//!   [`LocalFactory::with_launch_concurrency`] launches (default two per core) run at once
//!   and the rest wait their turn outside the deadline: 256 unbounded launches on 2 cores
//!   queued on that lock for up to 87 s.
//! - **Teardown and crashes**: teardown (also on drop) kills the sandbox, checks that no
//!   process of its uid survives, and removes its scratch dir. [`LocalFactory::new`] sweeps
//!   scratch dirs (`<tmp>/swerl-sbx-<uid>`) whose owner process is dead, killing any process
//!   still running as their uid.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::time::Duration;

pub mod bench;
mod cgroup;
mod files;
mod gate;
mod host;
mod launch;
mod local;
mod output;
mod protocol;
mod scratch;
mod seccomp;
mod shell;

pub use cgroup::{CgroupVersion, Controllers};
pub use host::{host_command, host_command_checked};
pub use launch::ENV_MOUNT;
pub use local::{LocalFactory, LocalSandbox};
pub use scratch::pids_of_uid;

/// Resource limits applied to every process in one sandbox.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Memory of all the sandbox's processes together (its cgroup's limit), bytes; also the
    /// address-space limit of each process (RLIMIT_AS).
    pub memory_bytes: u64,
    /// Processes/threads the sandbox may hold at once (its cgroup's pids.max, and
    /// RLIMIT_NPROC of the sandbox uid).
    pub max_processes: u64,
    /// Largest file a process may write (RLIMIT_FSIZE), bytes.
    pub file_size_bytes: u64,
    /// Everything the sandbox may write together (changed workspace files, /tmp), bytes:
    /// the size of its writable layer.
    pub disk_bytes: u64,
    /// CPU time per process (RLIMIT_CPU), seconds.
    pub cpu_seconds: u64,
    /// Output kept per command; the rest is dropped and a truncation marker says how much.
    pub output_bytes: usize,
    /// Largest file the host reads or writes for the sandbox (`read_file`, `write_file`: every
    /// file tool, the submitted diff, the test log); larger ones fail with an error naming it.
    pub file_io_bytes: u64,
    /// How long one host-side file access may take before its watchdog abandons it.
    #[serde(with = "secs")]
    pub file_io_timeout: Duration,
    /// Wall-clock limit per command when the caller gives none.
    #[serde(with = "secs")]
    pub command_timeout: Duration,
    /// How long a new shell may take to answer its first command (namespaces, mounts, bash)
    /// before the sandbox counts as not started. Generous: under load a healthy launch is
    /// slow, not dead, and a launch that dies is reported at once whatever this says.
    #[serde(with = "secs")]
    pub start_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 4 << 30,
            max_processes: 512,
            file_size_bytes: 1 << 30,
            disk_bytes: 2 << 30,
            cpu_seconds: 600,
            output_bytes: 100_000,
            file_io_bytes: 64 << 20,
            file_io_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(120),
            start_timeout: Duration::from_secs(300),
        }
    }
}

mod secs {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v: f64 = serde::Deserialize::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

/// What a sandbox is made from.
#[derive(Debug, Clone, Default)]
pub struct SandboxSpec {
    /// Prepared, read-only environment source: a directory whose `repo/` subdirectory holds
    /// the repository (at base_commit, single-commit history). It is never modified: the
    /// workspace is a copy-on-write overlay over it.
    pub env_source: PathBuf,
    /// Where the repository appears inside the sandbox (SWE-bench images use `/testbed`).
    pub workdir: String,
    pub limits: Limits,
    /// Extra environment variables for the shell.
    pub env: Vec<(String, String)>,
    /// The task's own environment image (SWE-bench / SWE-rebench), for backends that run
    /// images; `None` takes the backend's default. The local backend's environment is
    /// `env_source`, so it ignores this.
    pub image: Option<String>,
    /// A shared, read-only layer under `env_source` (the task's Python environment, built by
    /// `swerl prepare` and shared by every task of the same repository and version): the
    /// sandbox's `/env` shows `env_source` over it. The local backend only; images carry
    /// their own environment.
    pub shared_env: Option<PathBuf>,
    /// Whether the sandbox reaches the host's network. Only environment builds ask for it;
    /// agent episodes and grading never do (their network namespace has loopback only).
    pub network: bool,
}

/// The result of one command in the persistent shell.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecOutput {
    /// stdout and stderr interleaved, decoded lossily as UTF-8, capped at `Limits::output_bytes`
    /// with an explicit truncation marker.
    pub output: String,
    /// Exit status of the command; `None` when it was killed by the timeout.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Bytes of output dropped by the cap (0 when nothing was dropped).
    pub truncated_bytes: u64,
    /// The shell's working directory after the command.
    pub cwd: String,
    pub duration: Duration,
}

/// Infrastructure failures. An agent's failing command is NOT an error: it is an
/// `ExecOutput` with a non-zero exit code.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox could not start: {0}")]
    Start(String),
    #[error("sandbox shell died and could not be restarted: {0}")]
    ShellLost(String),
    #[error("sandbox i/o on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("host command `{command}` failed: {reason}")]
    Host { command: String, reason: String },
}

/// One live, isolated workspace with a persistent shell (cd and exported variables persist).
pub trait Sandbox: Send {
    /// Runs `command` in the persistent shell. A timeout kills the command's whole process
    /// group, says so in the output, and leaves the shell usable (restarted if it died).
    fn exec(
        &mut self,
        command: &str,
        timeout: Option<Duration>,
    ) -> Result<ExecOutput, SandboxError>;
    /// Reads a file; `path` is absolute inside the sandbox or relative to the workdir.
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, SandboxError>;
    /// Writes (creates or replaces) a file; parent directories must exist.
    fn write_file(&mut self, path: &str, contents: &[u8]) -> Result<(), SandboxError>;
    /// The repository's path inside the sandbox.
    fn workdir(&self) -> &str;
    /// Kills every process and removes every temporary file and mount. Idempotent; also
    /// done on drop.
    fn teardown(&mut self) -> Result<(), SandboxError>;
}

/// Makes sandboxes; one per backend (local bubblewrap, containers).
pub trait SandboxFactory: Send + Sync {
    fn create(&self, spec: &SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError>;
}

/// A boxed factory is a factory, so callers can choose the backend at run time.
impl<F: SandboxFactory + ?Sized> SandboxFactory for Box<F> {
    fn create(&self, spec: &SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError> {
        (**self).create(spec)
    }
}
