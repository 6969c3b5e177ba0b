//! The engine's prefix cache: keys and values of recently generated sequences, so that the
//! next turn of a multi-turn episode (whose prompt is the previous prompt, the sampled turn
//! and an observation: token-in, token-out) runs only its new tokens through the model.
//!
//! Without it every turn re-runs the whole history, and the prefill's attention grows with
//! the square of the context: at a few thousand tokens it costs more than all the sampling.
//! Entries are matched by the longest common prefix of token ids, so the G samples of one
//! task also share the computation of their common system prompt and issue.
//!
//! Entries are valid for one set of weights only: the engine clears the cache on every
//! weight update. Memory is bounded by a byte budget; the least recently used entries go
//! first.

use swerl_model::qwen2::SequenceKv;

/// One cached sequence: its token ids and their keys and values.
#[derive(Debug)]
struct Entry {
    tokens: Vec<u32>,
    kv: SequenceKv,
    bytes: usize,
    last_used: u64,
}

/// A cached prefix found for a prompt.
#[derive(Debug)]
pub struct Hit {
    /// Keys and values (a shared handle: the entry stays in the cache).
    pub kv: SequenceKv,
    /// Leading tokens of the prompt they cover.
    pub len: usize,
}

/// Counters of what the cache saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PrefixCacheStats {
    /// Prompt tokens whose keys and values came from the cache.
    pub reused_tokens: u64,
    /// Prompt tokens looked up in all.
    pub prompt_tokens: u64,
    /// Entries held now, and their bytes.
    pub entries: u64,
    pub bytes: u64,
}

/// Sequences' keys and values under a byte budget, least recently used out first.
#[derive(Debug)]
pub struct PrefixCache {
    entries: Vec<Entry>,
    budget_bytes: usize,
    /// Shorter matches are not worth the copy into the batch.
    min_tokens: usize,
    clock: u64,
    stats: PrefixCacheStats,
}

impl PrefixCache {
    /// A cache holding at most `budget_bytes` of keys and values (0 disables it).
    pub fn new(budget_bytes: usize) -> Self {
        PrefixCache {
            entries: Vec::new(),
            budget_bytes,
            min_tokens: 16,
            clock: 0,
            stats: PrefixCacheStats::default(),
        }
    }

    /// The entry sharing the longest prefix with `prompt`, if that prefix is long enough.
    pub fn lookup(&mut self, prompt: &[u32]) -> Option<Hit> {
        self.clock += 1;
        self.stats.prompt_tokens += prompt.len() as u64;
        let (index, len) = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt)))
            .max_by_key(|&(i, len)| (len, std::cmp::Reverse(i)))?;
        if len < self.min_tokens {
            return None;
        }
        let entry = &mut self.entries[index];
        entry.last_used = self.clock;
        self.stats.reused_tokens += len as u64;
        Some(Hit {
            kv: entry.kv.share(),
            len,
        })
    }

    /// Keeps `kv`, the keys and values of `tokens`. Entries that `tokens` extends are
    /// dropped (the new one covers them); then the oldest go until the budget holds.
    pub fn insert(&mut self, tokens: Vec<u32>, kv: SequenceKv) {
        let bytes = kv.bytes();
        if bytes > self.budget_bytes || tokens.len() < self.min_tokens {
            return;
        }
        debug_assert_eq!(kv.len as usize, tokens.len(), "one key/value per token");
        self.clock += 1;
        self.entries
            .retain(|e| !(e.tokens.len() <= tokens.len() && tokens.starts_with(&e.tokens)));
        self.entries.push(Entry {
            tokens,
            kv,
            bytes,
            last_used: self.clock,
        });
        while self.bytes() > self.budget_bytes {
            let oldest = (0..self.entries.len())
                .min_by_key(|&i| self.entries[i].last_used)
                .expect("over budget means non-empty");
            self.entries.swap_remove(oldest);
        }
    }

    /// Forgets everything (the weights changed).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// True when nothing can be cached.
    pub fn disabled(&self) -> bool {
        self.budget_bytes == 0
    }

    pub fn stats(&self) -> PrefixCacheStats {
        PrefixCacheStats {
            entries: self.entries.len() as u64,
            bytes: self.bytes() as u64,
            ..self.stats
        }
    }

    fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.bytes).sum()
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    /// Keys and values for `len` tokens: 1 layer, 1 head, dimension 2 (16 bytes a token).
    fn kv(len: i64) -> SequenceKv {
        let t = || Tensor::zeros([1, len, 2], (Kind::Float, tch::Device::Cpu));
        SequenceKv {
            len,
            layers: vec![(t(), t())],
        }
    }

    fn seq(range: std::ops::Range<u32>) -> Vec<u32> {
        range.collect()
    }

    #[test]
    fn the_longest_common_prefix_wins() {
        let mut c = PrefixCache::new(1 << 20);
        c.insert(seq(0..20), kv(20));
        let mut other = seq(0..18);
        other.extend([99, 98, 97, 96, 95]);
        c.insert(other, kv(23));
        let prompt: Vec<u32> = seq(0..30);
        let hit = c.lookup(&prompt).expect("a prefix of 20 tokens is cached");
        assert_eq!(hit.len, 20);
        assert_eq!(c.lookup(&seq(100..140)).map(|h| h.len), None);
        assert_eq!(c.stats().reused_tokens, 20);
    }

    #[test]
    fn short_matches_are_not_used() {
        let mut c = PrefixCache::new(1 << 20);
        c.insert(seq(0..40), kv(40));
        let mut prompt = seq(0..10);
        prompt.extend(seq(500..540));
        assert!(c.lookup(&prompt).is_none());
    }

    #[test]
    fn an_extension_replaces_its_prefix() {
        let mut c = PrefixCache::new(1 << 20);
        c.insert(seq(0..20), kv(20));
        c.insert(seq(0..30), kv(30));
        assert_eq!(c.stats().entries, 1);
        assert_eq!(c.lookup(&seq(0..40)).map(|h| h.len), Some(30));
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        // 16 bytes a token: room for 100 tokens.
        let mut c = PrefixCache::new(1600);
        c.insert(seq(0..40), kv(40));
        c.insert(seq(1000..1040), kv(40));
        assert!(c.lookup(&seq(0..50)).is_some(), "touches the first entry");
        c.insert(seq(2000..2040), kv(40));
        assert_eq!(c.stats().entries, 2);
        assert!(c.lookup(&seq(0..50)).is_some());
        assert!(c.lookup(&seq(1000..1050)).is_none(), "evicted");
        assert!(c.stats().bytes <= 1600);
    }

    #[test]
    fn a_zero_budget_keeps_nothing_and_clear_forgets() {
        let mut off = PrefixCache::new(0);
        off.insert(seq(0..40), kv(40));
        assert!(off.disabled() && off.lookup(&seq(0..40)).is_none());
        let mut c = PrefixCache::new(1 << 20);
        c.insert(seq(0..40), kv(40));
        c.clear();
        assert!(c.lookup(&seq(0..40)).is_none());
    }
}
