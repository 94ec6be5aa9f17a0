//! Where a row's draft stands: the tokens it proposes next, and how it re-synchronises after a
//! miss by looking the last generated tokens up in the draft (prompt-lookup decoding: the draft
//! is another chain of reasoning for the same example, not a draft model).

/// A row's draft and its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drafter {
    draft: Vec<u32>,
    /// Index of the draft token expected next; `None` while lost.
    at: Option<usize>,
    /// Where the cursor was when it was last known, to prefer the nearest match on re-sync.
    last: usize,
    ngram: usize,
}

impl Drafter {
    /// A drafter over `draft`, aligned with the start of generation; `ngram` tokens are looked up
    /// to re-synchronise (0: never re-synchronise).
    pub fn new(draft: Vec<u32>, ngram: usize) -> Self {
        let at = (!draft.is_empty()).then_some(0);
        Self { draft, at, last: 0, ngram }
    }

    /// Up to `max` draft tokens expected next (empty while lost or past the draft's end).
    pub fn propose(&self, max: usize) -> &[u32] {
        match self.at {
            Some(at) if at < self.draft.len() => &self.draft[at..(at + max).min(self.draft.len())],
            _ => &[],
        }
    }

    /// After a verification: `accepted` proposed tokens were right, then `next` was generated;
    /// `history` is every generated token so far, `next` included.
    pub fn advance(&mut self, accepted: usize, next: u32, history: &[u32]) {
        if let Some(at) = self.at {
            let at = at + accepted;
            self.last = at;
            if self.draft.get(at) == Some(&next) {
                self.at = Some(at + 1);
                return;
            }
        }
        self.at = self.lookup(history);
    }

    /// The draft index just after the occurrence of `history`'s last `ngram` tokens nearest to
    /// where the cursor last was (the earlier one on a tie), if the draft goes on after it.
    fn lookup(&self, history: &[u32]) -> Option<usize> {
        let n = self.ngram;
        if n == 0 || history.len() < n || self.draft.len() <= n {
            return None;
        }
        let key = &history[history.len() - n..];
        (0..self.draft.len() - n)
            .filter(|&i| &self.draft[i..i + n] == key)
            .map(|i| i + n)
            .min_by_key(|&end| (end.abs_diff(self.last), end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposes_from_the_start_and_follows_accepted_tokens() {
        let mut d = Drafter::new(vec![1, 2, 3, 4, 5], 2);
        assert_eq!(d.propose(3), [1, 2, 3]);
        // 1, 2, 3 accepted; the model then chose 4, which the draft also says.
        d.advance(3, 4, &[1, 2, 3, 4]);
        assert_eq!(d.propose(3), [5]);
    }

    #[test]
    fn a_miss_resynchronises_on_the_last_ngram() {
        let mut d = Drafter::new(vec![10, 11, 12, 13, 14, 15], 2);
        // 10 accepted, then 99 instead of 11: lost, since (10, 99) is nowhere in the draft.
        d.advance(1, 99, &[10, 99]);
        assert_eq!(d.propose(4), [] as [u32; 0]);
        // The model goes on with 12, 13: the bigram (12, 13) is found, the draft resumes at 14.
        d.advance(0, 12, &[10, 99, 12]);
        d.advance(0, 13, &[10, 99, 12, 13]);
        assert_eq!(d.propose(4), [14, 15]);
    }

    #[test]
    fn resynchronisation_prefers_the_occurrence_nearest_the_cursor() {
        // The bigram (7, 8) occurs twice; after a miss at index 5 the second one (ending at 7) is
        // nearer than the first (ending at 2).
        let mut d = Drafter::new(vec![7, 8, 1, 2, 3, 7, 8, 4, 5], 2);
        d.advance(5, 7, &[7, 8, 1, 2, 3, 7]);
        assert_eq!(d.propose(1), [8]);
        d.advance(0, 9, &[7, 8, 1, 2, 3, 7, 9]);
        d.advance(0, 7, &[7, 8, 1, 2, 3, 7, 9, 7]);
        d.advance(0, 8, &[7, 8, 1, 2, 3, 7, 9, 7, 8]);
        assert_eq!(d.propose(2), [4, 5]);
    }

    #[test]
    fn an_empty_draft_or_no_ngram_never_proposes() {
        let mut d = Drafter::new(Vec::new(), 2);
        assert!(d.propose(4).is_empty());
        d.advance(0, 1, &[1]);
        assert!(d.propose(4).is_empty());
        let mut d = Drafter::new(vec![1, 2, 3], 0);
        d.advance(0, 9, &[9]);
        d.advance(0, 1, &[9, 1]);
        assert!(d.propose(4).is_empty());
    }
}
