//! The graded answer pass on a tiny random model: its prompt NLL and teacher-forced flags equal the
//! whole-sequence scoring, its verdicts equal the evaluation's, and where the model writes the gold
//! without the target's leading space, the official flag says mistake and the graded one does not.

use std::path::Path;

use greater_grad::{GradOptions, TrainSequence, score_sequences};
use greater_models::config::Family;
use greater_models::testing::tiny_loaded;
use greater_opt::NoObserver;
use greater_opt::answer_pass::answer_pass;
use greater_opt::eval::{EvalOptions, PromptInput, evaluate};
use greater_opt::layout::{ExampleLayout, Layouter};
use greater_opt::rollout::generate_all;
use greater_tasks::{AnswerKind, Example, TaskSpec};

const PROMPT: &str = "think step by step.";

fn setup(
    loaded: &greater_models::model::LoadedModel,
    spec: &TaskSpec,
    examples: &[Example],
) -> (Vec<ExampleLayout>, Vec<u32>, Vec<Vec<u32>>) {
    let layouter = Layouter::new(loaded, spec, Default::default());
    let (mut layouts, mut control) = (Vec::new(), Vec::new());
    for (i, ex) in examples.iter().enumerate() {
        let (l, c) = layouter.example(i, ex, PROMPT).unwrap();
        layouts.push(l);
        control = c;
    }
    let prompts: Vec<Vec<u32>> = layouts.iter().map(|l| l.generation_prompt(&control)).collect();
    let stop = loaded.tokenizer.stop_ids();
    let reasoning = generate_all(&loaded.model, &prompts, 6, stop, 2, &NoObserver).unwrap();
    (layouts, control, reasoning)
}

#[test]
fn answer_pass_agrees_with_sequence_scoring_and_evaluation() {
    let loaded = tiny_loaded(Family::Llama, 21).unwrap();
    let task = greater_tasks::load_task("gen/boolean_expressions", Path::new("/nonexistent")).unwrap();
    let examples = &task.train[..5];
    let (layouts, control, reasoning) = setup(&loaded, &task.spec, examples);
    let tok = &loaded.tokenizer;
    let out = answer_pass(&loaded.model, tok, &task.spec, &layouts, examples, &control, &reasoning, 2).unwrap();
    let seqs: Vec<TrainSequence> = layouts.iter().zip(&reasoning).map(|(l, r)| l.sequence(&control, r)).collect();
    let plain = score_sequences(&loaded.model, &seqs, &GradOptions::default(), 3).unwrap();
    for (o, p) in out.iter().zip(&plain) {
        assert!((o.prompt_nll - p.loss_control).abs() <= 1e-5 * p.loss_control.max(1.0), "{o:?} vs {p:?}");
        assert_eq!(o.teacher_forced_mistake, p.mistake);
    }
    let opts = EvalOptions { max_reasoning_tokens: 6, batch_size: 2, ..Default::default() };
    let ev = evaluate(&loaded, &task.spec, examples, &PromptInput::Text(PROMPT.into()), &opts, &NoObserver).unwrap();
    for (o, rec) in out.iter().zip(&ev.records) {
        assert_eq!(o.graded_mistake, !rec.correct, "{rec:?}");
        assert!(tok.decode(&o.answer, true).unwrap().starts_with(&rec.raw_answer));
    }
}

#[test]
fn a_space_less_correct_answer_is_a_teacher_forced_mistake_but_graded_right() {
    let loaded = tiny_loaded(Family::Llama, 21).unwrap();
    let task = greater_tasks::load_task("gen/boolean_expressions", Path::new("/nonexistent")).unwrap();
    let mut spec = task.spec.clone().with_extractor("So the answer is $ ");
    spec.kind = AnswerKind::FreeText;
    let mut examples = task.train[..3].to_vec();
    // Whatever the model answers greedily becomes the gold: graded, it is right.
    let (layouts, control, reasoning) = setup(&loaded, &spec, &examples);
    let tok = &loaded.tokenizer;
    let first = answer_pass(&loaded.model, tok, &spec, &layouts, &examples, &control, &reasoning, 2).unwrap();
    for (ex, o) in examples.iter_mut().zip(&first) {
        let text = tok.decode(&o.answer, true).unwrap();
        ex.target = greater_tasks::normalise(greater_tasks::cut_continuation(&text));
        assert!(!ex.target.is_empty() && !text.starts_with(' '), "pick another seed: {text:?}");
    }
    // The official target is " " + gold, which the model does not write: a teacher-forced mistake.
    let (layouts, control, reasoning) = setup(&loaded, &spec, &examples);
    let out = answer_pass(&loaded.model, tok, &spec, &layouts, &examples, &control, &reasoning, 2).unwrap();
    for o in &out {
        assert!(o.teacher_forced_mistake && !o.graded_mistake, "{o:?}");
    }
}
