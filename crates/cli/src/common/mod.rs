//! What several subcommands share: argument groups (tasks, engine), file writing, and
//! parallel work with progress. Subcommands live in `cmd/`, one module each; nothing here
//! is a subcommand.

pub mod engine;
pub mod files;
pub mod lora;
pub mod par;
pub mod tasks;

pub use engine::EngineArgs;
pub use files::{write_atomic, write_json};
pub use par::{par_map, progress_bar};
pub use tasks::{bundled_repos, TaskArgs, ENV_HELP};
