//! One module per subcommand; each exposes `Args` (clap) and `run(Args) -> Result<ExitCode>`.

pub mod bench;
pub mod demo;
pub mod eval;
pub mod grade;
pub mod model;
pub mod rft;
pub mod rl;
pub mod rollout;
pub mod serve;
pub mod train;
pub mod validate;

/// Writes `bytes` to `path` (its folder made if missing) through a synced temporary file and
/// a rename, so a crash never leaves a half-written file.
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    swerl_train::checkpoint::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Engine settings shared by every subcommand that runs the embedded engine.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// MiB of keys and values the embedded engine keeps so each turn runs only its new tokens
    /// (0 turns the prefix cache off).
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub prefix_cache_mib: usize,
}

impl EngineArgs {
    /// The engine configuration for batches of at most `max_batch` requests.
    pub fn config(&self, max_batch: usize) -> swerl_policy::EngineConfig {
        swerl_policy::EngineConfig {
            max_batch: max_batch.max(1),
            prefix_cache_bytes: self.prefix_cache_mib << 20,
            ..swerl_policy::EngineConfig::default()
        }
    }
}
