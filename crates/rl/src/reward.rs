//! Reward shaping: `R_final = R + R_length`, where `R` is the graded outcome (1 resolved,
//! 0 not) and `R_length` a length penalty chosen by [`LengthShaping`].
//!
//! Infrastructure failures never reach this module: they carry no reward at all
//! (docs/method.md section 10, point 2); only real outcomes are shaped here.

use serde::{Deserialize, Serialize};

/// docs/method.md section 4: turns below this threshold carry no penalty.
pub const DEFAULT_TURN_THRESHOLD: u32 = 10;
/// docs/method.md section 6, stage 1 turn limit.
pub const STAGE1_MAX_TURNS: u32 = 40;
/// docs/method.md section 6, stage 2 turn limit.
pub const STAGE2_MAX_TURNS: u32 = 80;
/// DAPO's default maximum response length `L_max`.
pub const DAPO_MAX_LEN: u64 = 20_480;
/// DAPO's default soft-punishment interval `L_cache`.
pub const DAPO_CACHE_LEN: u64 = 4_096;

/// An invalid shaping configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewardConfigError {
    /// The turn penalty needs `T_max > L_thr`, otherwise its denominator is <= 0.
    #[error("turn penalty: max_turns (T_max = {max_turns}) must be greater than threshold (L_thr = {threshold}); the paper uses L_thr 10 with T_max 40 or 80")]
    MaxTurnsNotAboveThreshold {
        /// `L_thr`.
        threshold: u32,
        /// `T_max`.
        max_turns: u32,
    },
    /// The soft overlong punishment needs `0 < L_cache <= L_max`.
    #[error("soft overlong punishment: cache_len (L_cache = {cache_len}) must be > 0 and <= max_len (L_max = {max_len}); DAPO uses 4096 and 20480")]
    BadOverlongWindow {
        /// `L_max`.
        max_len: u64,
        /// `L_cache`.
        cache_len: u64,
    },
}

/// The turn penalty of docs/method.md section 4:
/// `R_length = 0` if `turns < L_thr`, else `(L_thr - turns) / (T_max - L_thr)`.
///
/// It falls linearly from 0 at `L_thr` turns to -1 at `T_max` turns. Turn counts above
/// `T_max` are not clamped (the scaffold stops at `T_max`, so they do not occur).
/// Constructed only through [`TurnPenalty::new`] or deserialisation, both of which check
/// `T_max > L_thr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawTurnPenalty", into = "RawTurnPenalty")]
pub struct TurnPenalty {
    threshold: u32,
    max_turns: u32,
}

/// Serialised form of [`TurnPenalty`], checked on the way in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTurnPenalty {
    threshold: u32,
    max_turns: u32,
}

impl TryFrom<RawTurnPenalty> for TurnPenalty {
    type Error = RewardConfigError;
    fn try_from(raw: RawTurnPenalty) -> Result<Self, Self::Error> {
        TurnPenalty::new(raw.threshold, raw.max_turns)
    }
}

impl From<TurnPenalty> for RawTurnPenalty {
    fn from(p: TurnPenalty) -> Self {
        RawTurnPenalty {
            threshold: p.threshold,
            max_turns: p.max_turns,
        }
    }
}

impl TurnPenalty {
    /// A turn penalty with `L_thr = threshold` and `T_max = max_turns`; needs `T_max > L_thr`.
    pub fn new(threshold: u32, max_turns: u32) -> Result<Self, RewardConfigError> {
        if max_turns <= threshold {
            return Err(RewardConfigError::MaxTurnsNotAboveThreshold {
                threshold,
                max_turns,
            });
        }
        Ok(TurnPenalty {
            threshold,
            max_turns,
        })
    }

    /// Stage 1 of the paper: `L_thr = 10`, `T_max = 40`.
    pub fn stage1() -> Self {
        TurnPenalty {
            threshold: DEFAULT_TURN_THRESHOLD,
            max_turns: STAGE1_MAX_TURNS,
        }
    }

    /// Stage 2 of the paper: `L_thr = 10`, `T_max = 80`.
    pub fn stage2() -> Self {
        TurnPenalty {
            threshold: DEFAULT_TURN_THRESHOLD,
            max_turns: STAGE2_MAX_TURNS,
        }
    }

    /// `L_thr`.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// `T_max`.
    pub fn max_turns(&self) -> u32 {
        self.max_turns
    }

