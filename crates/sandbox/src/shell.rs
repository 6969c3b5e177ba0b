//! A persistent bash process: send framed commands, collect capped output until the marker,
//! the shell's death or the deadline.
//!
//! The shell's stdout and stderr share one pipe, so output is interleaved as a terminal would
//! show it. How the shell is launched (plain bash in unit tests, bubblewrap in production) is
//! the caller's business; how its processes are killed is given by [`KillMode`].

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::output::{CappedOutput, OutputCap};
use crate::protocol::{frame_command, MarkerScanner, Nonce};

/// How to kill everything a shell started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum KillMode {
    /// The shell leads its own process group (plain bash, no job control). Only the unit
    /// tests run a shell outside bubblewrap.
    #[cfg_attr(not(test), allow(dead_code))]
    ProcessGroup,
    /// The spawned process is bubblewrap's monitor; its only child is the init of a private
    /// PID namespace, and killing that init makes the kernel kill every process inside.
    PidNamespace,
}

/// How one command ended.
#[derive(Debug)]
pub(crate) enum RunEnd {
    Completed {
        exit_code: i32,
        cwd: String,
    },
    /// The deadline passed; the shell and everything it started have been killed.
    TimedOut,
    /// The shell exited (or was killed) during the command.
    ShellExited,
}

/// How a new shell's readiness handshake (its first command) ended.
#[derive(Debug)]
pub(crate) enum Startup {
    /// The shell ran the command and answered; `cwd` is where it is now.
    Ready { cwd: String },
    /// The spawned process exited (or closed its output) before answering: `status` is its
    /// exit status, `output` what it (mount, bubblewrap, the shell) printed.
    Exited { status: String, output: String },
    /// Still running but no answer by the deadline: `tree` is where the launch stood (each
    /// process with its state and kernel wait channel). The shell has been killed.
    NoAnswer { tree: String, output: String },
}

/// Output and ending of one command.
#[derive(Debug)]
pub(crate) struct RunResult {
    pub output: CappedOutput,
    pub end: RunEnd,
}

/// A running shell.
#[derive(Debug)]
pub(crate) struct Shell {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: File,
    kill_mode: KillMode,
    /// Output that arrived after the previous marker (background jobs); shown with the next.
    carry: Vec<u8>,
}

