//! Selection (SPEC B.1.2 C.5–C.6): the top-μ candidates in gradient order, each scored with its own
//! regenerated reasoning (mistake rate + w · prompt NLL); the winner by [`WinnerChoice`].

use std::sync::Arc;

use greater_grad::{TrainSequence, score_sequences};
use greater_models::engine::Prefix;

use super::config::SelectionMistake;
use super::decide::{Offer, WinnerChoice, current_stays, dot_rule_applies};
use super::event::{CandidateScore, StepCost};
use super::select_fast::score_current;
use super::step::StepContext;
use crate::OptError;
use crate::answer_pass::answer_pass;

/// The outcome of selection.
#[derive(Debug, Clone)]
pub(super) struct Selection {
    /// The scored candidates, in top-μ order (fewer than μ when the '.' rule ended selection).
    pub scored: Vec<CandidateScore>,
    /// Index of the winner in `scored`.
    pub winner: usize,
    /// The winner's reasoning per train example.
    pub winner_reasoning: Vec<Vec<u32>>,
    /// What generation cost and the speed-ups saved.
    pub cost: StepCost,
}

/// Score `top` (candidate ids, best gradient first). `reasoning` is the current prompt's, reused
/// for the current token; `current` its per-example flags and NLLs from the gradient pass. With any speed-up on, [`super::select_fast`] does it; its decisions are
/// those of the plain path below.
pub(super) fn select(
    ctx: &StepContext<'_>,
    top: &[u32],
    reasoning: &[Vec<u32>],
    current: &[(bool, f32)],
    prefixes: Option<&[Arc<Prefix>]>,
) -> Result<Selection, OptError> {
    if ctx.cfg().accelerated() {
        return super::select_fast::select(ctx, top, reasoning, current, prefixes);
    }
    let cfg = ctx.cfg();
    let mut choice = WinnerChoice::default();
    let mut scored = Vec::with_capacity(top.len());
    let mut winner_reasoning = None;
    let mut generated = 0;
    for &c in top {
        if ctx.run.observer.should_stop() {
            return Err(OptError::Interrupted(ctx.run.dir.clone()));
        }
        let cand = ctx.with_token(c);
        let r = if c == ctx.current_token() {
            reasoning.to_vec()
        } else {
            ctx.run.observer.phase("selection", ctx.n());
            let r = ctx.reasoning_for(&cand, &mut StepCost::default())?;
            generated += r.iter().map(Vec::len).sum::<usize>();
            r
        };
        let s = score_candidate(ctx, &cand, &r)?;
        let text = ctx.tok().decode(&[c], false)?;
        let dot = dot_rule_applies(&text, ctx.pos, ctx.state.initial_len, cfg.dot_rule_fraction);
        let offer = choice.offer(scored.len(), s.score, dot);
        scored.push(CandidateScore { token: c, text, ..s });
        if offer != Offer::Trails {
            winner_reasoning = Some(r);
        }
        if offer == Offer::WinsByDot {
            break;
        }
    }
    let winner = choice.winner().ok_or_else(|| OptError::Invalid("selection got no candidate".into()))?;
    let winner_reasoning = winner_reasoning.expect("the winner's reasoning is kept");
    let cost = StepCost { decoded_tokens: generated, ..StepCost::default() };
    Ok(Selection { scored, winner, winner_reasoning, cost })
}

/// With `keep_current`: the current token against selection's winner ([`current_stays`]). Unless
/// the winner won by the '.' rule, the current token's score is known (scored among the top-μ) or
/// computed from its reasoning and appended to `scored`, and it becomes the winner, with its
/// reasoning, when the winner does not beat it strictly.
pub(super) fn keep_current(
    ctx: &StepContext<'_>,
    mut sel: Selection,
    reasoning: &[Vec<u32>],
    current: &[(bool, f32)],
    prefixes: Option<&[Arc<Prefix>]>,
) -> Result<Selection, OptError> {
    let cfg = ctx.cfg();
    let token = ctx.current_token();
    let winner = &sel.scored[sel.winner];
    let by_dot = dot_rule_applies(&winner.text, ctx.pos, ctx.state.initial_len, cfg.dot_rule_fraction);
    if winner.token == token || by_dot {
        return Ok(sel);
    }
    let winner_score = winner.score;
    let at = match sel.scored.iter().position(|s| s.token == token && s.pruned_after.is_none()) {
        Some(at) => at,
        None => {
            let s = score_current(ctx, reasoning, current, prefixes, &mut sel.cost)?;
            sel.scored.push(CandidateScore { token, text: ctx.tok().decode(&[token], false)?, ..s });
            sel.scored.len() - 1
        }
    };
    if current_stays(sel.scored[at].score, winner_score, false) {
        sel.winner = at;
        sel.winner_reasoning = reasoning.to_vec();
    }
    Ok(sel)
}

/// The selection score of prompt `cand` with its reasoning `r` (token and text are filled in by
/// the caller): teacher-forced over the whole sequence, or from the graded answer pass.
pub(super) fn score_candidate(ctx: &StepContext<'_>, cand: &[u32], r: &[Vec<u32>]) -> Result<CandidateScore, OptError> {
    let cfg = ctx.cfg();
    let n = ctx.n() as f32;
    let model = &ctx.run.loaded.model;
    let rate = |flags: &mut dyn Iterator<Item = bool>| flags.filter(|&m| m).count() as f32 / n;
    let (mistake_rate, prompt_nll, teacher_forced, graded, disagree) = match cfg.selection_mistake {
        SelectionMistake::TeacherForced => {
            let seqs: Vec<TrainSequence> = ctx.prep.layouts.iter().zip(r).map(|(l, r)| l.sequence(cand, r)).collect();
            let gopts = cfg.grad_options();
            let s = score_sequences(model, &seqs, &gopts, cfg.grad_batch_size)?;
            let tf = rate(&mut s.iter().map(|x| x.mistake));
            (tf, s.iter().map(|x| x.loss_control).sum::<f32>() / n, Some(tf), None, None)
        }
        SelectionMistake::Graded => {
            let (layouts, examples) = (&ctx.prep.layouts, &ctx.prep.examples);
            let spec = &ctx.run.task.spec;
            let out = answer_pass(model, ctx.tok(), spec, layouts, examples, cand, r, cfg.batch_size)?;
            let graded = rate(&mut out.iter().map(|o| o.graded_mistake));
            let tf = rate(&mut out.iter().map(|o| o.teacher_forced_mistake));
            let disagree = out.iter().filter(|o| o.graded_mistake != o.teacher_forced_mistake).count();
            (graded, out.iter().map(|o| o.prompt_nll).sum::<f32>() / n, Some(tf), Some(graded), Some(disagree))
        }
    };
    let score = mistake_rate + cfg.selection_nll_weight * prompt_nll;
    Ok(CandidateScore {
        token: 0,
        text: String::new(),
        score,
        mistake_rate,
        prompt_nll,
        teacher_forced_mistake_rate: teacher_forced,
        graded_mistake_rate: graded,
        flag_disagreements: disagree,
        pruned_after: None,
    })
}