    /// `R_length` for an episode of `turns` agent turns.
    pub fn penalty(&self, turns: u32) -> f64 {
        if turns < self.threshold {
            return 0.0;
        }
        let over = f64::from(self.threshold) - f64::from(turns);
        over / f64::from(self.max_turns - self.threshold)
    }
}

/// DAPO's soft overlong punishment on the response length `|y|` in tokens:
/// `0` if `|y| <= L_max - L_cache`; `((L_max - L_cache) - |y|) / L_cache` if
/// `L_max - L_cache < |y| <= L_max`; `-1` if `|y| > L_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSoftOverlong", into = "RawSoftOverlong")]
pub struct SoftOverlong {
    max_len: u64,
    cache_len: u64,
}

/// Serialised form of [`SoftOverlong`], checked on the way in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSoftOverlong {
    max_len: u64,
    cache_len: u64,
}

impl TryFrom<RawSoftOverlong> for SoftOverlong {
    type Error = RewardConfigError;
    fn try_from(raw: RawSoftOverlong) -> Result<Self, Self::Error> {
        SoftOverlong::new(raw.max_len, raw.cache_len)
    }
}

impl From<SoftOverlong> for RawSoftOverlong {
    fn from(p: SoftOverlong) -> Self {
        RawSoftOverlong {
            max_len: p.max_len,
            cache_len: p.cache_len,
        }
    }
}

impl SoftOverlong {
    /// A soft overlong punishment with `L_max = max_len`, `L_cache = cache_len`;
    /// needs `0 < L_cache <= L_max`.
    pub fn new(max_len: u64, cache_len: u64) -> Result<Self, RewardConfigError> {
        if cache_len == 0 || cache_len > max_len {
            return Err(RewardConfigError::BadOverlongWindow { max_len, cache_len });
        }
        Ok(SoftOverlong { max_len, cache_len })
    }

    /// DAPO's defaults: `L_max = 20480`, `L_cache = 4096`.
    pub fn dapo() -> Self {
        SoftOverlong {
            max_len: DAPO_MAX_LEN,
            cache_len: DAPO_CACHE_LEN,
        }
    }

    /// The penalty for a response of `len` tokens.
    pub fn penalty(&self, len: u64) -> f64 {
        let free = self.max_len - self.cache_len;
        if len <= free {
            0.0
        } else if len <= self.max_len {
            (free as f64 - len as f64) / self.cache_len as f64
        } else {
            -1.0
        }
    }
}

/// How long an episode was, in the units the shaping functions need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EpisodeLength {
    /// Agent turns `|tau|`.
    pub turns: u32,
    /// Sampled (action) tokens `|y|` over the whole episode.
    pub response_tokens: u64,
}

/// Which length penalty `R_length` is added to the outcome reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthShaping {
    /// No length penalty: `R_length = 0`.
    None,
    /// The paper's turn penalty ([`TurnPenalty`]).
    TurnPenalty(TurnPenalty),
    /// DAPO's soft overlong punishment on response tokens ([`SoftOverlong`]).
    SoftOverlong(SoftOverlong),
}

impl Default for LengthShaping {
    fn default() -> Self {
        LengthShaping::TurnPenalty(TurnPenalty::stage1())
    }
}

impl LengthShaping {
    /// `R_length` for an episode.
    pub fn penalty(&self, length: EpisodeLength) -> f64 {
        match self {
            LengthShaping::None => 0.0,
            LengthShaping::TurnPenalty(p) => p.penalty(length.turns),
            LengthShaping::SoftOverlong(p) => p.penalty(length.response_tokens),
        }
    }

