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
    /// Trains what `model` trains ([`named_parameters`]: the factors of the LoRA adapter it
    /// wears, else every parameter), with fresh optimizer state. LoRA training is this choice
    /// of tensors and nothing else: the step, the optimizer and the checkpoints' moments are
    /// the same code.
    pub fn new(model: Qwen2, adamw: AdamWConfig) -> Self {
        let trainable = Trainable::new(named_parameters(&model), adamw);
        Learner { model, trainable }
    }

    /// Whether only a LoRA adapter trains (the base is frozen).
    pub fn is_lora(&self) -> bool {
        self.model.lora().is_some()
    }
}
