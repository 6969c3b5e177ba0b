//! The local bubblewrap backend: [`LocalFactory`] and [`LocalSandbox`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cgroup::{Controllers, SandboxCgroup};
use crate::gate::LaunchGate;
use crate::launch::{HostTools, LaunchPlan, STATE_FILE};
use crate::protocol::restore_command;
use crate::scratch::{io_err, kill_uid, pids_of_uid, sweep, Scratch};
use crate::shell::{pid_namespace_init, KillMode, RunEnd, RunResult, Shell, Startup};
use crate::{files, ExecOutput, Sandbox, SandboxError, SandboxFactory, SandboxSpec};

/// Makes bubblewrap sandboxes on this machine (needs root, bwrap, util-linux).
#[derive(Debug, Clone)]
pub struct LocalFactory {
    tools: HostTools,
    scratch_root: PathBuf,
    /// Shared by every sandbox of this factory (and its clones), restarts included.
    gate: Arc<LaunchGate>,
    /// Where this host enforces per-sandbox memory and process limits.
    controllers: Arc<Controllers>,
    /// The walls of issue 13 (cgroups, disk quota, seccomp, read-only kernel settings) are
    /// on; off only for the benchmark's before/after figures.
    walls: bool,
}

impl LocalFactory {
    /// Finds the host tools and removes leftovers of crashed runs from the temp dir.
    pub fn new() -> Result<LocalFactory, SandboxError> {
        Self::with_scratch_root(std::env::temp_dir())
    }

    /// Like [`LocalFactory::new`] with scratch directories under `root` (same filesystem
    /// rules as overlayfs upper dirs: not itself an overlay).
    pub fn with_scratch_root(root: PathBuf) -> Result<LocalFactory, SandboxError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(SandboxError::Start(
                "the local sandbox needs root (overlay mounts, per-sandbox uids); run as root"
                    .into(),
            ));
        }
        let tools = HostTools::discover()?;
        let controllers = Controllers::of_this_host();
        let swept = sweep(&root, &controllers);
        if swept > 0 {
            tracing::warn!(swept, root = %root.display(), "removed sandbox leftovers of crashed runs");
        }
        let factory = LocalFactory {
            tools,
            scratch_root: root,
            gate: Arc::new(LaunchGate::new(LaunchGate::default_capacity())),
            controllers: Arc::new(controllers),
            walls: true,
        };
        factory.report_enforcement();
        Ok(factory)
    }

    /// Which limit and wall this host enforces, and how, in one line per item: what the
    /// run says at start (a limit that cannot be enforced is never silent).
    pub fn enforcement(&self) -> Vec<String> {
        let seccomp = match crate::seccomp::program() {
            Some(_) => "seccomp: on".to_string(),
            None => "seccomp: NOT ENFORCED (no filter for this architecture)".to_string(),
        };
        vec![
            self.controllers.describe(),
            "disk: tmpfs of Limits::disk_bytes under the overlay (upper, work, /tmp)".into(),
            seccomp,
        ]
    }

    fn report_enforcement(&self) {
        for line in self.enforcement() {
            if line.contains("NOT ENFORCED") {
                tracing::warn!("sandbox limits: {line}");
            } else {
                tracing::info!("sandbox limits: {line}");
            }
        }
    }

    /// At most `n` (at least 1) shells of this factory's sandboxes are launched at once; the
    /// others wait their turn, and that wait does not count against `Limits::start_timeout`.
    /// The default is two per core. See `gate` for why launches are bounded at all.
    pub fn with_launch_concurrency(mut self, n: usize) -> LocalFactory {
        self.gate = Arc::new(LaunchGate::new(n));
        self
    }

    /// Without the walls of issue 13 (per-sandbox cgroups, the disk quota, seccomp and the
    /// read-only kernel settings): ONLY for `bench`, which measures their cost side by side.
    /// The host-side file checks stay on either way.
    #[doc(hidden)]
    pub fn without_walls_for_benchmarks(mut self) -> LocalFactory {
        self.walls = false;
        self
    }

    /// How many shells may be launched at once.
    pub fn launch_concurrency(&self) -> usize {
        self.gate.capacity()
    }

    /// Creates a sandbox and returns the concrete type (tests and benchmarks inspect it).
    pub fn create_local(&self, spec: &SandboxSpec) -> Result<LocalSandbox, SandboxError> {
        let env_source = spec
            .env_source
            .canonicalize()
            .map_err(|e| io_err(&spec.env_source, e))?;
        if !env_source.join("repo").is_dir() {
            return Err(SandboxError::Start(format!(
                "env_source {} has no repo/ directory; prepare it first",
                env_source.display()
            )));
        }
        if !spec.workdir.starts_with('/') || spec.workdir == "/" {
            return Err(SandboxError::Start(format!(
                "workdir `{}` must be an absolute path other than /",
                spec.workdir
            )));
        }
        let shared_env = match &spec.shared_env {
            Some(dir) => Some(dir.canonicalize().map_err(|e| io_err(dir, e))?),
            None => None,
        };
        let limits = &spec.limits;
        let quota = self.walls.then_some(limits.disk_bytes);
        let scratch = Scratch::allocate(&self.scratch_root, quota)?;
        let cgroup = if self.walls {
            self.controllers
                .create(
                    &cgroup_name(scratch.uid),
                    limits.memory_bytes,
                    limits.max_processes,
                )
                .inspect_err(|_| {
                    let _ = scratch.remove();
                })?
        } else {
            SandboxCgroup::none()
        };
        let mut sandbox = LocalSandbox {
            tools: self.tools.clone(),
            gate: self.gate.clone(),
            scratch,
            spec: SandboxSpec {
                env_source,
                shared_env,
                ..spec.clone()
            },
            shell: None,
            cwd: spec.workdir.clone(),
            torn_down: false,
            cgroup,
            walls: self.walls,
        };
        sandbox.start_shell().map_err(|e| match e {
            SandboxError::ShellLost(m) => SandboxError::Start(m),
            other => other,
        })?;
        Ok(sandbox)
    }
}

