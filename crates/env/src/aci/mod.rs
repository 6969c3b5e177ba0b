//! The agent-computer interface (ACI): the SWE-agent style tools of docs/method.md section 3,
//! run against a [`Sandbox`]. Everything here is part of the model's interface: changing a
//! format below changes what the policy is trained on, so every format is written down here
//! and pinned by a unit test.
//!
//! # Commands
//! The first whitespace-separated word picks the tool; any other text runs unchanged as one
//! shell command in the sandbox's persistent shell (`cd` and variables persist).
//!
//! Tool arguments are split like shell words: whitespace separates words; `'...'` is
//! literal; inside `"..."` a backslash escapes only `"`, `\`, `$` and a backtick; an unquoted
//! backslash escapes the next character; quotes may span lines. `<< 'EOF'` (also `<<EOF`,
//! `<< "EOF"`, any delimiter word) is a heredoc: after the command line, the lines up to one
//! that is exactly the delimiter (trailing whitespace ignored) are its text, verbatim; several
//! heredocs are read in order. `<<-` is refused (it would strip tabs), a heredoc without its
//! terminator is an error, and so is any text after the last terminator (one command per
//! action). Shell operators (`|`, `;`, `>`) mean nothing in a tool command.
//!
//! | command | effect |
//! |---|---|
//! | `open [FILE] [LINE]` | show FILE (default: the open file) in a window of `window_lines` lines, centred on LINE |
//! | `goto LINE` | centre the window of the open file on LINE |
//! | `scroll_down` / `scroll_up` | move the window by one window height (clamped at the ends) |
//! | `create FILE` | create an empty FILE (and missing parent directories) and open it |
//! | `edit [--file PATH] START:END` + heredoc | replace lines START..=END with the heredoc's text |
//! | `replace [--replace-all] SEARCH REPLACE` | replace text in the open file |
//! | `search_file TERM [FILE]` | lines of FILE (default: the open file) containing TERM |
//! | `search_dir TERM [DIR]` | files under DIR (default: cwd) containing TERM, with counts |
//! | `find_file NAME [DIR]` | files under DIR (default: cwd) whose name matches the glob NAME |
//! | `submit` | end the episode; the submission is [`crate::episode::SweEpisode`]'s diff |
//!
//! Relative paths are relative to the shell's current directory (as last reported by the
//! sandbox); every path shown is absolute and lexically normalised (`.`/`..` removed).
//! TERM matching is literal (not a regex) and case-sensitive; `.git` is never searched.
//!
//! ## The window
//! `open FILE` shows the first `window_lines` lines (re-opening the open file keeps its
//! window). `open FILE LINE` and `goto LINE` centre on LINE: the window starts at
//! `LINE - window_lines/2`, moved so it stays within the file; a LINE past the end is an error.
//! `scroll_down`/`scroll_up` move by one window height; the last window ends at the last line.
//! After `edit`/`replace` the window shows the new text with equal context above and below
//! (when it fits). The file is re-read for every window, so shell changes show at once.
//!
//! ## Tool scripts in the agent's shell
//! `create`, `search_dir`, `find_file`, and a failed file read (to tell a missing file from a
//! directory) run short scripts in the agent's persistent shell: they use `command grep`
//! etc. so shell functions or aliases the agent defined do not interfere, never change its
//! directory, but do change `$?`. Opening, editing and `search_file` on an existing file run
//! no shell command at all (they use `Sandbox::read_file`/`write_file`).
//!
//! ## `edit`
//! `edit 12:14 << 'EOF'` then the new lines then `EOF` replaces lines 12 to 14 (1-based,
//! inclusive) with the text, byte for byte (tabs, trailing spaces kept). For compatibility
//! with SWE-agent, `edit 12:14` followed by the new lines and a line `end_of_edit` works too.
//! - An empty text deletes the lines. `START:START-1` (e.g. `5:4`) inserts before START
//!   without replacing anything; `N+1:N` appends to an N-line file.
//! - START must be between 1 and N+1; END below START-1 is an error; END past the last line
//!   is clamped to it (so `edit 1:1` fills an empty file and `edit 40:9999` replaces to the end).
//! - New lines take the file's dominant line ending (CRLF files stay CRLF); a file that had
//!   no final newline still has none; untouched lines keep every byte, even invalid UTF-8.
//! - `--file PATH` edits PATH instead of the open file; PATH becomes the open file.
//!
//! ## `replace`
//! SEARCH and REPLACE are shell-like words (quote them; quotes may span lines) or heredocs
//! (`replace << 'OLD' << 'NEW'`, bodies in order; one final newline of each body is dropped so
//! a one-line heredoc means that line's text without its newline). Matching is exact, on bytes;
//! in a CRLF file `\n` in both texts means `\r\n`. Without `--replace-all` SEARCH must occur
//! exactly once.
//!
//! # Observation formats
//! Every observation is the tool's output (or `Error: ...`), then one line, the prompt:
//! ```text
//! (Current directory: /testbed, current file: /testbed/pkg/mod.py) bash-$
//! ```
//! with `current file: none` when no file is open. Tool outputs:
//! - window (open, goto, scroll_*, create, and after edit/replace):
//!   ```text
//!   [File: /testbed/pkg/mod.py (240 lines total)]
//!   (20 more lines above)
//!   21:def f(x):
//!   22:    return x
//!   (218 more lines below)
//!   ```
//!   The `above`/`below` lines appear only when non-zero; an empty file shows
//!   `(this file is empty)`; a file that is not valid UTF-8 gets the line
//!   `(this file is not valid UTF-8; invalid bytes are shown as U+FFFD)` after the header.
//!   Scrolling past an end prefixes the window with `Already at the top of the file.` or
//!   `Already at the bottom of the file.`
//! - edit: the line [`EDIT_DONE`], then the window around the new lines. replace:
//!   `Replaced N occurrence(s).`, then [`EDIT_DONE`], then the window at the first one.
//! - search_file: `Found K matching lines for "TERM" in /path:` then `LINE:text` per line, or
//!   `No matches for "TERM" in /path`.
//! - search_dir: `Found K matching lines in F files for "TERM" in /dir:` then `/path (K matching
//!   lines)` per file, or `No matches for "TERM" in /dir`.
//! - find_file: `Found F files named "NAME" in /dir:` then one path per line, or
//!   `No files named "NAME" in /dir`.
//! - counts agree with their noun: `1 matching line`, `1 file`, `2 files`.
//! - lists longer than their cap end with `(N more matching lines|files not shown; narrow the
//!   search)`; when
//!   the sandbox's output cap cut a `search_dir`/`find_file` listing, it ends with
//!   `(the listing was cut off by the output limit, so counts are incomplete; narrow the search)`.
//! - submit: `Submitted.`
//! - shell commands: the sandbox's output verbatim, including the sandbox's own truncation
//!   and timeout markers (the `Sandbox` contract requires a timeout to say so in the output;
//!   the local backend writes `[command timed out after S s; ...]`); an empty output is shown
//!   as `(no output, exit code C)`. Commands run with [`AciConfig::command_timeout`].
//! - errors: one line starting `Error: `, sometimes followed by `Usage: ...`.

