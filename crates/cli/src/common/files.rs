//! Writing the files a run leaves behind: whole files appear atomically (temp file, fsync,
//! rename), so a crash never leaves a half-written report or config.

use anyhow::Context;
use serde::Serialize;
use std::path::Path;

/// Writes `bytes` to `path` (its folder made if missing) through a synced temporary file and
/// a rename, so a crash never leaves a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    swerl_train::checkpoint::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes a JSON value (pretty, newline-terminated) to `path` atomically, creating its folder.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    write_atomic(path, text.as_bytes())
}
