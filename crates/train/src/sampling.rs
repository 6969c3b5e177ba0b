//! Seeded choice of problems and of the fixed evaluation subset, and the pool filter between
//! stages. Every draw is a pure function of `(seed, stream)`, so a resumed run draws exactly
//! what an uninterrupted one would have (no RNG state to checkpoint).

use std::collections::BTreeMap;

use swerl_trajectory::Trajectory;

/// SplitMix64: a tiny, well-mixed generator; good enough to shuffle task lists and
/// reproducible across platforms (unlike a library whose stream may change between versions).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for stream `stream` of run seed `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut g = SplitMix64(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        g.next_u64();
        g
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is below 2^-40 for any realistic n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Fisher-Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// `count` distinct items of `pool` (all of them, shuffled, if `count >= pool.len()`), drawn
/// from stream `stream` of `seed`.
pub fn sample<T: Clone>(pool: &[T], count: usize, seed: u64, stream: u64) -> Vec<T> {
    let mut items = pool.to_vec();
    SplitMix64::new(seed, stream).shuffle(&mut items);
    items.truncate(count);
    items
}

/// What the pool filter between stages did (docs/method.md section 6).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PoolFilter {
    pub kept: Vec<String>,
    /// Solved in at least `easy_rate` of their graded attempts.
    pub dropped_easy: Vec<String>,
    /// Graded at least once and never solved.
    pub dropped_never_solved: Vec<String>,
    /// Never graded (only infrastructure failures, or not attempted): kept, since nothing is
    /// known about them.
    pub unobserved: Vec<String>,
}

/// Filters `pool` by the success rate observed in `trajs` (typically all stage-1 rollouts):
/// tasks solved in `>= easy_rate` of graded attempts and tasks never solved are dropped.
/// Infrastructure failures are not attempts.
pub fn filter_pool(pool: &[String], trajs: &[Trajectory], easy_rate: f64) -> PoolFilter {
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for t in trajs
        .iter()
        .filter(|t| !t.is_infra_failure() && t.grade.is_some())
    {
        let c = counts.entry(&t.task_id).or_default();
        c.0 += usize::from(t.resolved());
        c.1 += 1;
    }
    let mut out = PoolFilter::default();
    for task in pool {
        let bucket = match counts.get(task.as_str()) {
            None => &mut out.unobserved,
            Some(&(0, _)) => &mut out.dropped_never_solved,
            Some(&(s, n)) if s as f64 >= easy_rate * n as f64 => &mut out.dropped_easy,
            Some(_) => &mut out.kept,
        };
        bucket.push(task.clone());
    }
    out.kept.extend(out.unobserved.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_a_function_of_seed_and_stream() {
        let pool: Vec<u32> = (0..50).collect();
        assert_eq!(sample(&pool, 10, 7, 3), sample(&pool, 10, 7, 3));
        assert_ne!(sample(&pool, 10, 7, 3), sample(&pool, 10, 7, 4));
        let mut all = sample(&pool, 100, 1, 0);
        all.sort();
        assert_eq!(all, pool);
    }
}
