//! Chat templates on small hand-written inputs: the built-in fallbacks, the transformers
//! environment (trim/lstrip blocks, Python string methods, `raise_exception`, `tojson`), where
//! templates are found, and the errors for bad ones.

use std::path::Path;

use greater_models::LoadError;
use greater_models::chat::{ChatMessage, ChatTemplate, TemplateSource};
use greater_models::config::Family;
use greater_models::loading::{MetaValue, Metadata};
use greater_models::tokenizer::Tokenizer;

/// A tokenizer whose BOS is `<bos>` and EOS `<eos>`.
fn tokenizer() -> Tokenizer {
    let mut md = Metadata::new("tiny.gguf");
    let strings = |items: &[&str]| MetaValue::Array(items.iter().map(|s| MetaValue::String(s.to_string())).collect());
    md.insert("tokenizer.ggml.model".into(), MetaValue::String("gpt2".into()));
    md.insert("tokenizer.ggml.tokens".into(), strings(&["<bos>", "<eos>", "a"]));
    md.insert("tokenizer.ggml.merges".into(), strings(&[]));
    md.insert(
        "tokenizer.ggml.token_type".into(),
        MetaValue::Array(vec![MetaValue::I32(3), MetaValue::I32(3), MetaValue::I32(1)]),
    );
    md.insert("tokenizer.ggml.bos_token_id".into(), MetaValue::U32(0));
    md.insert("tokenizer.ggml.eos_token_id".into(), MetaValue::U32(1));
    Tokenizer::from_gguf(&md, "tiny.gguf").unwrap()
}

fn template(text: &str) -> ChatTemplate {
    ChatTemplate::new(text, TemplateSource::Model, "test.json", "chat_template", &tokenizer()).unwrap()
}

fn user(content: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::user(content)]
}

#[test]
fn gemma_fallback_merges_the_system_turn_and_renames_the_assistant() {
    let t = ChatTemplate::fallback(Family::Gemma3, &tokenizer()).unwrap();
    assert_eq!(t.source(), TemplateSource::Fallback(Family::Gemma3));
    let messages = [
        ChatMessage::system("Be brief."),
        ChatMessage::user("  Hi  "),
        ChatMessage::assistant("Hello"),
        ChatMessage::user("Bye"),
    ];
    let want = "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n\
                <start_of_turn>model\nHello<end_of_turn>\n\
                <start_of_turn>user\nBye<end_of_turn>\n\
                <start_of_turn>model\n";
    assert_eq!(t.render(&messages, true).unwrap(), want);
}