mod command;
mod edit;
mod files;
mod search;
mod text;
mod window;

#[cfg(test)]
pub(crate) mod fake;

use std::time::Duration;

use swerl_sandbox::{ExecOutput, Sandbox, SandboxError};

pub use window::OpenFile;

/// The first line of the answer to a successful `edit` or `replace`.
pub const EDIT_DONE: &str =
    "File updated. Please review the changes and make sure they are correct \
(correct indentation, no duplicate lines, etc). Edit the file again if necessary.";

/// Tool settings; defaults follow SWE-agent where the paper is silent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AciConfig {
    /// Lines shown by the file window (SWE-agent: 100).
    pub window_lines: usize,
    /// Wall-clock limit for each command, shell or tool-internal.
    #[serde(with = "secs")]
    pub command_timeout: Duration,
    /// Matching lines listed by `search_file` before the rest is summarised.
    pub max_search_lines: usize,
    /// Files listed by `search_dir` and `find_file` before the rest is summarised.
    pub max_search_files: usize,
}

impl Default for AciConfig {
    fn default() -> Self {
        AciConfig {
            window_lines: 100,
            command_timeout: Duration::from_secs(120),
            max_search_lines: 100,
            max_search_files: 100,
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

/// An infrastructure failure while running a tool: the sandbox itself failed. Anything the
/// agent did wrong is an `Error: ...` observation instead.
#[derive(Debug, thiserror::Error)]
#[error("ACI command could not run: {0}")]
pub struct AciError(#[from] pub SandboxError);

/// The answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Output (or error) and the prompt line.
    pub observation: String,
    /// True when the command was `submit`.
    pub submitted: bool,
}

/// Inside tools: an agent mistake (shown as `Error: ...`) or an infrastructure failure.
#[derive(Debug)]
pub(crate) enum Fail {
    Agent(String),
    Infra(SandboxError),
}

impl From<SandboxError> for Fail {
    fn from(e: SandboxError) -> Self {
        Fail::Infra(e)
    }
}

/// Shorthand for an agent-mistake result.
pub(crate) fn agent_err<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Agent(msg.into()))
}

/// The tools, by the name the model types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Open,
    Goto,
    ScrollUp,
    ScrollDown,
    Create,
    Edit,
    Replace,
    SearchFile,
    SearchDir,
    FindFile,
    Submit,
}

