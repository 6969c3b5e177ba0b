//! Pure RL math, no I/O: advantages, policy losses, sample filters, reward shaping, metric names.
//!
//! The tensor code (the loss, [`loss_eval`]) is behind the default `tensor` feature: the
//! rollout and report crates use the reward shaping, filters and metric names without
//! linking libtorch.
//!
//! This crate knows no agents, sandboxes, tokenizers or files: callers hand it rewards,
//! accessors and tensors, and get numbers and tensors back. It does not expand advantages
//! onto tokens, batch trajectories or step optimizers; that is `swerl-train`'s job. Each module is one concept,
//! with its formula in the doc comment:
//! - [`advantage`]: per-trajectory advantages from a group's rewards (GRPO, Dr.GRPO, RLOO).
//! - [`filter`]: which samples reach the optimizer (zero-advantage drop, DAPO group filter).
//! - [`loss`]: the clipped policy loss on tch tensors, with its metrics.
//! - [`mod@reference`]: a slow scalar version of the loss and its gradient, the test oracle.
//! - [`reward`]: length shaping of the outcome reward (turn penalty, soft overlong).
//! - [`metrics`]: metric names used across the project.
//! - [`loss_eval`]: the loss and its gradient on plain arrays (behind `swerl rl loss`).

pub mod advantage;
pub mod filter;
pub mod loss;
#[cfg(feature = "tensor")]
pub mod loss_eval;
pub mod metrics;
pub mod reference;
pub mod reward;
