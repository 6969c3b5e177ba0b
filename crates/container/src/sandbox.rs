//! [`ContainerFactory`] and [`ContainerSandbox`]: the `Sandbox` trait over containers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use swerl_sandbox::{ExecOutput, Sandbox, SandboxError, SandboxFactory, SandboxSpec};
use tokio::sync::OwnedSemaphorePermit;

use crate::create::ContainerPlan;
use crate::daemon::{short, Bounded, Daemon};
use crate::error::ContainerError;
use crate::files;
use crate::output::CappedOutput;
use crate::protocol::restore_command;
use crate::shell::{shell_cmd, ExecShell, RunEnd, RunResult};
use crate::ContainerConfig;

/// Time allowed for the kill-everything exec after a timeout, and for a shell to start.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

/// Makes one container per sandbox through the Docker Engine API.
///
/// The repository comes from the image (at `ContainerConfig::workdir`, else the spec's
/// workdir); the spec's `env_source` is not used by this backend. Limits, extra environment
/// variables and the output cap come from the spec as for the local backend.
///
/// Owns a tokio runtime and blocks on it: call it (and drop its sandboxes) from ordinary
/// threads, not from inside an async task.
#[derive(Debug, Clone)]
pub struct ContainerFactory {
    daemon: Arc<Daemon>,
}

impl ContainerFactory {
    /// Connects to the daemon and removes leftovers of dead owners (crashed or killed runs).
    pub fn new(config: ContainerConfig) -> Result<ContainerFactory, ContainerError> {
        let daemon = Arc::new(Daemon::connect(config)?);
        let swept = daemon.block_on(daemon.sweep())?;
        if swept > 0 {
            tracing::warn!(swept, "removed sandbox containers left by dead processes");
        }
        Ok(ContainerFactory { daemon })
    }

    /// The configuration this factory was made with.
    pub fn config(&self) -> &ContainerConfig {
        &self.daemon.config
    }

    /// Creates a sandbox from the spec's image, else the configured default image.
    pub fn create_container(&self, spec: &SandboxSpec) -> Result<ContainerSandbox, SandboxError> {
        let image = spec.image.as_deref().unwrap_or(&self.daemon.config.image);
        self.create_from_image(spec, image)
    }

    /// Creates a sandbox from `image` (a task's own image, e.g. a SWE-bench eval image).
    pub fn create_from_image(
        &self,
        spec: &SandboxSpec,
        image: &str,
    ) -> Result<ContainerSandbox, SandboxError> {
        let workdir = self
            .daemon
            .config
            .workdir
            .clone()
            .unwrap_or_else(|| spec.workdir.clone());
        if !workdir.starts_with('/') || workdir == "/" {
            return Err(SandboxError::Start(format!(
                "workdir `{workdir}` must be an absolute path other than /"
            )));
        }
        let daemon = &self.daemon;
        let (slot, id) = daemon.block_on(async {
            daemon.ensure_image(image).await?;
            let slot = daemon.acquire_slot().await?;
            let plan = ContainerPlan {
                image,
                workdir: &workdir,
                limits: &spec.limits,
                env: &spec.env,
            };
            let id = daemon.create_started(&plan).await?;
            Ok::<_, ContainerError>((slot, id))
        })?;
        let mut sandbox = ContainerSandbox {
            daemon: self.daemon.clone(),
            id,
            spec: SandboxSpec {
                workdir: workdir.clone(),
                ..spec.clone()
            },
            shell: None,
            cwd: workdir,
            torn_down: false,
            slot: Some(slot),
        };
        // Dropping the sandbox on failure removes the container.
        if self.daemon.config.copy_repo {
            sandbox.copy_repo_in()?;
        } else if self.daemon.config.squash_history {
            sandbox.squash_history()?;
        }
        sandbox.start_shell().map_err(|e| match e {
            SandboxError::ShellLost(m) => SandboxError::Start(m),
            other => other,
        })?;
        Ok(sandbox)
    }

    /// Ids of the containers this crate labelled (any owner) that the daemon still has.
    pub fn labelled_containers(&self) -> Result<Vec<String>, ContainerError> {
        let list = self.daemon.block_on(self.daemon.labelled())?;
        Ok(list.into_iter().map(|(id, _)| id).collect())
    }

