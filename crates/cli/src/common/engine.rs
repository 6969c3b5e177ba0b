//! Settings of the embedded inference engine, shared by every command that runs it.

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
