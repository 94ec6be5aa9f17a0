//! The loop on a tiny random model built in memory (no file from outside the test): its decisions
//! follow the rules step by step, and a run interrupted and resumed equals an uninterrupted one.

use std::path::Path;

use greater_models::config::Family;
use greater_models::model::LoadedModel;
use greater_models::testing::tiny_loaded;
use std::cell::Cell;

use greater_opt::optimize::{OptimizeConfig, Run, RunState, StepEvent};
use greater_opt::{NoObserver, Observer, OptError};
use greater_tasks::Task;

fn task() -> Task {
    greater_tasks::load_task("gen/boolean_expressions", Path::new("/nonexistent")).unwrap()
}

/// Short prompt, '.' in it, every candidate re-scored, and the '.' rule from position 0, so that a
/// few steps exercise top-μ, the winner choice, the '.' rule and growth.
fn config(steps: usize) -> OptimizeConfig {
    OptimizeConfig {
        steps,
        train: 3,
        initial_prompt: "go. ok".into(),
        max_reasoning_tokens: 5,
        mu: 64,
        top_k: 4,
        min_candidates: 3,
        dot_rule_fraction: 0.0,
        batch_size: 2,
        grad_batch_size: 2,
        final_eval: false,
        ..Default::default()
    }
    // The rules are read off the plain path's events (every candidate scored in top-μ order);
    // fast_selection.rs shows the fast path makes the same decisions.
    .without_accelerations()
}

fn optimize(loaded: &LoadedModel, task: &Task, cfg: &OptimizeConfig, dir: &Path, resume: bool) -> RunState {
    let run = Run { loaded, task, cfg, dir: dir.to_path_buf(), observer: &NoObserver };
    let prep = run.prepare().unwrap();
    run.optimize(&prep, resume).unwrap()
}

/// Asks to stop (as Ctrl-C does) once `after` steps have reported.
struct StopAfter {
    after: usize,
    steps: Cell<usize>,
}

impl Observer for StopAfter {
    fn message(&self, text: &str) {
        if text.starts_with("step ") {
            self.steps.set(self.steps.get() + 1);
        }
    }
    fn should_stop(&self) -> bool {
        self.steps.get() >= self.after
    }
}

fn events(dir: &Path) -> Vec<StepEvent> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The winner by the rules, recomputed from the event: the first '.'-like candidate ends selection
/// and wins (the rule applies from position 0 here); otherwise the lowest score, the earlier on ties.
fn expected_winner(e: &StepEvent) -> usize {
    if let Some(dot) = e.selection.iter().position(|s| s.text.contains('.')) {
        return dot;
    }
    let mut best = 0;
    for (k, s) in e.selection.iter().enumerate() {
        if s.score < e.selection[best].score {
            best = k;
        }
    }
    best
}