impl SandboxFactory for LocalFactory {
    fn create(&self, spec: &SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError> {
        Ok(Box::new(self.create_local(spec)?))
    }
}

/// One bubblewrap sandbox with a copy-on-write workspace and a persistent shell.
#[derive(Debug)]
pub struct LocalSandbox {
    tools: HostTools,
    gate: Arc<LaunchGate>,
    scratch: Scratch,
    spec: SandboxSpec,
    shell: Option<Shell>,
    /// The shell's directory after the last completed command; a restarted shell goes back.
    cwd: String,
    torn_down: bool,
    /// The sandbox's memory and pids groups (none where the host has no cgroups).
    cgroup: SandboxCgroup,
    walls: bool,
}

/// The name of a sandbox's cgroup (also how the sweep finds a crashed run's).
pub(crate) fn cgroup_name(uid: u32) -> String {
    format!("{}{uid}", crate::scratch::SCRATCH_PREFIX)
}

impl LocalSandbox {
    /// The host uid every process in this sandbox runs as.
    pub fn uid(&self) -> u32 {
        self.scratch.uid
    }

    /// The host directory holding this sandbox's upper layer, /tmp and state.
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch.dir
    }

    /// The most memory all of the sandbox's processes used at once, where the host's cgroup
    /// records it.
    pub fn peak_memory(&self) -> Option<u64> {
        self.cgroup.peak_memory()
    }

    /// Host pid of bubblewrap's monitor process (None when no shell is running).
    pub fn monitor_pid(&self) -> Option<u32> {
        self.shell.as_ref().map(Shell::pid)
    }

    /// Ends the sandbox and keeps what its commands changed under `/env` (the overlay's upper
    /// layer: new and changed files, whiteouts for removed ones) at `dest`, which must not
    /// exist. For environment builds: the result becomes a read-only layer of later sandboxes.
    /// The caller owns `dest` afterwards and must treat its contents as untrusted (they were
    /// written by the sandboxed commands).
    pub fn keep_changes(mut self, dest: &Path) -> Result<(), SandboxError> {
        self.stop_shell();
        let upper = self.scratch.layer("upper");
        if std::fs::rename(&upper, dest).is_err() {
            // Another filesystem (e.g. a tmpfs upper layer): copy with xattrs (opaque
            // directories) and device nodes (whiteouts) intact.
            let (from, to) = (format!("{}/.", upper.display()), dest.display().to_string());
            std::fs::create_dir_all(dest).map_err(|e| io_err(dest, e))?;
            crate::host_command_checked(
                "cp",
                &["-a", "--preserve=all", &from, &to],
                Path::new("/"),
            )?;
        }
        self.teardown()
    }

