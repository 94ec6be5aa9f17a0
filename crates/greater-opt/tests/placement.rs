//! Prompt placement and the system turn: the prompt ids sit where the placement says, the fixed
//! parts around them hold the question, and `--system` replaces or removes the template's
//! default system turn.

use std::path::Path;

use greater_models::config::Family;
use greater_models::model::LoadedModel;
use greater_models::testing::tiny_loaded;
use greater_opt::layout::{Layouter, Placement, PromptPlace};
use greater_tasks::Task;

const PROMPT: &str = "proper logical reasoning.";

fn task() -> Task {
    greater_tasks::load_task("gen/boolean_expressions", Path::new("/nonexistent")).unwrap()
}

/// Prefix, prompt and suffix of example 0 as text.
fn parts(loaded: &LoadedModel, task: &Task, placement: Placement) -> [String; 3] {
    let layouter = Layouter::new(loaded, &task.spec, placement);
    let (layout, control) = layouter.example(0, &task.train[0], PROMPT).unwrap();
    let text = |ids: &[u32]| loaded.tokenizer.decode(ids, false).unwrap();
    [text(&layout.prefix), text(&control), text(&layout.suffix)]
}

fn placed(place: PromptPlace) -> Placement {
    Placement { place: Some(place), ..Placement::default() }
}

#[test]
fn the_prompt_sits_where_the_placement_says() {
    let loaded = tiny_loaded(Family::Llama, 3).unwrap();
    let task = task();
    let question = task.train[0].input.clone();
    let [prefix, prompt, suffix] = parts(&loaded, &task, placed(PromptPlace::After));
    assert_eq!(prompt.trim(), PROMPT);
    assert!(prefix.trim_end().ends_with(&format!("{question}. Use")), "{prefix:?}");
    assert!(!suffix.contains(&question), "{suffix:?}");

    let [prefix, prompt, suffix] = parts(&loaded, &task, placed(PromptPlace::Before));
    assert_eq!(prompt.trim(), PROMPT);
    assert!(prefix.trim_end().ends_with("Use") && !prefix.contains(&question), "{prefix:?}");
    assert!(suffix.starts_with(&format!(". {question}")), "{suffix:?}");

    let [prefix, prompt, suffix] = parts(&loaded, &task, placed(PromptPlace::System));
    assert_eq!(prompt.trim(), PROMPT);
    assert!(
        prefix.contains("system") && prefix.trim_end().ends_with("Use") && !prefix.contains(&question),
        "{prefix:?}"
    );
    let (sys_end, user) = (suffix.find("user").unwrap(), suffix.find(&question).unwrap());
    assert!(sys_end < user, "the question follows in the user turn: {suffix:?}");
}

#[test]
fn a_system_text_replaces_the_default_and_cannot_join_a_system_placement() {
    let loaded = tiny_loaded(Family::Llama, 3).unwrap();
    let task = task();
    let with = Placement { system: Some("Be brief.".into()), ..Placement::default() };
    let [prefix, _, _] = parts(&loaded, &task, with);
    assert!(prefix.contains("system\nBe brief."), "{prefix:?}");
    let both = Placement { place: Some(PromptPlace::System), system: Some("x".into()), ..Placement::default() };
    let err = Layouter::new(&loaded, &task.spec, both).example(0, &task.train[0], PROMPT).unwrap_err();
    assert!(err.to_string().contains("system text cannot be given"), "{err}");
    assert_eq!("system".parse::<PromptPlace>(), Ok(PromptPlace::System));
    assert!("middle".parse::<PromptPlace>().unwrap_err().contains("after, before or system"));
}

fn cached(name: &str) -> Option<LoadedModel> {
    let path = greater_testkit::existing(greater_testkit::cached_model(name))?;
    Some(LoadedModel::load(&path, &greater_models::default_device()).unwrap())
}

#[test]
fn system_none_removes_smollm2s_injected_turn_and_adds_nothing_to_gemma() {
    let task = task();
    let none = || Placement { system: Some(String::new()), ..Placement::default() };
    if let Some(smol) = cached("smollm2-135m-instruct") {
        let [default_prefix, _, _] = parts(&smol, &task, Placement::default());
        assert!(default_prefix.contains("You are a helpful AI assistant named SmolLM"), "{default_prefix:?}");
        let [prefix, _, _] = parts(&smol, &task, none());
        assert!(!prefix.contains("SmolLM") && prefix.len() < default_prefix.len(), "{prefix:?}");
    }
    if let Some(gemma) = cached("gemma3-270m") {
        // Gemma's template has no system turn: `none` is the plain user turn, not an empty prefix.
        assert_eq!(parts(&gemma, &task, none()), parts(&gemma, &task, Placement::default()));
    }
}

#[test]
fn the_extractor_is_fed_without_its_trailing_space_and_the_answer_carries_it() {
    // SPEC A6 token healing: "… is $ " is fed as "… is $", the answer as " False".
    let loaded = tiny_loaded(Family::Llama, 3).unwrap();
    let task = task();
    assert!(task.spec.extractor.ends_with(' '), "{:?}", task.spec.extractor);
    let layouter = Layouter::new(&loaded, &task.spec, Placement::default());
    let example = &task.train[0];
    let (layout, _) = layouter.example(0, example, PROMPT).unwrap();
    let text = |ids: &[u32]| loaded.tokenizer.decode(ids, false).unwrap();
    assert_eq!(text(&layout.extractor), format!(" {}", task.spec.extractor.trim_end()));
    assert_eq!(text(&layout.answer), format!(" {}", example.target));
}

#[test]
fn a_token_merging_the_frozen_prefix_into_the_prompt_is_an_error() {
    // Byte-level tiny tokenizer: no merges, so no error; SmolLM2's BPE writes "Useful" as one token.
    let task = task();
    let glued = Placement { frozen_prefix: "Use".into(), ..Placement::default() };
    let tiny = tiny_loaded(Family::Llama, 3).unwrap();
    assert!(Layouter::new(&tiny, &task.spec, glued.clone()).example(0, &task.train[0], "ful reasoning.").is_ok());
    if let Some(smol) = cached("smollm2-135m-instruct") {
        let err = Layouter::new(&smol, &task.spec, glued).example(0, &task.train[0], "ful reasoning.").unwrap_err();
        assert!(err.to_string().contains("merges the text before the prompt"), "{err}");
    }
}
