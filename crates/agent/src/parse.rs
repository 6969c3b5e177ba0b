//! Taking the one command out of an assistant turn.
//!
//! The response format (docs/method.md section 3): free-text reasoning, then exactly one fenced
//! block opened with ```` ```command ```` and closed with a line of three backticks.
//! Decisions where the papers are silent:
//! - Fences are recognised only at the start of a line (leading spaces allowed), so
//!   backticks inside prose never open a block.
//! - Blocks with another info string (```` ```python ````, a bare ```` ``` ````) are ignored:
//!   the model may quote code or output in its reasoning. Only `command` blocks count.
//! - Inside a block, only a line that is exactly ```` ``` ```` (after trimming) closes it, so
//!   heredoc bodies may contain fences that carry an info string.
//! - A `command` block that is never closed (the turn was cut off) is not extractable: a
//!   half-written edit must not run. It is reported as [`FormatError::NoCommand`].
//! - An empty (whitespace-only) `command` block is also `NoCommand`.
//! - CRLF line endings are accepted; the command is returned with `\n` line endings and
//!   without leading or trailing blank lines.

pub use swerl_trajectory::FormatError;

/// The info string that marks the command block.
pub const COMMAND_INFO: &str = "command";

/// Returns the single command of `text`, or why there is none.
pub fn parse_action(text: &str) -> Result<String, FormatError> {
    let text = text.replace("\r\n", "\n");
    let blocks = fenced_blocks(&text);
    let mut commands = blocks
        .iter()
        .filter(|b| b.info == COMMAND_INFO && b.closed && !b.body.trim().is_empty());
    match (commands.next(), commands.next()) {
        (Some(block), None) => Ok(block.body.trim_matches('\n').to_string()),
        (Some(_), Some(_)) => Err(FormatError::MultipleCommands),
        (None, _) => Err(FormatError::NoCommand),
    }
}

/// One fenced block: its info string, its body, and whether a closing fence was seen.
#[derive(Debug, PartialEq)]
struct Block<'a> {
    info: &'a str,
    body: String,
    closed: bool,
}

/// Splits `text` (LF line endings) into its fenced blocks, in order.
fn fenced_blocks(text: &str) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut open: Option<Block<'_>> = None;
    for line in text.split('\n') {
        let trimmed = line.trim();
        match open.as_mut() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some(Block {
                        info: info.trim(),
                        body: String::new(),
                        closed: false,
                    });
                }
            }
            Some(block) if trimmed == "```" => {
                block.closed = true;
                blocks.extend(open.take());
            }
            Some(block) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
        }
    }
    blocks.extend(open);
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_block_after_reasoning_is_the_command() {
        let text = "I should look at the file first.\n\n```command\nopen src/lib.rs 10\n```\n";
        assert_eq!(parse_action(text).unwrap(), "open src/lib.rs 10");
    }

    #[test]
    fn no_block_is_no_command() {
        assert_eq!(
            parse_action("I think we are done."),
            Err(FormatError::NoCommand)
        );
        assert_eq!(parse_action(""), Err(FormatError::NoCommand));
    }

    #[test]
    fn two_command_blocks_are_multiple_commands() {
        let text = "```command\nls\n```\nand then\n```command\npwd\n```";
        assert_eq!(parse_action(text), Err(FormatError::MultipleCommands));
    }

    #[test]
    fn blocks_in_other_languages_are_ignored() {
        let text = "The bug:\n```python\nx = 1\n```\nOutput:\n```\nboom\n```\n\
                    Fix:\n```command\npython repro.py\n```";
        assert_eq!(parse_action(text).unwrap(), "python repro.py");
        assert_eq!(
            parse_action("```bash\nls\n```"),
            Err(FormatError::NoCommand)
        );
    }

    #[test]
    fn an_unterminated_command_block_is_not_run() {
        let text = "Editing:\n```command\nedit 1:3 << 'EOF'\ndef f():\n";
        assert_eq!(parse_action(text), Err(FormatError::NoCommand));
    }

    #[test]
    fn an_unterminated_block_after_a_complete_one_leaves_the_complete_one() {
        let text = "```command\nls\n```\nthen maybe\n```command\nrm -rf";
        assert_eq!(parse_action(text).unwrap(), "ls");
    }

    #[test]
    fn crlf_is_accepted_and_normalised() {
        let text = "Reason\r\n```command\r\necho a\r\necho b\r\n```\r\n";
        assert_eq!(parse_action(text).unwrap(), "echo a\necho b");
    }

    #[test]
    fn heredoc_bodies_keep_indentation_and_inner_fences_with_info() {
        let text = "```command\nedit 2:3 << 'EOF'\n    return x\n```python\nEOF\n```";
        assert_eq!(
            parse_action(text).unwrap(),
            "edit 2:3 << 'EOF'\n    return x\n```python\nEOF"
        );
    }

    #[test]
    fn an_empty_command_block_is_no_command() {
        assert_eq!(
            parse_action("```command\n   \n```"),
            Err(FormatError::NoCommand)
        );
    }

    #[test]
    fn an_empty_block_does_not_make_a_second_command() {
        let text = "```command\n\n```\n```command\nls\n```";
        assert_eq!(parse_action(text).unwrap(), "ls");
    }

    #[test]
    fn indented_fences_and_info_spacing_are_accepted() {
        assert_eq!(
            parse_action("  ```command  \n  ls -la\n  ```").unwrap(),
            "  ls -la"
        );
    }

    #[test]
    fn inline_backticks_in_prose_do_not_open_blocks() {
        let text = "Use ```command``` blocks, like:\n```command\nls\n```";
        assert_eq!(parse_action(text).unwrap(), "ls");
    }
}