    fn start_shell(&mut self) -> Result<(), SandboxError> {
        let plan = LaunchPlan {
            tools: &self.tools,
            scratch: &self.scratch,
            env_source: &self.spec.env_source,
            shared_env: self.spec.shared_env.as_deref(),
            network: self.spec.network,
            workdir: &self.spec.workdir,
            limits: &self.spec.limits,
            env: &self.spec.env,
            cgroup_procs: self.cgroup.procs_files(),
            walls: self.walls,
        };
        let command = plan.command()?;
        let restore = restore_command(STATE_FILE, &self.cwd, &self.spec.workdir);
        let queued = Instant::now();
        let permit = self.gate.enter();
        let started = Instant::now();
        let mut shell = Shell::spawn(command, KillMode::PidNamespace)
            .map_err(|e| SandboxError::ShellLost(format!("spawning the sandbox failed: {e}")))?;
        let startup = shell
            .handshake(&restore, self.spec.limits.start_timeout, STATE_FILE)
            .map_err(|e| {
                SandboxError::ShellLost(format!("the new shell did not accept input: {e}"))
            })?;
        drop(permit);
        let took = started.elapsed().as_secs_f64();
        let queued = (started - queued).as_secs_f64();
        match startup {
            Startup::Ready { cwd } => {
                self.cwd = cwd;
                self.shell = Some(shell);
                Ok(())
            }
            Startup::Exited { status, output } => Err(SandboxError::ShellLost(format!(
                "the sandbox shell did not start: the launch exited ({status}) after {took:.2} s; its output: {}",
                quote_output(&output)
            ))),
            Startup::NoAnswer { tree, output } => Err(SandboxError::ShellLost(format!(
                "the sandbox shell did not start: no answer within the start timeout ({} s; launched after {queued:.2} s in the launch queue); processes: {tree}; output: {}",
                format_secs(self.spec.limits.start_timeout),
                quote_output(&output)
            ))),
        }
    }

    fn stop_shell(&mut self) -> Option<i32> {
        self.shell.take().and_then(|mut s| s.kill_and_wait())
    }

    /// The pid whose `/proc/<pid>/root` is the sandbox's root (the PID-namespace init).
    fn root_pid(&mut self) -> Result<u32, SandboxError> {
        self.ensure_shell()?;
        let monitor = self.shell.as_ref().map(Shell::pid).unwrap_or(0);
        pid_namespace_init(monitor).ok_or_else(|| {
            SandboxError::ShellLost(format!(
                "bubblewrap monitor {monitor} has no sandbox process"
            ))
        })
    }

    /// The rules of host-side file access to this sandbox (see `files`).
    fn file_access(&mut self) -> Result<files::Access, SandboxError> {
        let limits = &self.spec.limits;
        let (max_read, max_write, timeout) = (
            limits.file_io_bytes,
            limits.file_io_bytes.min(limits.file_size_bytes),
            limits.file_io_timeout,
        );
        Ok(files::Access {
            pid: self.root_pid()?,
            uid: self.scratch.uid,
            max_read,
            max_write,
            timeout,
        })
    }

    fn ensure_shell(&mut self) -> Result<(), SandboxError> {
        if self.torn_down {
            return Err(SandboxError::ShellLost(
                "the sandbox was torn down; create a new one".into(),
            ));
        }
        if self.shell.is_none() {
            self.start_shell()?;
        }
        Ok(())
    }

    fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{}", self.spec.workdir.trim_end_matches('/'), path)
        }
    }

    /// Runs the command once; `Err` from the shell's stdin means the shell was already gone.
    fn run_once(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<std::io::Result<RunResult>, SandboxError> {
        self.ensure_shell()?;
        let cap = self.spec.limits.output_bytes;
        let shell = self.shell.as_mut().expect("shell started above");
        Ok(shell.run(command, timeout, cap, STATE_FILE))
    }

    fn finish_timed_out(
        &mut self,
        result: RunResult,
        timeout: Duration,
    ) -> Result<ExecOutput, SandboxError> {
        self.stop_shell();
        self.start_shell()?;
        let note = format!(
            "[command timed out after {} s; its process group and every other process in the sandbox were killed; a new shell was started in {}]\n",
            format_secs(timeout),
            self.cwd
        );
        Ok(self.output(result, None, true, note))
    }

    fn finish_shell_exited(&mut self, result: RunResult) -> Result<ExecOutput, SandboxError> {
        let code = self
            .shell
            .as_mut()
            .and_then(|s| s.wait_exited(Duration::from_secs(5)));
        self.stop_shell();
        self.start_shell()?;
        let status = code
            .map(|c| format!(" with status {c}"))
            .unwrap_or_default();
        let note = format!(
            "[the shell exited{status}; a new shell was started in {}]\n",
            self.cwd
        );
        Ok(self.output(result, code, false, note))
    }

    fn output(
        &self,
        result: RunResult,
        exit_code: Option<i32>,
        timed_out: bool,
        note: String,
    ) -> ExecOutput {
        let mut output = result.output.text;
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&note);
        ExecOutput {
            output,
            exit_code,
            timed_out,
            truncated_bytes: result.output.dropped,
            cwd: self.cwd.clone(),
            duration: Duration::ZERO,
        }
    }
}

impl Sandbox for LocalSandbox {
    fn exec(
        &mut self,
        command: &str,
        timeout: Option<Duration>,
    ) -> Result<ExecOutput, SandboxError> {
        let started = Instant::now();
        let timeout = timeout.unwrap_or(self.spec.limits.command_timeout);
        if command.contains('\0') {
            let output = "swerl: the command contains a NUL byte and was not run\n".to_string();
            return Ok(ExecOutput {
                output,
                exit_code: Some(2),
                timed_out: false,
                truncated_bytes: 0,
                cwd: self.cwd.clone(),
                duration: started.elapsed(),
            });
        }
        let result = match self.run_once(command, timeout)? {
            Ok(r) => r,
            Err(_) => {
                // The shell died between commands (e.g. a background `kill` of it): restart once.
                self.stop_shell();
                self.start_shell()?;
                self.run_once(command, timeout)?.map_err(|e| {
                    SandboxError::ShellLost(format!("restarted shell rejected the command: {e}"))
                })?
            }
        };
        let mut out = match result.end {
            RunEnd::Completed { exit_code, ref cwd } => {
                self.cwd = cwd.clone();
                let truncated_bytes = result.output.dropped;
                ExecOutput {
                    output: result.output.text,
                    exit_code: Some(exit_code),
                    timed_out: false,
                    truncated_bytes,
                    cwd: self.cwd.clone(),
                    duration: Duration::ZERO,
                }
            }
            RunEnd::TimedOut => self.finish_timed_out(result, timeout)?,
            RunEnd::ShellExited => self.finish_shell_exited(result)?,
        };
        out.duration = started.elapsed();
        Ok(out)
    }

    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, SandboxError> {
        let access = self.file_access()?;
        files::read(access, &self.absolute(path))
    }

    fn write_file(&mut self, path: &str, contents: &[u8]) -> Result<(), SandboxError> {
        let access = self.file_access()?;
        files::write(access, &self.absolute(path), contents)
    }

    fn workdir(&self) -> &str {
        &self.spec.workdir
    }

    fn teardown(&mut self) -> Result<(), SandboxError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        self.stop_shell();
        // Belt and braces: nothing may survive as the sandbox uid (the PID namespace's end
        // already killed everything; a leftover would mean a kernel or bwrap surprise).
        if kill_uid(self.scratch.uid) > 0 {
            tracing::warn!(
                uid = self.scratch.uid,
                "sandbox processes outlived their PID namespace; killed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = pids_of_uid(self.scratch.uid);
        let cgroup = self.cgroup.remove();
        self.scratch.remove()?;
        cgroup?;
        if !left.is_empty() {
            return Err(SandboxError::Host {
                command: "teardown".into(),
                reason: format!(
                    "processes {left:?} of uid {} survived SIGKILL",
                    self.scratch.uid
                ),
            });
        }
        Ok(())
    }
}

impl Drop for LocalSandbox {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(error = %e, dir = %self.scratch.dir.display(), "sandbox teardown on drop failed");
        }
    }
}

/// A launch's output for an error message: trimmed, `(none)` when empty.
fn quote_output(output: &str) -> String {
    let trimmed = output.trim();
    if trimmed.is_empty() {
        "(none)".to_string()
    } else {
        format!("`{trimmed}`")
    }
}

fn format_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}
