//! One optimisation step: the phases in order, each a function of the step's context.

use std::time::Instant;

use greater_grad::{GradExample, TrainSequence, token_gradients, token_gradients_with_variants};
use std::sync::Arc;

use greater_models::engine::{Prefix, prefill_prefixes};
use greater_models::tokenizer::Tokenizer;

use super::config::{AnswerTarget, GradientThrough, OptimizeConfig};
use super::decide::{Advance, AfterStep, advance, after_step, top_mu};
use super::event::{Attribution, PhaseSeconds, StepCost, StepEvent};
use super::proposal::{position_logits, propose};
use super::select::{Selection, keep_current, select};
use super::select_fast::{add_stats, engine_options};
use super::state::{Driver, RunState, ScoredPrompt, StepSummary};
use super::{Prepared, Run, step_seed};
use crate::OptError;
use crate::rollout::{generate_all, generate_with_engine, reasoning_jobs};

/// What every phase of a step reads: the run, the train examples, the state it starts from and the
/// position it optimises.
pub(super) struct StepContext<'a> {
    pub run: &'a Run<'a>,
    pub prep: &'a Prepared,
    pub state: &'a RunState,
    /// The prompt position optimised (within the prompt).
    pub pos: usize,
}

impl<'a> StepContext<'a> {
    fn new(run: &'a Run<'a>, prep: &'a Prepared, state: &'a RunState) -> Result<Self, OptError> {
        if state.control.is_empty() {
            return Err(OptError::Invalid("the checkpoint holds an empty prompt".into()));
        }
        let pos = state.position.min(state.control.len() - 1);
        Ok(Self { run, prep, state, pos })
    }

    pub fn cfg(&self) -> &OptimizeConfig {
        self.run.cfg
    }

    pub fn tok(&self) -> &Tokenizer {
        &self.run.loaded.tokenizer
    }

    /// Train examples.
    pub fn n(&self) -> usize {
        self.prep.examples.len()
    }

    pub fn current_token(&self) -> u32 {
        self.state.control[self.pos]
    }

    /// The current prompt with `token` at the optimised position.
    pub fn with_token(&self, token: u32) -> Vec<u32> {
        let mut c = self.state.control.clone();
        c[self.pos] = token;
        c
    }

    /// Greedy reasoning of every train example with the prompt `control`: by the engine
    /// (continuously batched) when speed-ups are on, its counts added to `cost`.
    pub fn reasoning_for(&self, control: &[u32], cost: &mut StepCost) -> Result<Vec<Vec<u32>>, OptError> {
        let prompts: Vec<Vec<u32>> = self.prep.layouts.iter().map(|l| l.generation_prompt(control)).collect();
        let cfg = self.cfg();
        let stop = self.tok().stop_ids();
        if cfg.accelerated() {
            let opts = engine_options(cfg, stop, false);
            let model = &self.run.loaded.model;
            let stopped = || OptError::Interrupted(self.run.dir.clone());
            let jobs = reasoning_jobs(&prompts, &[]);
            let (out, stats) = generate_with_engine(model, &jobs, &opts, self.run.observer, &stopped)?;
            add_stats(cost, &stats);
            return Ok(out.into_iter().map(|f| f.ids).collect());
        }
        let out = generate_all(
            &self.run.loaded.model,
            &prompts,
            cfg.max_reasoning_tokens,
            stop,
            cfg.batch_size,
            self.run.observer,
        )?;
        cost.decoded_tokens += out.iter().map(Vec::len).sum::<usize>();
        Ok(out)
    }
}

/// The gradient phase's result.
struct Gradients {
    /// Summed over examples, one per candidate.
    grad: Vec<f32>,
    /// Teacher-forced mistakes of the current prompt.
    mistakes: usize,
    /// Summed loss of the current prompt.
    loss: f32,
    /// Per example, the current prompt's teacher-forced mistake flag and prompt NLL: its
    /// selection score without another forward.
    current: Vec<(bool, f32)>,
    /// Per example, its gradient over the candidates and its losses (for the attribution).
    examples: Vec<greater_grad::ExampleGrad>,
}