impl Tool {
    fn from_name(name: &str) -> Option<Tool> {
        Some(match name {
            "open" => Tool::Open,
            "goto" => Tool::Goto,
            "scroll_up" => Tool::ScrollUp,
            "scroll_down" => Tool::ScrollDown,
            "create" => Tool::Create,
            "edit" => Tool::Edit,
            "replace" => Tool::Replace,
            "search_file" => Tool::SearchFile,
            "search_dir" => Tool::SearchDir,
            "find_file" => Tool::FindFile,
            "submit" => Tool::Submit,
            _ => return None,
        })
    }

    fn usage(self) -> &'static str {
        match self {
            Tool::Open => "open [FILE] [LINE]",
            Tool::Goto => "goto LINE",
            Tool::ScrollUp => "scroll_up",
            Tool::ScrollDown => "scroll_down",
            Tool::Create => "create FILE",
            Tool::Edit => "edit [--file PATH] START:END << 'EOF'\n<new lines>\nEOF",
            Tool::Replace => "replace [--replace-all] SEARCH REPLACE",
            Tool::SearchFile => "search_file TERM [FILE]",
            Tool::SearchDir => "search_dir TERM [DIR]",
            Tool::FindFile => "find_file NAME [DIR]",
            Tool::Submit => "submit",
        }
    }
}

/// Per-episode tool state (current directory, open file, window) and settings.
#[derive(Debug, Clone)]
pub struct Aci {
    config: AciConfig,
    cwd: String,
    open: Option<OpenFile>,
}

