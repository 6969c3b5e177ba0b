//! Learning-rate schedules.
//!
//! RFT (docs/method.md section 5): 10 warmup steps, then cosine decay to 0 over the remaining
//! steps.
//! DAPO (section 6): constant 1e-6 (the paper names no schedule; constant is the simplest
//! reading and keeps iterations comparable).

use serde::{Deserialize, Serialize};

/// A learning-rate schedule, evaluated at a 0-based optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// `peak` at every step.
    Constant { peak: f64 },
    /// Linear warmup `peak * (step + 1) / warmup` for the first `warmup` steps, then
    /// `peak * 0.5 * (1 + cos(pi * p))` with `p = (step - warmup) / (total - warmup)`, which
    /// reaches exactly 0 at `step = total`.
    WarmupCosine { peak: f64, warmup: u64, total: u64 },
}

impl LrSchedule {
    /// The learning rate for optimizer step `step` (0-based). Steps past the end stay at the
    /// final value rather than wrapping around the cosine.
    pub fn lr(&self, step: u64) -> f64 {
        match *self {
            LrSchedule::Constant { peak } => peak,
            LrSchedule::WarmupCosine {
                peak,
                warmup,
                total,
            } => {
                if step < warmup {
                    return peak * (step + 1) as f64 / warmup as f64;
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_is_constant() {
        let s = LrSchedule::Constant { peak: 1e-6 };
        assert_eq!(s.lr(0), 1e-6);
        assert_eq!(s.lr(10_000), 1e-6);
    }

    #[test]
    fn warmup_then_cosine_to_zero() {
        let s = LrSchedule::WarmupCosine {
            peak: 5e-6,
            warmup: 10,
            total: 110,
        };
        // Warmup: 1/10, 2/10, ... of the peak; the last warmup step reaches the peak.
        assert!((s.lr(0) - 5e-7).abs() < 1e-18);
        assert!((s.lr(9) - 5e-6).abs() < 1e-18);
        // First decay step is the peak (cos 0 = 1), the midpoint half of it, the end zero.
        assert!((s.lr(10) - 5e-6).abs() < 1e-18);
        assert!((s.lr(60) - 2.5e-6).abs() < 1e-15);
        assert!(s.lr(110).abs() < 1e-18);
        assert!(s.lr(500).abs() < 1e-18);
        // Monotone non-increasing after warmup.
        let lrs: Vec<f64> = (10..=110).map(|k| s.lr(k)).collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
    }
}