/// The (at most three) examples with the most negative delta: those that pushed for the change.
fn drivers(attribution: &[Attribution]) -> Vec<Driver> {
    let mut order: Vec<usize> = (0..attribution.len()).filter(|&i| attribution[i].delta < 0.0).collect();
    order.sort_by(|&a, &b| attribution[a].delta.total_cmp(&attribution[b].delta).then(a.cmp(&b)));
    order
        .into_iter()
        .take(3)
        .map(|i| Driver {
            example: i,
            delta: attribution[i].delta,
            answer_token_nll: attribution[i].answer_token_nll.clone(),
        })
        .collect()
}

/// Each example's part in the swap of the current token for `chosen`.
fn attribution(grads: &Gradients, candidates: &[u32], current: u32, chosen: u32) -> Vec<Attribution> {
    let at = |t: u32| candidates.iter().position(|&c| c == t);
    let (Some(c), Some(k)) = (at(current), at(chosen)) else { return Vec::new() };
    grads
        .examples
        .iter()
        .map(|e| Attribution {
            delta: e.grad_total[k] - e.grad_total[c],
            teacher_forced_mistake: e.mistake,
            loss: e.loss_total,
            answer_token_nll: e.answer_token_nll.clone(),
        })
        .collect()
}

/// Run step `state.step`; return the next state and the step's event.
pub(super) fn step(
    run: &Run<'_>,
    prep: &Prepared,
    banned: &[bool],
    state: &RunState,
) -> Result<(RunState, StepEvent), OptError> {
    let ctx = StepContext::new(run, prep, state)?;
    let mut seconds = PhaseSeconds::default();
    let mut pass_cost = StepCost::default();
    let reasoning = timed(&mut seconds.generation, || match &state.reasoning {
        Some(r) => Ok(r.clone()),
        None => {
            run.observer.phase("reasoning", ctx.n());
            ctx.reasoning_for(&state.control, &mut pass_cost)
        }
    })?;
    let (candidates, prefixes) = timed(&mut seconds.proposal, || candidates(&ctx, banned))?;
    let grads = timed(&mut seconds.gradient, || gradients(&ctx, &reasoning, &candidates))?;
    let top: Vec<u32> = top_mu(&grads.grad, run.cfg.mu).into_iter().map(|i| candidates[i]).collect();
    let sel = timed(&mut seconds.selection, || {
        let sel = select(&ctx, &top, &reasoning, &grads.current, prefixes.as_deref())?;
        if !run.cfg.keep_current {
            return Ok(sel);
        }
        keep_current(&ctx, sel, &reasoning, &grads.current, prefixes.as_deref())
    })?;
    let mut cost = sel.cost;
    cost.add(&pass_cost);
    let mut next = next_state(&ctx, &sel, seconds)?;
    if state.reasoning.is_none() {
        // Generated this step: kept when it is the initial prompt's (or a top prompt's).
        next.remember_reasoning(&state.control, &reasoning, &prep.initial);
    }
    let n = ctx.n() as f32;
    let chosen = &sel.scored[sel.winner];
    let attribution = attribution(&grads, &candidates, ctx.current_token(), chosen.token);
    if let Some(summary) = next.history.last_mut() {
        summary.drivers = drivers(&attribution);
    }
    let event = StepEvent {
        step: state.step,
        position: ctx.pos,
        candidate_text: candidates.iter().map(|&c| ctx.tok().decode(&[c], false)).collect::<Result<_, _>>()?,
        candidates,
        gradient: grads.grad,
        top_mu: top,
        current_token: Some(ctx.current_token()),
        chosen: chosen.token,
        chosen_text: chosen.text.clone(),
        score: chosen.score,
        mistake_rate: chosen.mistake_rate,
        prompt_nll: chosen.prompt_nll,
        current_teacher_forced_mistake_rate: grads.mistakes as f32 / n,
        current_mean_loss: grads.loss / n,
        prompt_text: ctx.tok().decode(&next.control, false)?,
        prompt_ids: next.control.clone(),
        best_score: next.best.as_ref().map_or(f32::INFINITY, |b| b.score),
        seconds,
        generated_tokens: cost.decoded_tokens,
        reasoning_reused: state.reasoning.is_some(),
        cost,
        selection: sel.scored,
        attribution,
    };
    run.observer.message(&format!("step {}: {:?} (score {:.3})", state.step + 1, event.prompt_text, event.score));
    Ok((next, event))
}