    /// `R_final = R + R_length`, with `R` the graded outcome.
    pub fn final_reward(&self, outcome: f64, length: EpisodeLength) -> f64 {
        outcome + self.penalty(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns(turns: u32) -> EpisodeLength {
        EpisodeLength {
            turns,
            response_tokens: 0,
        }
    }

    #[test]
    fn turn_penalty_stage1_golden() {
        let p = TurnPenalty::stage1();
        // Below L_thr = 10: no penalty.
        assert_eq!(p.penalty(0), 0.0);
        assert_eq!(p.penalty(9), 0.0);
        // At L_thr: (10 - 10) / (40 - 10) = 0.
        assert_eq!(p.penalty(10), 0.0);
        // 16 turns: (10 - 16) / 30 = -6 / 30 = -0.2.
        assert!((p.penalty(16) - -0.2).abs() < 1e-15);
        // 25 turns: (10 - 25) / 30 = -15 / 30 = -0.5.
        assert_eq!(p.penalty(25), -0.5);
        // 40 turns (T_max): -30 / 30 = -1.
        assert_eq!(p.penalty(40), -1.0);
    }

    #[test]
    fn turn_penalty_stage2_golden() {
        let p = TurnPenalty::stage2();
        // 24 turns: (10 - 24) / (80 - 10) = -14 / 70 = -0.2.
        assert!((p.penalty(24) - -0.2).abs() < 1e-15);
        // 45 turns: -35 / 70 = -0.5; 80 turns: -70 / 70 = -1.
        assert_eq!(p.penalty(45), -0.5);
        assert_eq!(p.penalty(80), -1.0);
    }

    #[test]
    fn final_reward_adds_turn_penalty() {
        let shaping = LengthShaping::TurnPenalty(TurnPenalty::stage1());
        // Resolved in 5 turns: 1 + 0 = 1.
        assert_eq!(shaping.final_reward(1.0, turns(5)), 1.0);
        // Resolved in 25 turns: 1 + (10 - 25) / 30 = 1 - 0.5 = 0.5.
        assert_eq!(shaping.final_reward(1.0, turns(25)), 0.5);
        // Failed at the limit of 40 turns: 0 + (-1) = -1.
        assert_eq!(shaping.final_reward(0.0, turns(40)), -1.0);
        assert_eq!(LengthShaping::None.final_reward(1.0, turns(40)), 1.0);
    }

    #[test]
    fn turn_penalty_needs_max_above_threshold() {
        assert_eq!(
            TurnPenalty::new(10, 10),
            Err(RewardConfigError::MaxTurnsNotAboveThreshold {
                threshold: 10,
                max_turns: 10
            })
        );
        assert!(TurnPenalty::new(10, 5).is_err());
        assert_eq!(TurnPenalty::new(10, 40).unwrap(), TurnPenalty::stage1());
        let err = serde_json::from_str::<TurnPenalty>(r#"{"threshold":10,"max_turns":3}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_turns (T_max = 3)"), "{err}");
        assert!(
            serde_json::from_str::<TurnPenalty>(r#"{"threshold":10,"max_turns":40,"x":0}"#)
                .is_err()
        );
    }

    #[test]
    fn soft_overlong_dapo_golden() {
        let p = SoftOverlong::dapo();
        // L_max - L_cache = 20480 - 4096 = 16384: no penalty up to and including it.
        assert_eq!(p.penalty(1000), 0.0);
        assert_eq!(p.penalty(16_384), 0.0);
        // 16385: (16384 - 16385) / 4096 = -1 / 4096 = -0.000244140625.
        assert_eq!(p.penalty(16_385), -0.000_244_140_625);
        // 18432: (16384 - 18432) / 4096 = -2048 / 4096 = -0.5.
        assert_eq!(p.penalty(18_432), -0.5);
        // 20480 = L_max: -4096 / 4096 = -1; beyond: -1.
        assert_eq!(p.penalty(20_480), -1.0);
        assert_eq!(p.penalty(30_000), -1.0);
        let shaping = LengthShaping::SoftOverlong(p);
        let length = EpisodeLength {
            turns: 70,
            response_tokens: 18_432,
        };
        // Turns are ignored by this shaping: 1 + (-0.5) = 0.5.
        assert_eq!(shaping.final_reward(1.0, length), 0.5);
    }

    #[test]
    fn soft_overlong_window_is_validated() {
        assert!(SoftOverlong::new(100, 0).is_err());
        assert!(SoftOverlong::new(100, 101).is_err());
        // L_cache = L_max is allowed: the penalty ramps from length 0.
        // 50 tokens: (0 - 50) / 100 = -0.5.
        assert_eq!(SoftOverlong::new(100, 100).unwrap().penalty(50), -0.5);
    }

    #[test]
    fn shaping_config_parses() {
        let s: LengthShaping =
            serde_json::from_str(r#"{"turn_penalty":{"threshold":10,"max_turns":80}}"#).unwrap();
        assert_eq!(s, LengthShaping::TurnPenalty(TurnPenalty::stage2()));
        let s: LengthShaping =
            serde_json::from_str(r#"{"soft_overlong":{"max_len":20480,"cache_len":4096}}"#)
                .unwrap();
        assert_eq!(s, LengthShaping::SoftOverlong(SoftOverlong::dapo()));
        assert_eq!(
            serde_json::from_str::<LengthShaping>(r#""none""#).unwrap(),
            LengthShaping::None
        );
    }
}