    /// Removes labelled containers whose owner process is dead; returns how many.
    pub fn sweep(&self) -> Result<usize, ContainerError> {
        self.daemon.block_on(self.daemon.sweep())
    }
}

impl SandboxFactory for ContainerFactory {
    fn create(&self, spec: &SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError> {
        Ok(Box::new(self.create_container(spec)?))
    }
}

/// One container with a persistent shell. Removed on teardown and on drop.
#[derive(Debug)]
pub struct ContainerSandbox {
    daemon: Arc<Daemon>,
    id: String,
    spec: SandboxSpec,
    shell: Option<ExecShell>,
    /// The shell's directory after the last completed command; a restarted shell goes back.
    cwd: String,
    torn_down: bool,
    /// The factory's concurrency slot, given back at teardown.
    slot: Option<OwnedSemaphorePermit>,
}

impl ContainerSandbox {
    /// The container's id.
    pub fn container_id(&self) -> &str {
        &self.id
    }

    fn start_shell(&mut self) -> Result<(), SandboxError> {
        let daemon = self.daemon.clone();
        let restore = restore_command(&self.cwd, &self.spec.workdir);
        let (shell, result) = daemon.block_on(async {
            let (exec_id, attached) = daemon
                .attach(&self.id, shell_cmd(), true, &self.spec.workdir)
                .await?;
            let mut shell = ExecShell::new(exec_id, attached);
            let result = shell.run(&restore, HOUSEKEEPING, 8192).await;
            Ok::<_, ContainerError>((shell, result))
        })?;
        let result = result.map_err(|e| {
            SandboxError::ShellLost(format!("the new shell did not accept input: {e}"))
        })?;
        match result.finish() {
            (_, RunEnd::Completed { cwd, .. }) => {
                self.cwd = cwd;
                self.shell = Some(shell);
                Ok(())
            }
            (out, _) => Err(SandboxError::ShellLost(format!(
                "the shell in container {} did not start: {}",
                short(&self.id),
                out.text.trim()
            ))),
        }
    }

    /// Copies `env_source/repo` into the workdir (created first, emptied of nothing: the
    /// image's own files there stay unless the repository overwrites them).
    fn copy_repo_in(&mut self) -> Result<(), SandboxError> {
        let repo = self.spec.env_source.join("repo");
        let tar = crate::tar::tar_dir(&repo).map_err(|source| SandboxError::Io {
            path: repo.display().to_string(),
            source,
        })?;
        let workdir = self.spec.workdir.clone();
        let mkdir = vec!["/bin/mkdir".into(), "-p".into(), workdir.clone()];
        let daemon = &self.daemon;
        let (_, err, code) = daemon.block_on(daemon.run(&self.id, mkdir, HOUSEKEEPING))?;
        if code != Some(0) {
            return Err(self.file_err(&workdir, &err, code));
        }
        daemon.block_on(daemon.upload(&self.id, &workdir, tar))?;
        Ok(())
    }

    /// Replaces the image repository's git history by a single commit of its working tree
    /// (tracked files that the ignore rules match stay tracked), so that no later commit, ref,
    /// reflog entry or unreachable object is left for the agent to read the fix from. A
    /// workdir without `.git` is left alone.
    fn squash_history(&mut self) -> Result<(), SandboxError> {
        let script = format!(
            "set -e; cd {dir}; [ -e .git ] || exit 0; \
             forced=$(mktemp); git ls-files -z -c -i --exclude-standard >\"$forced\"; \
             rm -rf .git; git init -q; git add -A; \
             xargs -0 -r git add -f -- <\"$forced\"; rm -f \"$forced\"; \
             git -c user.name=swerl -c user.email=swerl@invalid commit -q --no-verify \
             --allow-empty -m 'base (history removed by swerl)'",
            dir = crate::protocol::shell_quote(&self.spec.workdir)
        );
        let cmd = vec!["/bin/bash".into(), "-c".into(), script];
        let daemon = &self.daemon;
        let within = daemon.config.request_timeout;
        let (out, err, code) = daemon.block_on(daemon.run(&self.id, cmd, within))?;
        if code != Some(0) {
            let text = [out, err].concat();
            return Err(SandboxError::Start(format!(
                "replacing the git history of {} in container {} failed (exit {code:?}): {}; \
                 does the image have git? (squash_history can be turned off for images without \
                 future history)",
                self.spec.workdir,
                short(&self.id),
                String::from_utf8_lossy(&text).trim()
            )));
        }
        Ok(())
    }

