//! Exact pruning of selection (issue 11) as pure functions: which candidates to evaluate and in
//! what order, when a half-evaluated candidate can no longer win, and the replay that picks the
//! same winner as offering every candidate in top-μ order to [`WinnerChoice`].
//!
//! - The current token goes first: its reasoning is already known, and its score is a bound
//!   every other candidate must beat.
//! - A candidate's score is `mistakes / n + w · Σ nll / n` and both sums only grow as examples
//!   finish, so after any subset of examples that value is a lower bound on its final score. Once
//!   the bound is above the best score seen, the candidate cannot be the (strict, earliest) minimum.
//! - When a '.'-like candidate is in the top-μ, the first one wins by the '.' rule whatever the
//!   others score: only it is evaluated.

use super::decide::{Offer, WinnerChoice};

/// How far above the best score a bound must be before a candidate is dropped: the bound and the
/// final score add the same values in other orders, so they may differ in the last bits.
pub const MARGIN: f32 = 1e-5;

/// The candidates to evaluate (indices into top-μ), in order. `current` is the current token's
/// index in top-μ, if it is there; `dot[i]` says the '.' rule applies to candidate `i`.
pub fn evaluation_order(dot: &[bool], current: Option<usize>, prune: bool) -> Vec<usize> {
    let first_dot = dot.iter().position(|&d| d);
    match (prune, first_dot) {
        (true, Some(d)) => vec![d],
        (true, None) => current.into_iter().chain((0..dot.len()).filter(|&i| Some(i) != current)).collect(),
        (false, Some(d)) => (0..=d).collect(),
        (false, None) => (0..dot.len()).collect(),
    }
}

/// The lower bound on a candidate's score after some of its `n` examples: `mistakes` of them
/// wrong and their prompt NLLs summing to `nll_sum` (every NLL is ≥ 0).
pub fn lower_bound(mistakes: usize, nll_sum: f32, n: usize, nll_weight: f32) -> f32 {
    let n = n as f32;
    mistakes as f32 / n + nll_weight * (nll_sum / n)
}

/// Whether a candidate whose score is at least `bound` cannot beat `best`.
pub fn cannot_win(bound: f32, best: Option<f32>) -> bool {
    best.is_some_and(|b| bound > b + MARGIN)
}

/// The winner (index into top-μ) from the final `scores` (`None`: not evaluated or pruned) and
/// the '.' flags, and how many leading candidates the step's record lists. Offers the evaluated
/// candidates in top-μ order, as plain selection does.
pub fn replay(scores: &[Option<f32>], dot: &[bool]) -> Option<(usize, usize)> {
    let mut choice = WinnerChoice::default();
    for (i, s) in scores.iter().enumerate() {
        if let Some(s) = *s
            && choice.offer(i, s, dot[i]) == Offer::WinsByDot
        {
            return Some((i, i + 1));
        }
    }
    choice.winner().map(|w| (w, scores.len()))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn the_current_token_goes_first_and_a_dot_candidate_alone() {
        let none = [false; 4];
        assert_eq!(evaluation_order(&none, Some(2), true), [2, 0, 1, 3]);
        assert_eq!(evaluation_order(&none, None, true), [0, 1, 2, 3]);
        assert_eq!(evaluation_order(&none, Some(2), false), [0, 1, 2, 3]);
        let dots = [false, true, false, true];
        assert_eq!(evaluation_order(&dots, Some(0), true), [1]);
        // Plain selection scores everything up to the first '.' candidate.
        assert_eq!(evaluation_order(&dots, Some(0), false), [0, 1]);
    }

    #[test]
    fn a_bound_above_the_best_by_the_margin_prunes() {
        assert!(!cannot_win(0.5, None));
        assert!(!cannot_win(0.5, Some(0.5)));
        assert!(cannot_win(0.6, Some(0.5)));
        assert!(!cannot_win(0.4, Some(0.5)));
        assert_eq!(lower_bound(2, 10.0, 10, 0.02), 0.2 + 0.02);
    }

    #[test]
    fn replay_picks_the_earliest_strict_minimum_or_the_first_dot() {
        assert_eq!(replay(&[Some(0.5), Some(0.4), Some(0.4)], &[false; 3]), Some((1, 3)));
        assert_eq!(replay(&[Some(0.5), None, Some(0.9)], &[false; 3]), Some((0, 3)));
        assert_eq!(replay(&[None, Some(0.9), None], &[false, true, false]), Some((1, 2)));
        assert_eq!(replay(&[None, None], &[false, false]), None);
    }

    /// One candidate's per-example results: mistake flags and prompt NLLs.
    struct Candidate {
        mistakes: Vec<bool>,
        nll: Vec<f32>,
    }

    impl Candidate {
        fn score(&self, w: f32) -> f32 {
            let n = self.nll.len() as f32;
            self.mistakes.iter().filter(|&&m| m).count() as f32 / n + w * (self.nll.iter().sum::<f32>() / n)
        }
    }

    /// Selection with pruning, examples finishing in a random order, as select.rs runs it.
    fn fast_winner(cands: &[Candidate], dot: &[bool], current: Option<usize>, w: f32, rng: &mut StdRng) -> usize {
        let mut scores = vec![None; cands.len()];
        let mut best: Option<f32> = None;
        for i in evaluation_order(dot, current, true) {
            let c = &cands[i];
            let n = c.nll.len();
            let mut order: Vec<usize> = (0..n).collect();
            for k in (1..n).rev() {
                order.swap(k, rng.random_range(0..=k));
            }
            let (mut m, mut s) = (0, 0.0f32);
            let mut pruned = false;
            for &e in &order {
                m += c.mistakes[e] as usize;
                s += c.nll[e];
                if cannot_win(lower_bound(m, s, n, w), best) {
                    pruned = true;
                    break;
                }
            }
            if !pruned {
                let score = c.score(w);
                scores[i] = Some(score);
                best = Some(best.map_or(score, |b| b.min(score)));
            }
        }
        replay(&scores, dot).expect("a winner").0
    }

    fn plain_winner(cands: &[Candidate], dot: &[bool], w: f32) -> usize {
        let mut choice = WinnerChoice::default();
        for (i, c) in cands.iter().enumerate() {
            if choice.offer(i, c.score(w), dot[i]) == Offer::WinsByDot {
                break;
            }
        }
        choice.winner().unwrap()
    }

    #[test]
    fn pruning_never_drops_the_eventual_winner() {
        let mut rng = StdRng::seed_from_u64(7);
        for case in 0..5000 {
            let mu = rng.random_range(1..6);
            let n = rng.random_range(1..12);
            let w = [0.0, 0.02, 0.5, 3.0][case % 4];
            // Few distinct values, so that ties between candidates are common.
            let cands: Vec<Candidate> = (0..mu)
                .map(|_| Candidate {
                    mistakes: (0..n).map(|_| rng.random_bool(0.5)).collect(),
                    nll: (0..n).map(|_| [0.0, 0.5, 1.25, 2.0][rng.random_range(0..4)]).collect(),
                })
                .collect();
            let dot: Vec<bool> = (0..mu).map(|_| rng.random_bool(0.1)).collect();
            let current = rng.random_bool(0.7).then(|| rng.random_range(0..mu));
            let want = plain_winner(&cands, &dot, w);
            assert_eq!(fast_winner(&cands, &dot, current, w, &mut rng), want, "case {case}");
        }
    }
}
