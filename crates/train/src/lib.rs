//! Training: batching, RFT/SFT and DAPO steps, AdamW and schedules, checkpoints, weight sync.
//!
//! The trainer reads trajectories (the one serialisation boundary, ARCHITECTURE.md) and the
//! model's parameters; it never runs episodes itself: the DAPO loop asks a
//! [`dapo_loop::RolloutBackend`] for them (real sandboxes in the CLI, a toy environment in tests).
//!
//! Drivers: [`rft::run_rft`] (rejection fine-tuning) and [`dapo_loop::DapoRun`] (multi-turn
//! DAPO, configured by [`config::DapoConfig`]), both built from the steps in [`sft`], [`dapo`],
//! [`data`], [`batch`], [`optim`], [`schedule`] and [`checkpoint`]. What a step trains is one
//! [`trainable::Trainable`]: working weights, f32 masters (for bf16 working weights), AdamW
//! moments, and the step over them (mixed precision as PyTorch FSDP's `MixedPrecision`).

pub mod batch;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod dapo;
pub mod dapo_loop;
pub mod dapo_metrics;
pub mod data;
pub mod learner;
pub mod metrics_log;
pub mod optim;
pub mod plot;
pub mod rft;
pub mod sampling;
pub mod schedule;
pub mod sft;
pub mod step;
pub mod trainable;

pub use learner::Learner;
pub use optim::{clip_grad_norm, AdamWConfig};
pub use schedule::LrSchedule;
pub use trainable::Trainable;