    /// Saves this container's filesystem as image `name` (`repo[:tag]`, tag `latest` if
    /// none): how an environment prepared in a sandbox becomes a task image without a
    /// registry (the tests make SWE-bench-like images this way).
    pub fn save_as_image(&self, name: &str) -> Result<(), SandboxError> {
        let (repo, tag) = match name.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (name, "latest"),
        };
        let daemon = &self.daemon;
        daemon.block_on(daemon.commit(&self.id, repo, tag))?;
        Ok(())
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

    /// Kills every process in the container but PID 1 (the reaping init), which ends the
    /// shell and the timed-out command's whole process tree. `kill -1` is repeated because
    /// a fork bomb forks between the kernel's sweeps. When no exec can start (the bomb holds
    /// every pid of the cgroup) the container is restarted instead: that kills everything,
    /// PID 1 included, and keeps the filesystem.
    fn kill_all(&mut self) -> Result<(), SandboxError> {
        // Builtins only: under a saturated pids limit a fork (`$(...)`, `seq`) would fail.
        let script =
            "i=0; while [ $i -lt 100 ] && kill -9 -1 2>/dev/null; do i=$((i+1)); done; true";
        let cmd = vec!["/bin/bash".into(), "-c".into(), script.into()];
        let daemon = &self.daemon;
        match daemon.block_on(daemon.run(&self.id, cmd, HOUSEKEEPING)) {
            Ok((_, _, Some(0))) => Ok(()),
            outcome => {
                tracing::warn!(
                    ?outcome,
                    container = short(&self.id),
                    "kill exec failed; restarting the container"
                );
                self.restart()
            }
        }
    }

    fn restart(&mut self) -> Result<(), SandboxError> {
        self.shell = None;
        self.daemon.block_on(self.daemon.restart(&self.id))?;
        Ok(())
    }

    /// Starts a shell after the container's processes were killed; restarts the container
    /// once when that fails (processes that outlived the kill may still hold every pid).
    fn restart_shell_after_kill(&mut self) -> Result<(), SandboxError> {
        if let Err(e) = self.start_shell() {
            tracing::warn!(error = %e, container = short(&self.id), "no shell after the kill; restarting the container");
            self.restart()?;
            self.start_shell()?;
        }
        Ok(())
    }

    fn run_once(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<std::io::Result<RunResult>, SandboxError> {
        self.ensure_shell()?;
        let cap = self.spec.limits.output_bytes;
        let shell = self.shell.as_mut().expect("shell started above");
        Ok(self.daemon.block_on(shell.run(command, timeout, cap)))
    }

    fn finish_timed_out(
        &mut self,
        mut result: RunResult,
        timeout: Duration,
    ) -> Result<ExecOutput, SandboxError> {
        self.kill_all()?;
        if let Some(mut shell) = self.shell.take() {
            // Keep what the command printed before it died.
            self.daemon
                .block_on(shell.drain(&mut result.output, Duration::from_millis(200)));
        }
        self.restart_shell_after_kill()?;
        let note = format!(
            "[command timed out after {} s; its process group and every other process in the sandbox were killed; a new shell was started in {}]\n",
            format_secs(timeout),
            self.cwd
        );
        Ok(self.output(result.finish().0, None, true, note))
    }

    fn finish_shell_exited(&mut self, result: RunResult) -> Result<ExecOutput, SandboxError> {
        let code = match self.shell.take() {
            Some(shell) => self
                .daemon
                .block_on(self.daemon.exit_code(&shell.exec_id))?
                .map(|c| c as i32),
            None => None,
        };
        self.start_shell()?;
        let status = code
            .map(|c| format!(" with status {c}"))
            .unwrap_or_default();
        let note = format!(
            "[the shell exited{status}; a new shell was started in {}]\n",
            self.cwd
        );
        Ok(self.output(result.finish().0, code, false, note))
    }

    fn output(
        &self,
        out: CappedOutput,
        exit_code: Option<i32>,
        timed_out: bool,
        note: String,
    ) -> ExecOutput {
        let mut output = out.text;
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&note);
        ExecOutput {
            output,
            exit_code,
            timed_out,
            truncated_bytes: out.dropped,
            cwd: self.cwd.clone(),
            duration: Duration::ZERO,
        }
    }

    fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{}", self.spec.workdir.trim_end_matches('/'), path)
        }
    }

    fn file_err(&self, path: &str, stderr: &[u8], code: Option<i64>) -> SandboxError {
        let msg = String::from_utf8_lossy(stderr).trim().to_string();
        let reason = if msg.is_empty() {
            format!("exit status {code:?}")
        } else {
            msg
        };
        SandboxError::File {
            path: path.to_string(),
            reason,
        }
    }
}

impl Sandbox for ContainerSandbox {
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
                self.shell = None;
                self.start_shell()?;
                self.run_once(command, timeout)?.map_err(|e| {
                    SandboxError::ShellLost(format!("restarted shell rejected the command: {e}"))
                })?
            }
        };
        let mut out = match result.end {
            RunEnd::Completed { exit_code, ref cwd } => {
                self.cwd = cwd.clone();
                let (text, _) = result.finish();
                self.output(text, Some(exit_code), false, String::new())
            }
            RunEnd::TimedOut => self.finish_timed_out(result, timeout)?,
            RunEnd::ShellExited => self.finish_shell_exited(result)?,
        };
        out.duration = started.elapsed();
        Ok(out)
    }

    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, SandboxError> {
        self.ensure_shell()?;
        let abs = self.absolute(path);
        let limits = &self.spec.limits;
        let (max, within) = (limits.file_io_bytes, limits.file_io_timeout);
        let cmd = files::read_command(&abs, max, within.as_secs().max(1));
        let cap = usize::try_from(max).unwrap_or(usize::MAX);
        let ran = self.daemon.block_on(self.daemon.run_bounded(
            &self.id,
            cmd,
            within + HOUSEKEEPING,
            cap,
        ))?;
        match ran {
            Bounded::Done { out, .. } if out.len() as u64 > max => Err(too_large(&abs, max)),
            Bounded::Done {
                out, code: Some(0), ..
            } => Ok(out),
            Bounded::Done { err, code, .. } => Err(self.file_err(&abs, &err, code)),
            Bounded::Overflow => Err(too_large(&abs, max)),
            Bounded::Stalled => Err(stalled(&abs, within)),
        }
    }

    fn write_file(&mut self, path: &str, contents: &[u8]) -> Result<(), SandboxError> {
        self.ensure_shell()?;
        let abs = self.absolute(path);
        let limits = &self.spec.limits;
        let max = limits.file_io_bytes.min(limits.file_size_bytes);
        if contents.len() as u64 > max {
            return Err(SandboxError::File {
                path: abs,
                reason: format!(
                    "{} bytes is more than the {max} bytes a file tool may write",
                    contents.len()
                ),
            });
        }
        let within = limits.file_io_timeout;
        for cmd in files::write_commands(&abs, contents, within.as_secs().max(1)) {
            let ran = self.daemon.block_on(self.daemon.run_bounded(
                &self.id,
                cmd,
                within + HOUSEKEEPING,
                64 * 1024,
            ))?;
            match ran {
                Bounded::Done { code: Some(0), .. } => {}
                Bounded::Done { err, code, .. } => return Err(self.file_err(&abs, &err, code)),
                Bounded::Overflow | Bounded::Stalled => return Err(stalled(&abs, within)),
            }
        }
        Ok(())
    }

    fn workdir(&self) -> &str {
        &self.spec.workdir
    }

    fn teardown(&mut self) -> Result<(), SandboxError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        self.shell = None;
        let removed = self.daemon.block_on(self.daemon.remove(&self.id));
        self.slot = None;
        removed?;
        Ok(())
    }
}

impl Drop for ContainerSandbox {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(error = %e, container = short(&self.id), "container removal on drop failed; the next factory start sweeps it");
        }
    }
}

/// A file larger than the cap: an agent-visible error, never a read into memory.
fn too_large(path: &str, max: u64) -> SandboxError {
    SandboxError::File {
        path: path.to_string(),
        reason: format!(
            "is larger than the {max} bytes a file tool may read; use shell commands (head, sed -n, grep) on it"
        ),
    }
}

/// A file access that did not end: the agent's doing (a FIFO, a replaced program), so an
/// error it sees, not an infrastructure failure.
fn stalled(path: &str, within: Duration) -> SandboxError {
    SandboxError::File {
        path: path.to_string(),
        reason: format!(
            "the access did not finish within {} s and was abandoned",
            format_secs(within)
        ),
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
