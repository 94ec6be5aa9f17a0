//! The optimiser's decisions as pure functions over plain numbers (SPEC B.1.2 C.4–C.8 with the
//! fixes of A2), so that each rule has a literal test: top-μ choice, winner choice with the '.'
//! rule and its tie-break, position advance and growth, and early stopping.

use super::config::OptimizeConfig;

/// The indices of the `mu` candidates with the most negative gradient, best first. Ties keep the
/// lower candidate index, so the order is reproducible.
pub fn top_mu(grad: &[f32], mu: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..grad.len()).collect();
    order.sort_by(|&a, &b| grad[a].total_cmp(&grad[b]).then(a.cmp(&b)));
    order.truncate(mu);
    order
}

/// Whether the '.' early-accept rule applies to a candidate whose text is `text` at prompt position
/// `position`: the text holds a '.' and the position is at least `fraction` of the initial length.
pub fn dot_rule_applies(text: &str, position: usize, initial_len: usize, fraction: f32) -> bool {
    text.contains('.') && position as f32 >= fraction * initial_len as f32
}

/// The running winner of selection, fed candidates in top-μ order.
///
/// A candidate wins when its score is **strictly** lower than the best so far, so ties go to the
/// better gradient rank (A2; the official `<=` gave them to the later one). A candidate under the
/// '.' rule wins at once, whatever its score, and ends selection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WinnerChoice {
    best: Option<(usize, f32)>,
    closed: bool,
}

/// What [`WinnerChoice::offer`] says about the candidate just offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// It is the new leader.
    Leads,
    /// It does not beat the leader.
    Trails,
    /// It won by the '.' rule: selection is over.
    WinsByDot,
}

impl WinnerChoice {
    /// Offer candidate `index` (its rank in top-μ) with `score`; `dot` says the '.' rule applies.
    ///
    /// # Panics
    /// When offered after a '.' win closed the choice (a caller bug).
    pub fn offer(&mut self, index: usize, score: f32, dot: bool) -> Offer {
        assert!(!self.closed, "selection already ended by the '.' rule");
        if dot {
            self.best = Some((index, score));
            self.closed = true;
            return Offer::WinsByDot;
        }
        if self.best.is_none_or(|(_, s)| score < s) {
            self.best = Some((index, score));
            Offer::Leads
        } else {
            Offer::Trails
        }
    }

    /// The winner's index, once a candidate was offered.
    pub fn winner(&self) -> Option<usize> {
        self.best.map(|(i, _)| i)
    }

    /// The score a later candidate must beat (strictly) to win.
    pub fn best_score(&self) -> Option<f32> {
        self.best.map(|(_, s)| s)
    }

    /// Whether the '.' rule ended selection.
    pub fn closed(&self) -> bool {
        self.closed
    }
}

/// With `keep_current` (not the paper's rule): the current token stays when selection's winner
/// does not beat it strictly and did not win by the '.' rule. The current token is offered as if
/// first, so a tie keeps it.
pub fn current_stays(current_score: f32, winner_score: f32, winner_by_dot: bool) -> bool {
    !winner_by_dot && current_score <= winner_score
}

/// Where the next step works, after the token at `position` of a prompt of `len` tokens was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// Optimise this position next.
    To(usize),
    /// The last slot got a '.'-like token: start again at position 0.
    Wrap,
    /// Append a placeholder slot and optimise it next (its position is the old length).
    Grow,
}

/// One position per step, always advancing (SPEC B.1.2 C.7): past the end, wrap to 0 when the
/// chosen token is '.'-like, otherwise grow by a placeholder slot.
pub fn advance(position: usize, len: usize, chosen_text: &str) -> Advance {
    let next = position + 1;
    if next < len {
        Advance::To(next)
    } else if chosen_text.contains('.') {
        Advance::Wrap
    } else {
        Advance::Grow
    }
}

/// What happens after a step's bookkeeping (SPEC B.1.2 C.8, with A2's restart from the best).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStep {
    /// Go on.
    Continue,
    /// The best score is below the loss threshold: the run is done.
    Finished,
    /// No improvement for `patience` steps: restart from the best prompt at position 0.
    RestartFromBest,
}

