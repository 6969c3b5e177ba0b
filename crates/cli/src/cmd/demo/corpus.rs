//! The demo's tokenizer: a Qwen2-style byte-level BPE trained with the `tokenizers` trainer
//! on the bundled corpus, i.e. everything the agent will read or write: the repositories'
//! files, the issues in their first-message form, the system prompt, the scripted commands in
//! their turn form, and the observation prompt line.
//!
//! Training on exactly this text keeps sequences short (the system prompt alone is ~1.5k
//! tokens under the 1k-vocabulary test fixture), which is what makes the pipeline fit a
//! 2-core machine. Held-out tasks' repositories and issues are part of the corpus: a
//! tokenizer sees text, not solutions, just as a real model's tokenizer has seen GitHub.

use std::path::{Path, PathBuf};

use anyhow::Context;
use swerl_env::task::Task;
use swerl_model::chat::QWEN2_5_CHAT_TEMPLATE;
use swerl_model::tokenizer::{train_bpe, BpeTrainingOptions, Tokenizer};

use super::plan::TokenizerPlan;

/// Files larger than this are not text a repository of the corpus should hold; skip them.
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// The documents of the corpus: one string per file, issue, prompt or turn.
pub fn documents(tasks: &[Task], repos: &Path, window_lines: usize) -> anyhow::Result<Vec<String>> {
    let mut docs = vec![swerl_agent::prompts::system_prompt(window_lines)];
    for task in tasks {
        docs.push(swerl_agent::prompts::issue_message(&task.problem_statement));
        let commands = swerl_rollout::demo_commands(task).unwrap_or_default();
        for (i, c) in commands.iter().enumerate() {
            docs.push(swerl_agent::scripted::wrap_command(i + 1, c));
        }
    }
    docs.push("(Current directory: /testbed, current file: none) bash-$".into());
    let mut files = Vec::new();
    collect_files(repos, &mut files)
        .with_context(|| format!("reading the bundled repositories in {}", repos.display()))?;
    files.sort();
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f) {
            docs.push(text);
        }
    }
    Ok(docs)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if kind.is_dir() && !hidden && entry.file_name() != "__pycache__" {
            collect_files(&path, out)?;
        } else if kind.is_file() && entry.metadata()?.len() <= MAX_FILE_BYTES {
            out.push(path);
        }
    }
    Ok(())
}

/// Trains the tokenizer on `docs` with the Qwen2.5 chat template (ChatML turns).
pub fn train(docs: &[String], plan: &TokenizerPlan) -> anyhow::Result<Tokenizer> {
    let options = BpeTrainingOptions {
        vocab_size: plan.vocab_size,
        min_frequency: plan.min_frequency,
        chat_template: Some(QWEN2_5_CHAT_TEMPLATE.to_string()),
    };
    Ok(train_bpe(docs.iter(), &options)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled() -> (Vec<Task>, PathBuf) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tasks/bundled");
        let tasks = swerl_env::task::load_tasks(&root.join("tasks.jsonl"))
            .unwrap()
            .tasks;
        (tasks, root.join("repos"))
    }

    #[test]
    fn corpus_holds_prompt_issues_turns_and_files() {
        let (tasks, repos) = bundled();
        let docs = documents(&tasks, &repos, 100).unwrap();
        assert_eq!(docs[0], swerl_agent::prompts::SYSTEM_PROMPT);
        assert!(docs.iter().any(|d| d.contains("<issue>")));
        assert!(docs.iter().any(|d| d.contains("```command\nsubmit\n```")));
        assert!(
            docs.iter().any(|d| d.contains("def ")),
            "no source file read"
        );
    }

    /// The trained tokenizer round-trips the corpus and compresses the system prompt well
    /// below the byte count (the point of training it on this corpus).
    #[test]
    fn trained_tokenizer_round_trips_and_compresses() {
        let (tasks, repos) = bundled();
        let docs = documents(&tasks[..3], &repos, 100).unwrap();
        let plan = TokenizerPlan {
            vocab_size: 1_024,
            min_frequency: 2,
        };
        let tok = train(&docs, &plan).unwrap();
        let prompt = swerl_agent::prompts::SYSTEM_PROMPT;
        let ids = tok.encode(prompt).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), prompt);
        // More than two bytes per token even with a 1k vocabulary learned from three tasks.
        assert!(
            ids.len() * 2 < prompt.len(),
            "{} ids for {} bytes",
            ids.len(),
            prompt.len()
        );
        assert!(tok.token_id("<|im_end|>").is_some());
    }
}