#[test]
fn every_step_follows_the_rules() {
    let loaded = tiny_loaded(Family::Llama, 11).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(7);
    let state = optimize(&loaded, &task(), &cfg, dir.path(), false);
    let events = events(dir.path());
    assert_eq!(events.len(), 7);
    assert_eq!(state.step, 7);
    let (mut dot_wins, mut score_wins, mut grown) = (0, 0, 0);
    for (i, e) in events.iter().enumerate() {
        // Top-μ: the candidates by ascending gradient, ties by index (μ covers them all here).
        let mut order: Vec<usize> = (0..e.candidates.len()).collect();
        order.sort_by(|&a, &b| e.gradient[a].partial_cmp(&e.gradient[b]).unwrap().then(a.cmp(&b)));
        let want: Vec<u32> = order.iter().map(|&k| e.candidates[k]).collect();
        assert_eq!(e.top_mu, want, "step {i}: top-μ is not the ascending-gradient order");
        let scored: Vec<u32> = e.selection.iter().map(|s| s.token).collect();
        assert_eq!(scored[..], want[..scored.len()], "step {i}: selection follows top-μ order");
        // The winner.
        let w = expected_winner(e);
        assert_eq!(e.chosen, e.selection[w].token, "step {i}: wrong winner");
        if e.selection[w].text.contains('.') {
            assert_eq!(w + 1, e.selection.len(), "step {i}: selection goes on after a '.' win");
            dot_wins += 1;
        } else {
            assert_eq!(e.selection.len(), e.top_mu.len(), "step {i}: candidates left unscored");
            score_wins += 1;
        }
        // Position advance and growth, read off the next event.
        if let Some(next) = events.get(i + 1) {
            let len = e.prompt_ids.len();
            if e.position + 1 < len {
                assert_eq!(next.position, e.position + 1, "step {i}");
            } else if e.chosen_text.contains('.') {
                assert_eq!(next.position, 0, "step {i}: a '.' in the last slot wraps");
            } else {
                panic!("step {i}: the prompt must have grown");
            }
        }
        if i > 0 && e.prompt_ids.len() > events[i - 1].prompt_ids.len() {
            grown += 1;
        }
    }
    // The settings make every rule fire at least once, so a broken rule cannot hide.
    assert!(dot_wins > 0 && score_wins > 0, "dot wins {dot_wins}, score wins {score_wins}");
    assert!(grown > 0 || events.iter().any(|e| e.position + 1 == e.prompt_ids.len()), "no growth exercised");
    let best = state.best.unwrap();
    assert!(events.iter().all(|e| e.score >= best.score));
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let loaded = tiny_loaded(Family::Qwen2, 5).unwrap();
    let task = task();
    let whole = tempfile::tempdir().unwrap();
    let a = optimize(&loaded, &task, &config(4), whole.path(), false);
    let split = tempfile::tempdir().unwrap();
    let stop = StopAfter { after: 2, steps: Cell::new(0) };
    let run = Run { loaded: &loaded, task: &task, cfg: &config(4), dir: split.path().to_path_buf(), observer: &stop };
    let prep = run.prepare().unwrap();
    assert!(matches!(run.optimize(&prep, false), Err(OptError::Interrupted(_))));
    assert_eq!(events(split.path()).len(), 2);
    // A step that did not finish leaves a partial line: resume cuts it away.
    let partial = r#"{"step": 2, "position""#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(split.path().join("events.jsonl"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, partial.as_bytes()))
        .unwrap();
    let b = optimize(&loaded, &task, &config(4), split.path(), true);
    let (ea, eb) = (events(whole.path()), events(split.path()));
    assert_eq!(ea.len(), 4);
    let decisions = |e: &[StepEvent]| -> Vec<_> {
        e.iter().map(|x| (x.position, x.candidates.clone(), x.top_mu.clone(), x.chosen, x.prompt_ids.clone())).collect()
    };
    assert_eq!(decisions(&ea), decisions(&eb));
    let scores = |e: &[StepEvent]| -> Vec<f32> { e.iter().flat_map(|x| x.selection.iter().map(|s| s.score)).collect() };
    assert_eq!(scores(&ea), scores(&eb));
    assert_eq!((a.control, a.best, a.top), (b.control, b.best, b.top));
}

#[test]
fn graded_selection_with_variant_loss_reports_both_flags() {
    use greater_opt::optimize::{AnswerTarget, SelectionMistake};
    let loaded = tiny_loaded(Family::Llama, 11).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = OptimizeConfig {
        answer_target: AnswerTarget::Variants,
        selection_mistake: SelectionMistake::Graded,
        ..config(2)
    };
    optimize(&loaded, &task(), &cfg, dir.path(), false);
    for e in events(dir.path()) {
        for s in &e.selection {
            let graded = s.graded_mistake_rate.expect("graded rate reported");
            assert!(s.teacher_forced_mistake_rate.is_some());
            assert_eq!(s.mistake_rate, graded, "the graded flag is the one scored");
        }
    }
}

#[test]
fn gradient_through_none_takes_the_gradient_without_the_reasoning() {
    use greater_grad::{GradExample, GradOptions, token_gradients};
    use greater_opt::optimize::GradientThrough;
    let loaded = tiny_loaded(Family::Llama, 11).unwrap();
    let task = task();
    let mut gradients = Vec::new();
    for through in [GradientThrough::None, GradientThrough::Reasoning] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = OptimizeConfig { gradient_through: through, ..config(1) };
        optimize(&loaded, &task, &cfg, dir.path(), false);
        let e = events(dir.path()).remove(0);
        let run = Run { loaded: &loaded, task: &task, cfg: &cfg, dir: dir.path().to_path_buf(), observer: &NoObserver };
        let prep = run.prepare().unwrap();
        let bare: Vec<_> = prep.layouts.iter().map(|l| l.sequence(&prep.initial, &[])).collect();
        let exs: Vec<GradExample<'_>> = bare.iter().map(|s| GradExample { seq: s, position: 0 }).collect();
        let want = token_gradients(&loaded.model, &exs, &e.candidates, &GradOptions::default()).unwrap().grad_sum;
        let differs = e.gradient.iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-4);
        gradients.push((differs, e.gradient));
    }
    // Without reasoning the event's gradient is the bare sequences' one; with it, another.
    assert!(!gradients[0].0, "gradient_through = none used the reasoning: {:?}", gradients[0].1);
    assert!(gradients[1].0, "the reasoning changed nothing: the comparison is blind");
}