impl Aci {
    /// Fresh state for a shell that starts in `workdir`.
    pub fn new(config: AciConfig, workdir: &str) -> Aci {
        Aci {
            config,
            cwd: workdir.to_string(),
            open: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AciConfig {
        &self.config
    }

    /// The shell's working directory as last reported by the sandbox.
    pub fn cwd(&self) -> &str {
        &self.cwd
    }

    /// The open file (absolute path) and the first line of its window.
    pub fn open_file(&self) -> Option<&OpenFile> {
        self.open.as_ref()
    }

    /// `(Current directory: <dir>, current file: <file or none>) bash-$`
    pub fn prompt_line(&self) -> String {
        let file = self.open.as_ref().map_or("none", |o| o.path.as_str());
        format!(
            "(Current directory: {}, current file: {file}) bash-$",
            self.cwd
        )
    }

    /// Runs one command (tool or shell) and answers with its observation.
    pub fn run(&mut self, sb: &mut dyn Sandbox, command: &str) -> Result<Outcome, AciError> {
        let (body, submitted) = match self.dispatch(sb, command) {
            Ok(answer) => answer,
            Err(Fail::Agent(msg)) => (format!("Error: {msg}"), false),
            Err(Fail::Infra(e)) => return Err(AciError(e)),
        };
        Ok(Outcome {
            observation: self.observation(&body),
            submitted,
        })
    }

    fn observation(&self, body: &str) -> String {
        let body = body.strip_suffix('\n').unwrap_or(body);
        if body.is_empty() {
            self.prompt_line()
        } else {
            format!("{body}\n{}", self.prompt_line())
        }
    }

    fn dispatch(&mut self, sb: &mut dyn Sandbox, command: &str) -> Result<(String, bool), Fail> {
        let trimmed = command.trim_start();
        if trimmed.trim().is_empty() {
            return agent_err("empty command; send a tool call or a shell command");
        }
        let name = trimmed
            .split(char::is_whitespace)
            .next()
            .unwrap_or_default();
        let Some(tool) = Tool::from_name(name) else {
            return Ok((self.shell(sb, command)?, false));
        };
        let parsed = command::parse(trimmed).map_err(|m| usage_fail(tool, &m))?;
        let args = &parsed.words[1..];
        let body = match tool {
            Tool::Open => self.open_tool(sb, &plain_args(tool, args, 0, 2)?)?,
            Tool::Goto => self.goto_tool(sb, &plain_args(tool, args, 1, 1)?)?,
            Tool::ScrollUp => {
                plain_args(tool, args, 0, 0)?;
                self.scroll_tool(sb, false)?
            }
            Tool::ScrollDown => {
                plain_args(tool, args, 0, 0)?;
                self.scroll_tool(sb, true)?
            }
            Tool::Create => self.create_tool(sb, &plain_args(tool, args, 1, 1)?)?,
            Tool::Edit => self.edit_tool(sb, args, &parsed.rest)?,
            Tool::Replace => self.replace_tool(sb, args)?,
            Tool::SearchFile => self.search_file_tool(sb, &plain_args(tool, args, 1, 2)?)?,
            Tool::SearchDir => self.search_dir_tool(sb, &plain_args(tool, args, 1, 2)?)?,
            Tool::FindFile => self.find_file_tool(sb, &plain_args(tool, args, 1, 2)?)?,
            Tool::Submit => {
                plain_args(tool, args, 0, 0)?;
                return Ok(("Submitted.".to_string(), true));
            }
        };
        Ok((body, false))
    }

    /// Runs `command` in the persistent shell with the configured timeout and records the
    /// directory the shell reports afterwards.
    pub(crate) fn exec(
        &mut self,
        sb: &mut dyn Sandbox,
        command: &str,
    ) -> Result<ExecOutput, SandboxError> {
        let out = sb.exec(command, Some(self.config.command_timeout))?;
        if !out.cwd.is_empty() {
            self.cwd = out.cwd.clone();
        }
        Ok(out)
    }

    /// A shell command's answer: the sandbox's output verbatim. Timeouts and truncation
    /// are not re-announced here because the `Sandbox` contract already puts its marker in
    /// the output; an empty output becomes `(no output, exit code C)` so the model can tell
    /// a silent success from a silent failure.
    fn shell(&mut self, sb: &mut dyn Sandbox, command: &str) -> Result<String, Fail> {
        let out = self.exec(sb, command)?;
        if out.output.trim().is_empty() && !out.timed_out {
            let code = out.exit_code.map_or("none".to_string(), |c| c.to_string());
            return Ok(format!("(no output, exit code {code})"));
        }
        Ok(out.output)
    }
}

/// Checks that `words` are all plain (no heredoc) and between `min` and `max` in number.
fn plain_args(
    tool: Tool,
    words: &[command::Word],
    min: usize,
    max: usize,
) -> Result<Vec<String>, Fail> {
    let mut out = Vec::new();
    for w in words {
        match w {
            command::Word::Plain(s) => out.push(s.clone()),
            command::Word::Heredoc(_) => {
                return Err(usage_fail(
                    tool,
                    &format!("{} does not take a heredoc", tool_name(tool)),
                ))
            }
        }
    }
    if out.len() < min || out.len() > max {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        let msg = format!(
            "{} takes {want} argument(s), got {}",
            tool_name(tool),
            out.len()
        );
        return Err(usage_fail(tool, &msg));
    }
    Ok(out)
}

fn tool_name(tool: Tool) -> &'static str {
    tool.usage().split(' ').next().unwrap_or_default()
}

/// An agent error followed by the tool's usage line.
pub(crate) fn usage_fail_for(usage: &str, msg: &str) -> Fail {
    Fail::Agent(format!("{msg}\nUsage: {usage}"))
}

fn usage_fail(tool: Tool, msg: &str) -> Fail {
    usage_fail_for(tool.usage(), msg)
}

#[cfg(test)]
mod tests;
