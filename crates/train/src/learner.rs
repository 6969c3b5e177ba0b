//! The model being trained together with its trainable state.

use swerl_model::qwen2::Qwen2;

use crate::optim::AdamWConfig;
use crate::step::named_parameters;
use crate::trainable::Trainable;

/// A model and the trainable state over its parameters (working copies, f32 masters where
/// the working copies are bf16, AdamW moments), in checkpoint-key order.
#[derive(Debug)]
pub struct Learner {
    pub model: Qwen2,
    pub trainable: Trainable,
}

impl Learner {
    /// Trains every parameter of `model`, with fresh optimizer state.
    pub fn new(model: Qwen2, adamw: AdamWConfig) -> Self {
        let trainable = Trainable::new(named_parameters(&model), adamw);
        Learner { model, trainable }
    }
}