/// Early stopping from the best score so far and the steps since it last improved.
pub fn after_step(best_score: f32, since_improvement: usize, cfg: &OptimizeConfig) -> AfterStep {
    if best_score < cfg.loss_threshold {
        AfterStep::Finished
    } else if since_improvement >= cfg.patience {
        AfterStep::RestartFromBest
    } else {
        AfterStep::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_mu_takes_the_most_negative_gradients_first() {
        // Candidate 3 has the most negative gradient, then 0, then 4.
        let grad = [-0.5, 0.2, 0.9, -1.5, -0.1, 0.0];
        assert_eq!(top_mu(&grad, 3), [3, 0, 4]);
        assert_eq!(top_mu(&grad, 10), [3, 0, 4, 5, 1, 2]);
    }

    #[test]
    fn top_mu_ties_keep_the_lower_index() {
        let grad = [0.3, -1.0, 0.3, -1.0, 0.3];
        assert_eq!(top_mu(&grad, 4), [1, 3, 0, 2]);
    }

    #[test]
    fn strictly_lower_score_wins_and_ties_go_to_the_better_rank() {
        let mut w = WinnerChoice::default();
        assert_eq!(w.offer(0, 0.5, false), Offer::Leads);
        // An equal score does not take the lead: the earlier (better-ranked) candidate keeps it.
        assert_eq!(w.offer(1, 0.5, false), Offer::Trails);
        assert_eq!(w.winner(), Some(0));
        assert_eq!(w.offer(2, 0.4, false), Offer::Leads);
        assert_eq!(w.offer(3, 0.9, false), Offer::Trails);
        assert_eq!((w.winner(), w.best_score()), (Some(2), Some(0.4)));
    }

    #[test]
    fn dot_candidate_wins_at_once_whatever_its_score() {
        let mut w = WinnerChoice::default();
        w.offer(0, 0.1, false);
        assert_eq!(w.offer(1, 0.9, true), Offer::WinsByDot);
        assert_eq!(w.winner(), Some(1));
        assert!(w.closed());
    }

    #[test]
    fn the_current_token_stays_unless_beaten_strictly_or_by_the_dot_rule() {
        assert!(current_stays(0.4, 0.5, false), "the winner is worse");
        assert!(current_stays(0.5, 0.5, false), "a tie keeps the current token");
        assert!(!current_stays(0.5, 0.4, false), "the winner is better");
        assert!(!current_stays(0.1, 0.9, true), "a '.' win stands whatever the scores");
    }

    #[test]
    fn dot_rule_needs_a_dot_and_a_late_enough_position() {
        // Initial length 16, fraction 0.5: from position 8 on.
        assert!(!dot_rule_applies(".", 7, 16, 0.5));
        assert!(dot_rule_applies(".", 8, 16, 0.5));
        assert!(dot_rule_applies(" step.", 12, 16, 0.5));
        assert!(!dot_rule_applies(" step", 12, 16, 0.5));
    }

    #[test]
    fn position_advances_wraps_on_dot_and_grows_otherwise() {
        assert_eq!(advance(0, 5, " think"), Advance::To(1));
        assert_eq!(advance(3, 5, "."), Advance::To(4));
        assert_eq!(advance(4, 5, "."), Advance::Wrap);
        assert_eq!(advance(4, 5, " answer"), Advance::Grow);
    }

    #[test]
    fn early_stopping_finishes_below_threshold_and_restarts_after_patience() {
        let cfg = OptimizeConfig { loss_threshold: 0.12, patience: 3, ..Default::default() };
        assert_eq!(after_step(0.11, 0, &cfg), AfterStep::Finished);
        assert_eq!(after_step(0.12, 0, &cfg), AfterStep::Continue);
        assert_eq!(after_step(0.5, 2, &cfg), AfterStep::Continue);
        assert_eq!(after_step(0.5, 3, &cfg), AfterStep::RestartFromBest);
        // Below the threshold wins over patience.
        assert_eq!(after_step(0.05, 9, &cfg), AfterStep::Finished);
    }
}
