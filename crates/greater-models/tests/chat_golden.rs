//! Parity of chat rendering with the golden reference: each model's `chat_render.json` (one user
//! message, with and without the generation prompt) and the ids of the rendering.
//!
//! Needs the real models and the golden data; see `tokenizer_golden.rs` for how they are found.

use greater_models::chat::{ChatMessage, ChatTemplate, TemplateSource};
use greater_models::config::Family;
use greater_models::loading::GgufFile;
use greater_models::tokenizer::Tokenizer;
use greater_testkit::{cached_model as model_path, golden_root as golden_dir, unavailable};
use serde_json::Value;

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Renders the golden conversation of model `name` and compares text and ids.
fn check(name: &str, family: Family, want_source: TemplateSource) {
    let render_path = golden_dir().join(name).join("chat_render.json");
    let cases_path = golden_dir().join(name).join("tokenizer_cases.json");
    let model = model_path(name);
    for path in [&render_path, &cases_path, &model] {
        if !path.is_file() {
            return unavailable(&format!("{} is missing", path.display()));
        }
    }
    let golden = read_json(&render_path);
    let file = GgufFile::open(&model).unwrap();
    let tok = Tokenizer::from_gguf(file.metadata(), &model).unwrap();
    let template = ChatTemplate::from_gguf(file.metadata(), &model, family, &tok).unwrap();
    assert_eq!(template.source(), want_source);
    // The template is the one the golden run used, character for character.
    let golden_template = read_json(&cases_path)["chat_template"].as_str().unwrap().to_owned();
    assert_eq!(template.text(), golden_template);

    let messages: Vec<ChatMessage> = serde_json::from_value(golden["messages"].clone()).unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(golden["add_generation_prompt"], Value::Bool(true));
    let rendered = template.render(&messages, true).unwrap();
    assert_eq!(rendered, golden["rendered"].as_str().unwrap());
    let without = template.render(&messages, false).unwrap();
    assert_eq!(without, golden["rendered_without_generation_prompt"].as_str().unwrap());

    let want_ids: Vec<u32> = golden["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    assert_eq!(tok.encode(&rendered, false).unwrap(), want_ids);
}

#[test]
fn smollm2_renders_its_own_template() {
    check("smollm2-135m-instruct", Family::Llama, TemplateSource::Model);
}

#[test]
fn gemma3_renders_the_gemma_fallback() {
    check("gemma3-270m", Family::Gemma3, TemplateSource::Fallback(Family::Gemma3));
}

#[test]
fn qwen2_renders_its_own_template() {
    check("qwen2.5-coder-0.5b-instruct", Family::Qwen2, TemplateSource::Model);
}