impl Shell {
    /// Spawns `command` (which must end in a non-interactive bash reading stdin) with its
    /// stdout and stderr on one pipe.
    pub fn spawn(mut command: Command, kill_mode: KillMode) -> std::io::Result<Shell> {
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let write_err: OwnedFd = write_end.try_clone()?;
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::from(write_end))
            .stderr(Stdio::from(write_err));
        // Own process group: a signal aimed at the caller's group (Ctrl-C) is not forwarded
        // blindly, and ProcessGroup mode can kill exactly the shell's group.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn()?;
        drop(command); // closes our copies of the pipe's write end
        let stdin = child.stdin.take();
        Ok(Shell {
            child,
            stdin,
            stdout: File::from(read_end),
            kill_mode,
            carry: Vec::new(),
        })
    }

    /// The host pid of the spawned process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs one command. `Err` only when the command could not be written to the shell
    /// (the shell is gone); the caller restarts it.
    pub fn run(
        &mut self,
        command: &str,
        timeout: Duration,
        cap: usize,
        state_file: &str,
    ) -> std::io::Result<RunResult> {
        let started = Instant::now();
        let mut out = OutputCap::new(cap);
        self.drain_ready(&mut out)?;
        let end = self.exchange(command, started + timeout, state_file, &mut out)?;
        if matches!(end, RunEnd::TimedOut) {
            // Kill first, then keep what the command printed before it died.
            self.kill_and_wait();
            self.drain_after_kill(&mut out, Duration::from_millis(200));
        }
        Ok(RunResult {
            output: out.finish(),
            end,
        })
    }

    /// Writes `command` framed with a fresh nonce and reads its output into `out` until the
    /// end marker, the shell's exit or `deadline`; bytes the marker scanner held back are kept
    /// when the command did not complete.
    fn exchange(
        &mut self,
        command: &str,
        deadline: Instant,
        state_file: &str,
        out: &mut OutputCap,
    ) -> std::io::Result<RunEnd> {
        let nonce = Nonce::random()?;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("shell stdin already closed"))?;
        stdin.write_all(frame_command(&nonce, command, state_file).as_bytes())?;
        stdin.flush()?;
        let mut scanner = MarkerScanner::new(&nonce);
        let end = self.read_until_marker(&mut scanner, out, deadline)?;
        if !matches!(end, RunEnd::Completed { .. }) {
            scanner.flush(&mut |b| out.feed(b));
        }
        Ok(end)
    }

    /// Runs a new shell's first command and says whether the shell is ready, dead (with its
    /// exit status and output) or silent past `timeout` (with a description of where its
    /// processes are stuck; it is then killed). `Err` only when the command could not be
    /// written at all.
    pub fn handshake(
        &mut self,
        command: &str,
        timeout: Duration,
        state_file: &str,
    ) -> std::io::Result<Startup> {
        let started = Instant::now();
        let mut out = OutputCap::new(8192);
        let end = self.exchange(command, started + timeout, state_file, &mut out)?;
        Ok(match end {
            RunEnd::Completed { cwd, .. } => Startup::Ready { cwd },
            RunEnd::ShellExited => {
                let status = self.exit_status(Duration::from_secs(5));
                Startup::Exited {
                    status,
                    output: out.finish().text,
                }
            }
            RunEnd::TimedOut => {
                let tree = process_tree(self.child.id());
                self.kill_and_wait();
                self.drain_after_kill(&mut out, Duration::from_millis(200));
                Startup::NoAnswer {
                    tree,
                    output: out.finish().text,
                }
            }
        })
    }

    /// The spawned process's exit status in words, waiting up to `within` for it to exit.
    fn exit_status(&mut self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Ok(None) => {
                    return format!(
                        "still running {} s after closing its output",
                        within.as_secs()
                    )
                }
                Err(e) => return format!("unknown ({e})"),
            }
        }
    }

    fn read_until_marker(
        &mut self,
        scanner: &mut MarkerScanner,
        out: &mut OutputCap,
        deadline: Instant,
    ) -> std::io::Result<RunEnd> {
        let mut buf = vec![0u8; 65_536];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(RunEnd::TimedOut);
            }
            if !self.wait_readable(deadline - now)? {
                continue;
            }
            let n = read_retrying(&mut self.stdout, &mut buf)?;
            if n == 0 {
                return Ok(RunEnd::ShellExited);
            }
            if let Some(done) = scanner.push(&buf[..n], &mut |b| out.feed(b)) {
                self.carry = done.leftover;
                return Ok(RunEnd::Completed {
                    exit_code: done.exit_code,
                    cwd: done.cwd,
                });
            }
        }
    }

    /// Feeds output that is already waiting (and last command's leftover) into `out`.
    fn drain_ready(&mut self, out: &mut OutputCap) -> std::io::Result<()> {
        out.feed(&std::mem::take(&mut self.carry));
        let mut buf = vec![0u8; 65_536];
        // Bounded: a background job printing without end (`yes &`) must not starve the
        // command; what it prints later is read together with the command's output.
        let until = Instant::now() + Duration::from_millis(20);
        while Instant::now() < until && self.wait_readable(Duration::ZERO)? {
            let n = read_retrying(&mut self.stdout, &mut buf)?;
            if n == 0 {
                break;
            }
            out.feed(&buf[..n]);
        }
        Ok(())
    }

    fn wait_readable(&self, within: Duration) -> std::io::Result<bool> {
        let ms = within.as_millis().min(i32::MAX as u128) as i32;
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.stdout.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads what is left in the pipe after the shell's processes were killed (bounded).
    fn drain_after_kill(&mut self, out: &mut OutputCap, within: Duration) {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 65_536];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.wait_readable(left) {
                Ok(true) => match read_retrying(&mut self.stdout, &mut buf) {
                    Ok(n) if n > 0 => out.feed(&buf[..n]),
                    _ => return,
                },
                _ => return,
            }
        }
    }

    /// Kills every process of the shell and reaps the spawned process; returns its exit code
    /// when it had already exited on its own.
    pub fn kill_and_wait(&mut self) -> Option<i32> {
        self.stdin = None;
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.code();
        }
        match self.kill_mode {
            KillMode::ProcessGroup => {
                let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            }
            KillMode::PidNamespace => self.kill_pid_namespace(),
        }
        self.child.wait().ok().and_then(|s| s.code())
    }

    /// Waits for the shell to exit by itself (after it closed its output); returns its code.
    pub fn wait_exited(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().or(Some(137));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    fn kill_pid_namespace(&mut self) {
        let monitor = self.child.id();
        match pid_namespace_init(monitor) {
            // The monitor exits by itself once its child is gone, and reaps it: no orphan
            // is left for the host's init to reap.
            Some(init) => {
                let _ = kill(Pid::from_raw(init as i32), Signal::SIGKILL);
                if self.wait_exited(Duration::from_secs(5)).is_some() {
                    return;
                }
                let _ = kill(Pid::from_raw(monitor as i32), Signal::SIGKILL);
            }
            None => {
                let _ = kill(Pid::from_raw(monitor as i32), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.kill_and_wait();
    }
}

/// The first child of `monitor` (bubblewrap's PID-namespace init), from /proc.
pub(crate) fn pid_namespace_init(monitor: u32) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{monitor}/task/{monitor}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// `root` and its descendants, depth first, as `pid comm state wchan` joined by ` > ` (a
/// child) and `, ` (a sibling's subtree): where a launch that does not answer is stuck.
pub(crate) fn process_tree(root: u32) -> String {
    fn describe(pid: u32, depth: usize, out: &mut Vec<String>) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let comm = match (stat.find('('), stat.rfind(')')) {
            (Some(a), Some(b)) if a < b => &stat[a + 1..b],
            _ => "?",
        };
        let state = stat
            .rfind(')')
            .and_then(|b| stat[b + 1..].split_whitespace().next())
            .unwrap_or("gone");
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        let wchan = if wchan.is_empty() || wchan == "0" {
            String::new()
        } else {
            format!(" in {wchan}")
        };
        out.push(format!("{pid} {comm} {state}{wchan}"));
        if depth >= 16 {
            return;
        }
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for (i, child) in children.split_whitespace().enumerate() {
            if let Ok(child) = child.parse() {
                out.push(if i == 0 { " > " } else { ", " }.to_string());
                describe(child, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    describe(root, 0, &mut out);
    out.concat()
}

fn read_retrying(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain bash (no sandbox) is enough to test the protocol itself.
    fn plain_shell(dir: &std::path::Path) -> Shell {
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc"])
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        Shell::spawn(cmd, KillMode::ProcessGroup).expect("spawn bash")
    }

    fn run(shell: &mut Shell, dir: &std::path::Path, cmd: &str) -> RunResult {
        let state = dir.join("state").to_string_lossy().into_owned();
        shell
            .run(cmd, Duration::from_secs(10), 10_000, &state)
            .expect("run")
    }

    fn completed(r: &RunResult) -> (i32, String) {
        match &r.end {
            RunEnd::Completed { exit_code, cwd } => (*exit_code, cwd.clone()),
            other => panic!("not completed: {other:?}"),
        }
    }

    #[test]
    fn cd_and_export_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        run(&mut sh, dir.path(), "mkdir sub && cd sub && export FOO=bar");
        let r = run(&mut sh, dir.path(), "echo $FOO; pwd");
        let (code, cwd) = completed(&r);
        assert_eq!(code, 0);
        assert!(cwd.ends_with("/sub"), "{cwd}");
        assert_eq!(r.output.text, format!("bar\n{cwd}\n"));
    }

    #[test]
    fn exit_codes_and_stderr_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        let r = run(&mut sh, dir.path(), "echo out; echo err >&2; (exit 42)");
        assert_eq!(completed(&r).0, 42);
        assert_eq!(r.output.text, "out\nerr\n");
        let r = run(&mut sh, dir.path(), "true");
        assert_eq!(completed(&r).0, 0);
        assert_eq!(r.output.text, "");
    }

    #[test]
    fn spoofed_marker_and_missing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        let r = run(
            &mut sh,
            dir.path(),
            "printf '\\n__swerl_0123 0 / __swerl_0123\\nno newline'",
        );
        assert_eq!(completed(&r).0, 0);
        assert_eq!(r.output.text, "\n__swerl_0123 0 / __swerl_0123\nno newline");
    }

    #[test]
    fn non_utf8_output_is_decoded_lossily() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        let r = run(&mut sh, dir.path(), "printf 'a\\377b\\n'");
        assert_eq!(r.output.text, "a\u{FFFD}b\n");
    }

    #[test]
    fn stdin_reader_sees_eof_and_shell_survives() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        let r = run(&mut sh, dir.path(), "cat; read x; echo read=$?");
        assert_eq!(r.output.text, "read=1\n");
        assert_eq!(completed(&run(&mut sh, dir.path(), "echo still here")).0, 0);
    }

    #[test]
    fn syntax_error_does_not_hang_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        let r = run(&mut sh, dir.path(), "echo 'unclosed");
        assert_eq!(completed(&r).0, 2);
        assert!(
            r.output.text.contains("unexpected EOF"),
            "{}",
            r.output.text
        );
        assert_eq!(
            run(&mut sh, dir.path(), "if true; then echo ok; fi")
                .output
                .text,
            "ok\n"
        );
    }

    #[test]
    fn heredoc_and_multiline_commands_run_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        let r = run(
            &mut sh,
            dir.path(),
            "cat <<'EOF'\n  indented $HOME\nEOF\nfor i in 1 2; do\n echo $i\ndone",
        );
        assert_eq!(r.output.text, "  indented $HOME\n1\n2\n");
    }

    /// Regression: with `set -e` the framing's own `read` (status 1 at end of input) used to
    /// kill the shell before every later command.
    #[test]
    fn set_e_does_not_kill_the_shell_on_later_commands() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        let r = run(&mut sh, dir.path(), "set -e");
        assert_eq!(completed(&r).0, 0);
        let r = run(&mut sh, dir.path(), "echo still here");
        assert_eq!(completed(&r).0, 0);
        assert_eq!(r.output.text, "still here\n");
    }

    #[test]
    fn exit_is_seen_as_shell_death() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        let r = run(&mut sh, dir.path(), "echo bye; exit 7");
        assert!(matches!(r.end, RunEnd::ShellExited));
        assert_eq!(r.output.text, "bye\n");
        assert_eq!(sh.wait_exited(Duration::from_secs(5)), Some(7));
    }

    #[test]
    fn timeout_is_reported_and_kill_stops_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        let state = dir.path().join("state").to_string_lossy().into_owned();
        let r = sh
            .run(
                "echo start; sleep 30",
                Duration::from_millis(300),
                1000,
                &state,
            )
            .unwrap();
        assert!(matches!(r.end, RunEnd::TimedOut));
        assert_eq!(r.output.text, "start\n");
        let started = Instant::now();
        sh.kill_and_wait();
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn endless_background_output_does_not_block_commands() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        run(&mut sh, dir.path(), "yes >&2 &");
        // Before the drain was time-bounded this command never got to run. (Its own output
        // may be truncated away among the flood, so check its effect.)
        let r = run(&mut sh, dir.path(), "echo mine > mine.txt");
        assert_eq!(completed(&r).0, 0);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("mine.txt")).unwrap(),
            "mine\n"
        );
    }

    #[test]
    fn late_background_output_is_shown_with_the_next_command() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = plain_shell(dir.path());
        run(&mut sh, dir.path(), "(sleep 0.2; echo late) &");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            run(&mut sh, dir.path(), "echo now").output.text,
            "late\nnow\n"
        );
    }
}
