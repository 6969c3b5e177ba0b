//! Training sequences and their packing into micro-batches.
//!
//! A [`Sequence`] is one trajectory flattened to what the trainer needs: the exact token ids
//! (never re-tokenised), a per-token loss mask (1 = a sampled token that is trained), the
//! sampler's log-probs and one advantage. Micro-batches group sequences of similar length
//! (length bucketing) under a padded-token budget, so memory is bounded by configuration and
//! not by how long a trajectory happens to be.

/// One training sequence. `loss_mask[t]` and `sampler_logprobs[t]` refer to token `t`, i.e.
/// the prediction of `ids[t]` from `ids[..t]`; token 0 is never trained (nothing predicts it).
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub ids: Vec<u32>,
    pub loss_mask: Vec<bool>,
    pub sampler_logprobs: Vec<f32>,
    /// Per-trajectory advantage (DAPO); 1.0 for supervised fine-tuning.
    pub advantage: f32,
    /// Index of the trajectory this came from, for metrics and debugging.
    pub source: usize,
}

impl Sequence {
    /// Number of tokens that carry loss.
    pub fn trained_tokens(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m).count()
    }
}

/// What truncation to the context limit did to a batch; reported, never silent
/// (docs/method.md section 10, point 7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Truncation {
    /// Sequences longer than the limit.
    pub sequences: usize,
    /// Tokens cut off in total.
    pub tokens: usize,
    /// Of those, tokens that carried loss.
    pub trained_tokens: usize,
}

/// Cuts every sequence to at most `max_len` tokens (keeping the beginning, since a suffix
/// without its prefix has no valid context) and counts what was cut.
pub fn truncate(seqs: &mut [Sequence], max_len: usize) -> Truncation {
    let mut t = Truncation::default();
    for s in seqs.iter_mut().filter(|s| s.ids.len() > max_len) {
        t.sequences += 1;
        t.tokens += s.ids.len() - max_len;
        t.trained_tokens += s.loss_mask[max_len..].iter().filter(|&&m| m).count();
        s.ids.truncate(max_len);
        s.loss_mask.truncate(max_len);
        s.sampler_logprobs.truncate(max_len);
    }
    t
}

/// Groups sequence indices into micro-batches whose padded size (`len(longest) * count`) stays
/// within `token_budget`. Sequences are sorted by length first so that each micro-batch holds
/// similar lengths and little compute goes to padding. A sequence longer than the budget gets
/// a micro-batch of its own (its memory is then bounded by the context limit instead).
pub fn micro_batches(seqs: &[Sequence], token_budget: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(seqs[i].ids.len()), i));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for i in order {
        let len = seqs[i].ids.len();
        let padded = longest.max(len) * (current.len() + 1);
        if !current.is_empty() && padded > token_budget {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(len);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Right-pads the sequences `idx` into row-major `[B, T]` arrays: ids (pad with `pad_id`),
/// loss mask (0 on padding), sampler log-probs (0 on padding), per-token advantages.
/// Right padding needs no attention mask under causal attention: real tokens never attend to
/// the padding that follows them.
pub fn pad(seqs: &[Sequence], idx: &[usize], pad_id: u32) -> Padded {
    let t = idx.iter().map(|&i| seqs[i].ids.len()).max().unwrap_or(0);
    let mut p = Padded {
        batch: idx.len(),
        len: t,
        ..Padded::default()
    };
    for &i in idx {
        let s = &seqs[i];
        let n = s.ids.len();
        p.ids.extend(
            s.ids
                .iter()
                .map(|&x| x as i64)
                .chain(std::iter::repeat_n(pad_id as i64, t - n)),
        );
        p.mask.extend(
            s.loss_mask
                .iter()
                .map(|&m| if m { 1.0 } else { 0.0 })
                .chain(std::iter::repeat_n(0.0, t - n)),
        );
        p.advantages.extend(std::iter::repeat_n(s.advantage, t));
    }
    let logprobs: Vec<&[f32]> = seqs.iter().map(|s| s.sampler_logprobs.as_slice()).collect();
    p.sampler_logprobs = pad_rows(&logprobs, idx, t);
    p
}

/// Rows `idx` of `rows`, each right-padded with 0 to `len`, in row-major `[idx.len(), len]`
/// layout: per-token values that travel beside a [`Padded`] batch (e.g. the old log-probs of
/// a DAPO step) without copying the sequences they belong to.
pub fn pad_rows<R: AsRef<[f32]>>(rows: &[R], idx: &[usize], len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * len);
    for &i in idx {
        let row = rows[i].as_ref();
        out.extend(
            row.iter()
                .copied()
                .chain(std::iter::repeat_n(0.0, len - row.len())),
        );
    }
    out
}

/// A padded micro-batch in row-major `[batch, len]` layout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Padded {
    pub batch: usize,
    pub len: usize,
    pub ids: Vec<i64>,
    pub mask: Vec<f32>,
    pub sampler_logprobs: Vec<f32>,
    pub advantages: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(len: usize, trained_from: usize) -> Sequence {
        Sequence {
            ids: (0..len as u32).collect(),
            loss_mask: (0..len).map(|t| t >= trained_from).collect(),
            sampler_logprobs: vec![-0.5; len],
            advantage: 1.0,
            source: 0,
        }
    }

    #[test]
    fn truncation_is_counted() {
        let mut s = vec![seq(10, 4), seq(3, 0)];
        let t = truncate(&mut s, 6);
        assert_eq!(
            t,
            Truncation {
                sequences: 1,
                tokens: 4,
                trained_tokens: 4
            }
        );
        assert_eq!(s[0].ids.len(), 6);
        assert_eq!(s[0].trained_tokens(), 2);
        assert_eq!(s[1].ids.len(), 3);
    }

    #[test]
    fn micro_batches_respect_budget_and_cover_everything_once() {
        let s: Vec<Sequence> = [5, 9, 2, 7, 30, 3, 3].iter().map(|&n| seq(n, 0)).collect();
        let b = micro_batches(&s, 16);
        let mut seen: Vec<usize> = b.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..s.len()).collect::<Vec<_>>());
        for mb in &b {
            let longest = mb.iter().map(|&i| s[i].ids.len()).max().unwrap();
            assert!(
                mb.len() == 1 || longest * mb.len() <= 16,
                "{mb:?} over budget"
            );
        }
        // The 30-token sequence is alone; similar lengths are grouped (bucketing).
        assert!(b.iter().any(|mb| mb == &vec![4]));
    }

    #[test]
    fn padding_masks_the_tail() {
        let s = vec![seq(3, 1), seq(1, 0)];
        let p = pad(&s, &[0, 1], 99);
        assert_eq!((p.batch, p.len), (2, 3));
        assert_eq!(p.ids, vec![0, 1, 2, 0, 99, 99]);
        assert_eq!(p.mask, vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(p.sampler_logprobs[4], 0.0);
    }

    #[test]
    fn side_rows_pad_like_the_batch() {
        let rows = vec![vec![1.0, 2.0], vec![3.0], vec![4.0, 5.0, 6.0]];
        assert_eq!(
            pad_rows(&rows, &[2, 1], 3),
            vec![4.0, 5.0, 6.0, 3.0, 0.0, 0.0]
        );
        let s = vec![seq(3, 1), seq(1, 0)];
        let p = pad(&s, &[1, 0], 0);
        let logprobs: Vec<Vec<f32>> = s.iter().map(|x| x.sampler_logprobs.clone()).collect();
        assert_eq!(pad_rows(&logprobs, &[1, 0], p.len), p.sampler_logprobs);
    }
}