#[test]
fn attribution_splits_the_chosen_swap_over_the_examples() {
    let loaded = tiny_loaded(Family::Llama, 11).unwrap();
    let task = task();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(3);
    optimize(&loaded, &task, &cfg, dir.path(), false);
    let run = Run { loaded: &loaded, task: &task, cfg: &cfg, dir: dir.path().to_path_buf(), observer: &NoObserver };
    let mut before = run.prepare().unwrap().initial;
    for e in events(dir.path()) {
        assert_eq!(e.attribution.len(), cfg.train, "one entry per training example");
        let at = |t: u32| e.candidates.iter().position(|&c| c == t).unwrap();
        let (current, chosen) = (at(before[e.position]), at(e.chosen));
        let want = e.gradient[chosen] - e.gradient[current];
        let got: f32 = e.attribution.iter().map(|a| a.delta).sum();
        assert!((got - want).abs() < 1e-3 * want.abs().max(1.0), "step {}: {got} vs {want}", e.step);
        assert!(e.attribution.iter().all(|a| !a.answer_token_nll.is_empty() && a.loss.is_finite()));
        before = e.prompt_ids.clone();
    }
}

#[test]
fn the_dot_rule_waits_for_its_fraction_of_the_initial_length() {
    // "ab.. ok" is 7 byte tokens: with fraction 0.4 a '.' candidate wins at once from position 2.8
    // on, so at 3 (current token '.') but not at 2 (current token '.' too), where it is scored
    // like any other (SPEC C.6).
    let (mut waited, mut applied) = (0, 0);
    for seed in [11, 3, 7] {
        let cfg = OptimizeConfig { dot_rule_fraction: 0.4, initial_prompt: "ab.. ok".into(), ..config(10) };
        let (_, events) = seeded_run(seed, &cfg);
        for (i, e) in events.iter().enumerate() {
            let applies = |text: &str| text.contains('.') && e.position >= 3;
            let winner = match e.selection.iter().position(|s| applies(&s.text)) {
                Some(dot) => {
                    applied += 1;
                    assert_eq!(dot + 1, e.selection.len(), "seed {seed} step {i}: selection goes on after a '.' win");
                    dot
                }
                None => {
                    waited += e.selection.iter().filter(|s| s.text.contains('.')).count();
                    assert_eq!(e.selection.len(), e.top_mu.len(), "seed {seed} step {i}: a '.' ended selection early");
                    let better = |b: usize, k: usize| if e.selection[k].score < e.selection[b].score { k } else { b };
                    (0..e.selection.len()).fold(0, better)
                }
            };
            assert_eq!(e.chosen, e.selection[winner].token, "seed {seed} step {i}: wrong winner");
        }
    }
    assert!(waited > 0 && applied > 0, "'.' scored below the threshold {waited} times, won above it {applied}");
}

#[test]
fn a_best_score_under_the_loss_threshold_ends_the_run() {
    // The tiny model's scores are about 1 (every answer a mistake): a threshold of 10 ends at once.
    let loaded = tiny_loaded(Family::Llama, 11).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = OptimizeConfig { loss_threshold: 10.0, ..config(5) };
    let state = optimize(&loaded, &task(), &cfg, dir.path(), false);
    assert_eq!(events(dir.path()).len(), 1);
    assert!(state.finished && state.step == 1);
}