/// Time `f` into `slot`.
fn timed<T>(slot: &mut f64, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    *slot += t.elapsed().as_secs_f64();
    out
}

/// Per train example, the cached state of the prompt before the optimised position.
type Prefixes = Vec<Arc<Prefix>>;

/// Candidates at the position from the prefix forwards (SPEC B.1.2 C.2); with prefix caching on,
/// also the prefix states selection starts every candidate from.
fn candidates(ctx: &StepContext<'_>, banned: &[bool]) -> Result<(Vec<u32>, Option<Prefixes>), OptError> {
    let (cfg, control, pos) = (ctx.cfg(), &ctx.state.control, ctx.pos);
    ctx.run.observer.phase("proposal", 1);
    let prefixes: Vec<Vec<u32>> = ctx.prep.layouts.iter().map(|l| [&l.prefix[..], &control[..pos]].concat()).collect();
    let model = &ctx.run.loaded.model;
    let (logits, states) = if cfg.prefix_cache {
        let from: Vec<usize> = ctx.prep.layouts.iter().map(|l| l.prefix.len()).collect();
        let states = prefill_prefixes(model, &prefixes, &from, cfg.batch_size);
        (states.iter().map(|s| s.last_logits.clone()).collect(), Some(states))
    } else {
        (position_logits(model, &prefixes, cfg.batch_size)?, None)
    };
    let out =
        propose(&logits, banned, previous_token(control, pos), control[pos], cfg, step_seed(cfg.seed, ctx.state.step));
    ctx.run.observer.advance(1);
    Ok((out, states))
}

/// One-hot gradients through the fixed reasoning, summed over examples (SPEC B.1.2 C.3); with
/// `gradient_through = none`, over the sequences without it (the paper's ablation).
fn gradients(ctx: &StepContext<'_>, reasoning: &[Vec<u32>], candidates: &[u32]) -> Result<Gradients, OptError> {
    let cfg = ctx.cfg();
    let control = &ctx.state.control;
    let through = |r: &'_ [u32]| match cfg.gradient_through {
        GradientThrough::Reasoning => r.to_vec(),
        GradientThrough::None => Vec::new(),
    };
    let seqs: Vec<TrainSequence> =
        ctx.prep.layouts.iter().zip(reasoning).map(|(l, r)| l.sequence(control, &through(r))).collect();
    let gopts = cfg.grad_options();
    let mut out = Gradients {
        grad: vec![0.0; candidates.len()],
        mistakes: 0,
        loss: 0.0,
        current: Vec::new(),
        examples: Vec::new(),
    };
    ctx.run.observer.phase("gradient", ctx.n());
    let model = &ctx.run.loaded.model;
    for (k, chunk) in seqs.chunks(cfg.grad_batch_size).enumerate() {
        let exs: Vec<GradExample<'_>> = chunk.iter().map(|s| GradExample { seq: s, position: ctx.pos }).collect();
        let g = match cfg.answer_target {
            AnswerTarget::Official => token_gradients(model, &exs, candidates, &gopts)?,
            AnswerTarget::Variants => {
                let at = k * cfg.grad_batch_size;
                let variants = &ctx.prep.variants[at..at + chunk.len()];
                token_gradients_with_variants(model, &exs, variants, candidates, &gopts)?
            }
        };
        out.grad.iter_mut().zip(&g.grad_sum).for_each(|(s, x)| *s += x);
        out.mistakes += g.examples.iter().filter(|e| e.mistake).count();
        out.loss += g.examples.iter().map(|e| e.loss_total).sum::<f32>();
        if cfg.gradient_through == GradientThrough::Reasoning {
            // Selection reuses these as the current prompt's scores: only valid with its reasoning.
            out.current.extend(g.examples.iter().map(|e| (e.mistake, e.loss_control)));
        }
        ctx.run.observer.advance(chunk.len());
        out.examples.extend(g.examples);
    }
    Ok(out)
}

