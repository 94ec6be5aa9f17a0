//! One optimisation step.

use std::time::Instant;

use greater_grad::{GradExample, GradOptions, TrainSequence, score_sequences, token_gradients};

use super::proposal::{position_logits, propose};
use super::state::{RunState, ScoredPrompt, StepSummary};
use super::{Prepared, Run, step_seed};
use crate::OptError;
use crate::rollout::generate_all;

/// A candidate's selection result.
#[derive(Debug, Clone, serde::Serialize)]
struct Scored {
    token: u32,
    text: String,
    score: f32,
    mistake_rate: f32,
    prompt_nll: f32,
}

/// Run step `state.step`; return the next state and the step's event.
pub(super) fn step(
    run: &Run<'_>,
    prep: &Prepared,
    banned: &[bool],
    state: &RunState,
) -> Result<(RunState, serde_json::Value), OptError> {
    let cfg = run.cfg;
    let model = &run.loaded.model;
    let tok = &run.loaded.tokenizer;
    let obs = run.observer;
    let mut next = state.clone();
    let control = state.control.clone();
    let pos = state.position.min(control.len() - 1);
    let n = prep.examples.len();
    let gen_prompts = |c: &[u32]| -> Vec<Vec<u32>> { prep.layouts.iter().map(|l| l.generation_prompt(c)).collect() };
    let mut seconds = [0.0f64; 4];
    let mut generated = 0usize;

    // 1. Reasoning with the current prompt, unless the last winner's is at hand.
    let t = Instant::now();
    let reasoning = match &state.reasoning {
        Some(r) => r.clone(),
        None => {
            obs.phase("reasoning", n);
            let r = generate_all(
                model,
                &gen_prompts(&control),
                cfg.max_reasoning_tokens,
                tok.stop_ids(),
                cfg.batch_size,
                obs,
            )?;
            generated += r.iter().map(Vec::len).sum::<usize>();
            r
        }
    };
    seconds[0] += t.elapsed().as_secs_f64();

    // 2. Candidates from the prefix forwards.
    let t = Instant::now();
    obs.phase("proposal", 1);
    let prefixes: Vec<Vec<u32>> = prep.layouts.iter().map(|l| [&l.prefix[..], &control[..pos]].concat()).collect();
    let logits = position_logits(model, &prefixes, cfg.batch_size);
    let previous = (pos > 0).then(|| control[pos - 1]);
    let candidates = propose(&logits, banned, previous, control[pos], cfg, step_seed(cfg.seed, state.step));
    obs.advance(1);
    seconds[1] += t.elapsed().as_secs_f64();

    // 3. Gradients through the fixed reasoning, summed over examples.
    let t = Instant::now();
    let seqs: Vec<TrainSequence> = prep.layouts.iter().zip(&reasoning).map(|(l, r)| l.sequence(&control, r)).collect();
    let gopts = GradOptions { answer_temperature: cfg.answer_temperature, control_weight: cfg.control_weight };
    let mut grad = vec![0.0f32; candidates.len()];
    let (mut current_mistakes, mut current_loss) = (0usize, 0.0f32);
    obs.phase("gradient", n);
    for chunk in seqs.chunks(cfg.grad_batch_size) {
        let exs: Vec<GradExample<'_>> = chunk.iter().map(|s| GradExample { seq: s, position: pos }).collect();
        let out = token_gradients(model, &exs, &candidates, &gopts)?;
        grad.iter_mut().zip(&out.grad_sum).for_each(|(g, x)| *g += x);
        current_mistakes += out.examples.iter().filter(|e| e.mistake).count();
        current_loss += out.examples.iter().map(|e| e.loss_total).sum::<f32>();
        obs.advance(chunk.len());
    }
    seconds[2] += t.elapsed().as_secs_f64();

    // 4. Top-μ by −gradient; ties keep the lower candidate index.
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| grad[a].total_cmp(&grad[b]).then(a.cmp(&b)));
    let top: Vec<u32> = order.iter().take(cfg.mu).map(|&i| candidates[i]).collect();

    // 5. Selection with regenerated reasoning.
    let t = Instant::now();
    let mut scored: Vec<Scored> = Vec::new();
    let mut winner: Option<(usize, Vec<Vec<u32>>)> = None;
    let dot_from = cfg.dot_rule_fraction * state.initial_len as f32;
    for &c in &top {
        if obs.should_stop() {
            return Err(OptError::Interrupted(run.dir.clone()));
        }
        let mut cand = control.clone();
        cand[pos] = c;
        let r = if c == control[pos] {
            reasoning.clone()
        } else {
            obs.phase("selection", n);
            let r = generate_all(
                model,
                &gen_prompts(&cand),
                cfg.max_reasoning_tokens,
                tok.stop_ids(),
                cfg.batch_size,
                obs,
            )?;
            generated += r.iter().map(Vec::len).sum::<usize>();
            r
        };
        let seqs: Vec<TrainSequence> = prep.layouts.iter().zip(&r).map(|(l, r)| l.sequence(&cand, r)).collect();
        let s = score_sequences(model, &seqs, &gopts, cfg.grad_batch_size)?;
        let mistake_rate = s.iter().filter(|x| x.mistake).count() as f32 / n as f32;
        let prompt_nll = s.iter().map(|x| x.loss_control).sum::<f32>() / n as f32;
        let score = mistake_rate + cfg.selection_nll_weight * prompt_nll;
        let text = tok.decode(&[c], false)?;
        let is_dot = text.contains('.') && pos as f32 >= dot_from;
        scored.push(Scored { token: c, text, score, mistake_rate, prompt_nll });
        let k = scored.len() - 1;
        // Strictly lower wins, so ties go to the better gradient rank (SPEC A2).
        if winner.as_ref().is_none_or(|(w, _)| score < scored[*w].score) || is_dot {
            winner = Some((k, r));
        }
        if is_dot {
            break;
        }
    }
    seconds[3] += t.elapsed().as_secs_f64();
    let (w, win_reasoning) = winner.expect("at least one candidate is scored");
    let chosen = scored[w].clone();
    // The prompt the winner scored; the next step's prompt may grow from it.
    let mut chosen_prompt = control.clone();
    chosen_prompt[pos] = chosen.token;
    let mut new_control = chosen_prompt.clone();

    // 6. Advance; grow the prompt by a placeholder slot at the end.
    let mut reasoning_next = Some(win_reasoning);
    let mut new_pos = pos + 1;
    if new_pos >= new_control.len() {
        if chosen.text.contains('.') {
            new_pos = 0;
        } else {
            let placeholder = *tok
                .encode("_", false)?
                .last()
                .ok_or_else(|| OptError::Invalid("cannot encode the placeholder `_`".into()))?;
            new_control.push(placeholder);
            reasoning_next = None;
        }
    }

    // 7. Tracking and early stopping.
    let text = tok.decode(&new_control, false)?;
    let scored_prompt = ScoredPrompt {
        score: chosen.score,
        text: tok.decode(&chosen_prompt, false)?,
        ids: chosen_prompt,
        step: state.step,
    };
    let improved = next.record(scored_prompt, cfg.top_prompts);
    next.since_improvement = if improved { 0 } else { state.since_improvement + 1 };
    next.control = new_control.clone();
    next.position = new_pos;
    next.reasoning = reasoning_next;
    let best_score = next.best.as_ref().map_or(f32::INFINITY, |b| b.score);
    if best_score < cfg.loss_threshold {
        next.finished = true;
    } else if next.since_improvement >= cfg.patience {
        // Restart from the best prompt (the official code restarts from the last one).
        let best = next.best.clone().expect("a best prompt exists after a step");
        next.control = best.ids;
        next.position = 0;
        next.reasoning = None;
        next.since_improvement = 0;
    }
    next.step = state.step + 1;
    next.history.push(StepSummary {
        step: state.step,
        score: chosen.score,
        mistake_rate: chosen.mistake_rate,
        text: text.clone(),
        seconds,
    });
    let cand_text: Vec<String> = candidates.iter().map(|&c| tok.decode(&[c], false)).collect::<Result<_, _>>()?;
    let event = serde_json::json!({
        "step": state.step,
        "position": pos,
        "candidates": candidates,
        "candidate_text": cand_text,
        "gradient": grad,
        "top_mu": top,
        "selection": scored,
        "chosen": chosen.token,
        "chosen_text": chosen.text,
        "score": chosen.score,
        "mistake_rate": chosen.mistake_rate,
        "prompt_nll": chosen.prompt_nll,
        "current_teacher_forced_mistake_rate": current_mistakes as f32 / n as f32,
        "current_mean_loss": current_loss / n as f32,
        "prompt_ids": new_control,
        "prompt_text": text,
        "best_score": best_score,
        "seconds": { "generation": seconds[0], "proposal": seconds[1], "gradient": seconds[2], "selection": seconds[3] },
        "generated_tokens": generated,
    });
    obs.message(&format!("step {}: {:?} (score {:.3})", state.step + 1, text, chosen.score));
    Ok((next, event))
}