#[test]
fn without_improvement_for_patience_steps_the_run_restarts_from_the_best_prompt() {
    // SPEC A2: early stopping restarts from the best prompt (not the last) at position 0, with
    // fresh reasoning; a step that moves on without growing reuses the winner's reasoning.
    let (mut restarts_elsewhere, mut grown) = (0, 0);
    for seed in [11, 3, 7] {
        // μ = 2 leaves the current token out of selection at times, so a step can take a worse
        // prompt; patience 2 lets such a prompt stand for a step before the restart.
        let cfg = OptimizeConfig { patience: 2, mu: 2, ..config(12) };
        let (loaded, events) = seeded_run(seed, &cfg);
        assert!(!events[0].reasoning_reused, "the first step generates");
        let mut best: Option<(f32, Vec<u32>)> = None;
        let mut since = 0;
        // `prompt_ids` is the prompt the next step starts from.
        let mut control = loaded_prompt(&loaded, &cfg.initial_prompt);
        for (i, e) in events.iter().enumerate() {
            let mut chosen = control.clone();
            chosen[e.position] = e.chosen;
            let improved = best.as_ref().is_none_or(|(s, _)| e.score < *s);
            if improved {
                best = Some((e.score, chosen.clone()));
            }
            since = if improved { 0 } else { since + 1 };
            let Some(next) = events.get(i + 1) else { break };
            let at = format!("seed {seed} step {}", i + 1);
            if since < cfg.patience {
                let grew = e.prompt_ids.len() > chosen.len();
                grown += grew as usize;
                if grew {
                    let slot = *loaded_prompt(&loaded, &cfg.placeholder).last().unwrap();
                    assert_eq!(e.prompt_ids[chosen.len()..], [slot], "{at}: the prompt grows by the placeholder");
                }
                assert_eq!(e.prompt_ids[..chosen.len()], chosen[..], "{at}: the run goes on from the chosen prompt");
                assert_eq!(next.reasoning_reused, !grew, "{at}: reused exactly when the prompt did not grow");
            } else {
                since = 0;
                let best_ids = &best.as_ref().unwrap().1;
                restarts_elsewhere += (chosen != *best_ids) as usize;
                assert_eq!(&e.prompt_ids, best_ids, "{at}: the run restarts from the best prompt");
                assert_eq!(next.position, 0, "{at}: a restart works at position 0");
                assert!(!next.reasoning_reused, "{at}: a restarted prompt's reasoning is generated anew");
            }
            control = e.prompt_ids.clone();
        }
    }
    assert!(
        restarts_elsewhere > 0 && grown > 0,
        "restarts away from the last prompt {restarts_elsewhere}, growths {grown}"
    );
}

/// The ids of `prompt` as the run lays them out (the tiny tokenizer: one per byte).
fn loaded_prompt(loaded: &LoadedModel, prompt: &str) -> Vec<u32> {
    loaded.tokenizer.encode(prompt, false).unwrap()
}

/// A run of `cfg` on the tiny Llama of `seed`: the model and the run's events.
fn seeded_run(seed: u64, cfg: &OptimizeConfig) -> (LoadedModel, Vec<StepEvent>) {
    let loaded = tiny_loaded(Family::Llama, seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    optimize(&loaded, &task(), cfg, dir.path(), false);
    let events = events(dir.path());
    (loaded, events)
}

/// `keep_current` (an experiment, not the paper's rule): the current token, scored after the
/// top-μ when they left it out, stays unless a '.' win or a strictly lower score takes its place.
#[test]
fn keep_current_keeps_the_token_unless_a_candidate_beats_it() {
    // A model and seed under which the current token sometimes beats the top-μ candidate.
    let loaded = tiny_loaded(Family::Llama, 5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // μ = 1 of more candidates, so the current token is mostly not among those scored.
    let cfg = OptimizeConfig { mu: 1, keep_current: true, ..config(8) };
    optimize(&loaded, &task(), &cfg, dir.path(), false);
    let (mut kept, mut changed, mut appended) = (0, 0, 0);
    for (i, e) in events(dir.path()).iter().enumerate() {
        let current = e.current_token.expect("the event names the current token");
        // The scored top-μ come first, in their order; the current token may follow.
        let k = e.selection.iter().zip(&e.top_mu).take_while(|(s, t)| s.token == **t).count();
        let top = StepEvent { selection: e.selection[..k].to_vec(), ..e.clone() };
        let w = &top.selection[expected_winner(&top)];
        // The '.' rule applies from position 0 here.
        let dot_win = w.text.contains('.');
        if k < e.selection.len() {
            assert_eq!(
                (e.selection.len(), e.selection[k].token),
                (k + 1, current),
                "step {i}: only the current token follows"
            );
            assert!(!e.top_mu.contains(&current), "step {i}: the current token was scored twice");
            appended += 1;
        }
        let want = if dot_win || w.token == current {
            w.token
        } else {
            let c = e.selection.iter().find(|s| s.token == current).expect("the current token is scored");
            if c.score <= w.score { current } else { w.token }
        };
        assert_eq!(e.chosen, want, "step {i}");
        if e.chosen == current && w.token != current {
            kept += 1;
        } else if e.chosen != current {
            changed += 1;
        }
    }
    assert!(kept > 0 && changed > 0 && appended > 0, "kept {kept}, changed {changed}, appended {appended}");
}