/// Bookkeeping after selection: the winner's prompt is recorded, the position advances (or the
/// prompt grows), and early stopping may finish the run or restart it from the best prompt.
fn next_state(ctx: &StepContext<'_>, sel: &Selection, seconds: PhaseSeconds) -> Result<RunState, OptError> {
    let (cfg, state, tok) = (ctx.cfg(), ctx.state, ctx.tok());
    let chosen = &sel.scored[sel.winner];
    let chosen_prompt = ctx.with_token(chosen.token);
    let mut next = state.clone();
    next.control = chosen_prompt.clone();
    next.reasoning = Some(sel.winner_reasoning.clone());
    next.position = match advance(ctx.pos, chosen_prompt.len(), &chosen.text) {
        Advance::To(p) => p,
        Advance::Wrap => 0,
        Advance::Grow => {
            next.control.push(placeholder(tok, &cfg.placeholder)?);
            // The grown prompt has no reasoning yet.
            next.reasoning = None;
            chosen_prompt.len()
        }
    };
    let scored = ScoredPrompt {
        score: chosen.score,
        text: tok.decode(&chosen_prompt, false)?,
        ids: chosen_prompt.clone(),
        step: state.step,
    };
    let improved = next.record(scored, cfg.top_prompts);
    next.remember_reasoning(&chosen_prompt, &sel.winner_reasoning, &ctx.prep.initial);
    next.since_improvement = if improved { 0 } else { state.since_improvement + 1 };
    let best_score = next.best.as_ref().map_or(f32::INFINITY, |b| b.score);
    match after_step(best_score, next.since_improvement, cfg) {
        AfterStep::Continue => {}
        AfterStep::Finished => next.finished = true,
        AfterStep::RestartFromBest => {
            let best = next.best.clone().expect("a best prompt exists after a step");
            next.control = best.ids;
            next.position = 0;
            next.reasoning = None;
            next.since_improvement = 0;
        }
    }
    next.step = state.step + 1;
    let text = tok.decode(&next.control, false)?;
    next.history.push(StepSummary {
        step: state.step,
        score: chosen.score,
        mistake_rate: chosen.mistake_rate,
        text,
        seconds,
        drivers: Vec::new(),
    });
    Ok(next)
}

/// The prompt token before position `pos`, banned from its candidates (SPEC A2: none at position
/// 0 — the official code's `control[pos - 1]` wraps around to the last token there).
fn previous_token(control: &[u32], pos: usize) -> Option<u32> {
    pos.checked_sub(1).map(|p| control[p])
}

/// The slot the prompt grows by: the last token of `text` (the official `encode("_")[-1]`).
fn placeholder(tok: &Tokenizer, text: &str) -> Result<u32, OptError> {
    let none = || OptError::Invalid(format!("config: the placeholder {text:?} encodes to no token"));
    tok.encode(text, false)?.last().copied().ok_or_else(none)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_are_the_three_most_negative_deltas_ties_by_index() {
        let a =
            |delta: f32| Attribution { delta, teacher_forced_mistake: true, loss: 1.0, answer_token_nll: vec![delta] };
        let all = [a(0.5), a(-0.2), a(-0.9), a(-0.2), a(-0.1), a(0.0)];
        let got: Vec<(usize, f32)> = drivers(&all).iter().map(|d| (d.example, d.delta)).collect();
        assert_eq!(got, [(2, -0.9), (1, -0.2), (3, -0.2)]);
        assert_eq!(drivers(&all)[0].answer_token_nll, [-0.9]);
        assert!(drivers(&[a(0.1), a(0.0)]).is_empty(), "only examples that pushed for the change");
    }

    #[test]
    fn the_previous_token_is_the_one_before_the_position_and_none_at_the_start() {
        let control = [10, 11, 12, 13];
        assert_eq!(previous_token(&control, 0), None);
        assert_eq!(previous_token(&control, 1), Some(10));
        assert_eq!(previous_token(&control, 3), Some(12));
    }

    #[test]
    fn the_placeholder_is_the_last_token_of_its_text() {
        let tok = greater_models::testing::tiny_tokenizer().unwrap();
        // Byte-level: "a_" is two tokens; the slot is the second, "_".
        let underscore = tok.encode("_", false).unwrap()[0];
        assert_eq!(placeholder(&tok, "a_").unwrap(), underscore);
        assert_eq!(placeholder(&tok, "_").unwrap(), underscore);
        assert!(placeholder(&tok, "").is_err());
    }
}
