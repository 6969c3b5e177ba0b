//! The texts the agent reads: the system prompt, the issue template, and the observations
//! that answer a malformed turn. Written for this project (docs/method.md section 3).

use crate::FormatError;

/// The system prompt with SWE-agent's 100-line file window: tools and their syntax, the
/// response format, the rules, advice. [`system_prompt`] gives it for other window sizes.
pub const SYSTEM_PROMPT: &str = r#"You are an autonomous software engineer working in a shell inside a code repository. Your job is to resolve the issue you are given by editing the repository's source code.

TOOLS
Besides any non-interactive shell command (no editors, no pagers, nothing that waits for input), you can use:
  open [FILE] [LINE]       show FILE in a window of 100 lines, around LINE; without FILE, reshow the open file
  goto LINE                move the window of the open file to LINE
  scroll_up / scroll_down  move the window up or down by one window
  create FILE              create an empty FILE and open it
  edit [--file PATH] START:END << 'EOF'
  <replacement lines>
  EOF
                           replace lines START to END (inclusive, 1-based) of the open file (or PATH)
                           with the lines up to EOF; the text is used verbatim, so indentation must be exact
  replace [--replace-all] SEARCH REPLACE
                           replace SEARCH with REPLACE in the open file (once, or everywhere)
  search_file TERM [FILE]  find TERM in the open file (or FILE)
  search_dir TERM [DIR]    find TERM in the files under DIR (default: the current directory)
  find_file NAME [DIR]     find files called NAME under DIR
  submit                   finish: your answer is the `git diff` of the working tree

RESPONSE FORMAT
Every reply has two parts: first your reasoning in free text, then exactly ONE command in a fenced block opened with ```command and closed with ```. For example:

The traceback points at the parser, so I will look at it first.

```command
open src/parser.py 120
```

A reply without such a block, or with more than one, is not run and still costs a turn. Do not put other text after the block. Blocks in other languages (```python ...) are ignored.

RULES
- Do not modify existing tests; the issue is checked by tests you cannot see.
- Remove any temporary scripts or files you created before you submit.
- Run `submit` when you are done; only the working-tree diff counts.

ADVICE
- First reproduce the issue with a small script and run it.
- Then find the cause and fix it in the source code, keeping the change minimal.
- Rerun your script to confirm the fix, and think about edge cases.
"#;

/// The file window's size as [`SYSTEM_PROMPT`] states it.
pub const DEFAULT_WINDOW_LINES: usize = 100;

/// The system prompt for an environment whose file window shows `window_lines` lines (the
/// prompt must say what the tools really do).
pub fn system_prompt(window_lines: usize) -> String {
    if window_lines == DEFAULT_WINDOW_LINES {
        return SYSTEM_PROMPT.to_string();
    }
    SYSTEM_PROMPT.replacen(
        "in a window of 100 lines",
        &format!("in a window of {window_lines} lines"),
        1,
    )
}

/// The first user message: the issue and what to do with it.
pub fn issue_message(problem_statement: &str) -> String {
    format!(
        "We need to resolve the following issue in the repository in the current directory.\n\n\
         <issue>\n{}\n</issue>\n\n\
         Work on it on your own, one command per reply, in the response format described \
         above. Reproduce the issue first, then fix it, rerun your reproduction, remove \
         temporary files, and run `submit` when you are done.",
        problem_statement.trim_end()
    )
}

/// Text answering a turn without a runnable command. It carries no prompt line: the
/// scaffold does not know the environment's directory or open file, and nothing changed
/// since the previous observation's prompt line. Exact, because the model learns them:
/// - no command: "No command found. Your reply must end with exactly one block opened with
///   ```command and closed with ```; it was not run and still counted as a turn."
/// - multiple: "Multiple commands found. Your reply must contain exactly one ```command
///   block; none of them was run and the reply still counted as a turn."
pub fn format_error_observation(error: FormatError) -> &'static str {
    match error {
        FormatError::NoCommand => {
            "No command found. Your reply must end with exactly one block opened with \
             ```command and closed with ```; it was not run and still counted as a turn."
        }
        FormatError::MultipleCommands => {
            "Multiple commands found. Your reply must contain exactly one ```command block; \
             none of them was run and the reply still counted as a turn."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_action;

    #[test]
    fn the_example_in_the_system_prompt_parses() {
        let example = SYSTEM_PROMPT.split("For example:").nth(1).unwrap();
        let example = example.split("A reply without").next().unwrap();
        assert_eq!(parse_action(example).unwrap(), "open src/parser.py 120");
    }

    #[test]
    fn the_system_prompt_names_every_tool_and_rule() {
        for word in [
            "open",
            "goto",
            "scroll_up",
            "scroll_down",
            "create",
            "edit",
            "<< 'EOF'",
            "replace",
            "search_file",
            "search_dir",
            "find_file",
            "submit",
            "Do not modify existing tests",
            "temporary",
            "reproduce",
        ] {
            assert!(SYSTEM_PROMPT.contains(word), "missing {word}");
        }
    }

    #[test]
    fn the_issue_is_embedded_verbatim() {
        let msg = issue_message("Crash when x = 0\n\n  details\n");
        assert!(msg.contains("<issue>\nCrash when x = 0\n\n  details\n</issue>"));
    }

    #[test]
    fn format_error_texts_name_the_problem() {
        assert!(format_error_observation(FormatError::NoCommand).starts_with("No command found"));
        let multiple = format_error_observation(FormatError::MultipleCommands);
        assert!(multiple.starts_with("Multiple commands found"));
    }

    #[test]
    fn system_prompt_states_the_window_size() {
        assert_eq!(system_prompt(DEFAULT_WINDOW_LINES), SYSTEM_PROMPT);
        let p = system_prompt(30);
        assert!(p.contains("in a window of 30 lines"), "{p}");
        assert!(!p.contains("100 lines"));
        assert_eq!(p.len(), SYSTEM_PROMPT.len() - 1);
    }
}
