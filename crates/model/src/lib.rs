//! Qwen2 / Qwen2.5 on libtorch: config, weights in and out, tokenizer and chat template,
//! KV-cache generation with log-probs.
//!
//! It knows nothing about RL or agents (ARCHITECTURE.md): generation works on token ids.

pub mod bench;
pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod generate;
pub mod logprobs;
pub mod lora;
pub mod qwen2;
pub mod sampling;
pub mod tokenizer;
pub mod weights;