#[test]
fn chatml_fallback_serves_llama_and_qwen2() {
    for family in [Family::Llama, Family::Qwen2] {
        let t = ChatTemplate::fallback(family, &tokenizer()).unwrap();
        assert_eq!(t.source(), TemplateSource::Fallback(family));
        assert_eq!(t.render(&user("Hi"), false).unwrap(), "<|im_start|>user\nHi<|im_end|>\n");
        assert_eq!(t.render(&user("Hi"), true).unwrap(), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }
}

#[test]
fn environment_behaves_like_transformers() {
    // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before one.
    let t = template("{% for m in messages %}\n    {% if true %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}");
    assert_eq!(t.render(&user("x"), false).unwrap(), "[x]\n");
    // Python string methods.
    let t = template(
        "{{ messages[0].content.strip() }}|{{ messages[0]['content'].startswith(' a') }}|{{ 'a,b'.split(',') | length }}",
    );
    assert_eq!(t.render(&user(" ab "), false).unwrap(), "ab|True|2");
    // Special tokens and the generation flag.
    let t = template("{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}");
    assert_eq!(t.render(&user(""), true).unwrap(), "<bos><eos>True");
    // Python prints None capitalised; an undefined name prints nothing.
    assert_eq!(template("{{ none }}|{{ tools }}").render(&user(""), false).unwrap(), "None|");
    // tojson as Python's json.dumps(ensure_ascii=False): ", " and ": ", no HTML escaping.
    let t = template("{{ {'a': 1, 'b': [true, none, 'é<\"']} | tojson }}|{{ [1, 2] | tojson(indent=2) }}");
    assert_eq!(t.render(&user(""), false).unwrap(), "{\"a\": 1, \"b\": [true, null, \"é<\\\"\"]}|[\n  1,\n  2\n]");
}

#[test]
fn raise_exception_becomes_a_template_error() {
    let t = template("{% if messages[0].role != 'system' %}{{ raise_exception('system first') }}{% endif %}");
    match t.render(&user("x"), false) {
        Err(LoadError::Template { path, reason }) => {
            assert_eq!(path, Path::new("test.json"));
            assert!(reason.contains("`chat_template`") && reason.contains("system first"), "{reason}");
        }
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn a_syntax_error_names_the_template_source() {
    let tok = tokenizer();
    match ChatTemplate::new(
        "{% for m in messages %}",
        TemplateSource::Model,
        "model.gguf",
        "tokenizer.chat_template",
        &tok,
    ) {
        Err(LoadError::Template { path, reason }) => {
            assert_eq!(path, Path::new("model.gguf"));
            assert!(reason.starts_with("`tokenizer.chat_template`: "), "{reason}");
        }
        other => panic!("expected a template error, got {other:?}"),
    }

    let mut md = Metadata::new("model.gguf");
    md.insert("tokenizer.chat_template".into(), MetaValue::String("{{ ".into()));
    let err = ChatTemplate::from_gguf(&md, "model.gguf", Family::Llama, &tok).unwrap_err();
    assert!(matches!(err, LoadError::Template { .. }), "{err:?}");
    assert!(err.to_string().starts_with("model.gguf: chat template: `tokenizer.chat_template`"), "{err}");

    md.insert("tokenizer.chat_template".into(), MetaValue::U32(3));
    let err = ChatTemplate::from_gguf(&md, "model.gguf", Family::Llama, &tok).unwrap_err();
    assert!(matches!(err, LoadError::BadField { ref field, .. } if field == "tokenizer.chat_template"), "{err:?}");
}

#[test]
fn gguf_without_a_template_falls_back_by_family() {
    let md = Metadata::new("model.gguf");
    let t = ChatTemplate::from_gguf(&md, "model.gguf", Family::Gemma3, &tokenizer()).unwrap();
    assert_eq!(t.source(), TemplateSource::Fallback(Family::Gemma3));
    assert_eq!(t.render(&user("Hi"), false).unwrap(), "<bos><start_of_turn>user\nHi<end_of_turn>\n");
}

#[test]
fn tokenizer_config_templates_are_found() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tokenizer_config.json");

    std::fs::write(&config, r#"{"chat_template": "A{{ messages[0].content }}"}"#).unwrap();
    let t = ChatTemplate::from_tokenizer_config(&config, Family::Llama, &tok).unwrap();
    assert_eq!((t.source(), t.render(&user("x"), false).unwrap()), (TemplateSource::Model, "Ax".to_owned()));

    std::fs::write(
        &config,
        r#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ messages[0].content }}"}]}"#,
    )
    .unwrap();
    let t = ChatTemplate::from_tokenizer_config(&config, Family::Llama, &tok).unwrap();
    assert_eq!(t.render(&user("x"), false).unwrap(), "Dx");

    // No template in the config: a chat_template.jinja beside it, else the fallback.
    std::fs::write(&config, r#"{"bos_token": "<bos>"}"#).unwrap();
    let t = ChatTemplate::from_tokenizer_config(&config, Family::Qwen2, &tok).unwrap();
    assert_eq!(t.source(), TemplateSource::Fallback(Family::Qwen2));
    std::fs::write(dir.path().join("chat_template.jinja"), "J{{ messages[0].content }}").unwrap();
    let t = ChatTemplate::from_tokenizer_config(&config, Family::Qwen2, &tok).unwrap();
    assert_eq!((t.source(), t.render(&user("x"), false).unwrap()), (TemplateSource::Model, "Jx".to_owned()));
    assert_eq!(t.origin(), dir.path().join("chat_template.jinja"));

    // A broken template names the config file.
    std::fs::write(&config, r#"{"chat_template": "{% if %}"}"#).unwrap();
    match ChatTemplate::from_tokenizer_config(&config, Family::Llama, &tok) {
        Err(LoadError::Template { path, reason }) => {
            assert_eq!(path, config);
            assert!(reason.starts_with("`chat_template`: "), "{reason}");
        }
        other => panic!("expected a template error, got {other:?}"),
    }
}
