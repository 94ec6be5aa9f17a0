//! Answer variants as token ids, per tokenizer family: GPT-2 byte-level BPE (SmolLM2), Qwen2's
//! byte-level BPE and Gemma's SentencePiece, read from the cached GGUF files (metadata only).

use std::path::PathBuf;

use greater_models::loading::GgufFile;
use greater_models::tokenizer::Tokenizer;
use greater_opt::layout::answer_variant_ids;
use greater_tasks::Example;

fn tokenizer(name: &str) -> Option<Tokenizer> {
    let cache = std::env::var_os("GREATER_CACHE")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("greater")))?;
    let path = cache.join(format!("models/{name}.gguf"));
    if !path.exists() {
        let required = std::env::var("GREATER_REQUIRE_MODELS").is_ok_and(|v| v == "1")
            && std::env::var("GREATER_MODELS").is_ok_and(|m| m.split(',').any(|x| x.trim() == name));
        assert!(!required, "{} missing", path.display());
        eprintln!("note: {} missing; skipping", path.display());
        return None;
    }
    let file = GgufFile::open(&path).unwrap();
    Some(Tokenizer::from_gguf(file.metadata(), &path).unwrap())
}

fn ex(target: &str) -> Example {
    Example { input: String::new(), target: target.into(), raw_target: target.into(), choices: Vec::new() }
}

fn check(name: &str) {
    let Some(tok) = tokenizer(name) else { return };
    let spec = |t: &str| greater_tasks::spec(t).unwrap();
    let decode = |ids: &[Vec<u32>]| -> Vec<String> { ids.iter().map(|v| tok.decode(v, false).unwrap()).collect() };
    // True/False: spacing and case, every variant a distinct tokenisation that grades as the gold.
    let tf = spec("bbh/boolean_expressions");
    let official = tok.encode(" False", false).unwrap();
    let ids = answer_variant_ids(&tok, &tf, &ex("False"), &official).unwrap();
    assert_eq!(ids[0], official);
    let texts = decode(&ids);
    for want in [" False", "False", " false", "false"] {
        assert!(texts.iter().any(|t| t == want), "{name}: {want:?} missing from {texts:?}");
    }
    for t in &texts {
        assert!(tf.score_answer(&ex("False"), t).correct, "{name}: {t:?}");
    }
    // Letters: "(B)" is several tokens in every family.
    let letters = spec("bbh/date_understanding");
    let official = tok.encode("B", false).unwrap();
    let ids = answer_variant_ids(&tok, &letters, &ex("B"), &official).unwrap();
    let texts = decode(&ids);
    assert!(texts.iter().any(|t| t == "(B)") && texts.iter().any(|t| t == " (B)"), "{name}: {texts:?}");
    assert!(ids.iter().any(|v| v.len() > 1), "{name}: a multi-token variant");
    // Numbers: " 1080" and "1080" (split into several digit tokens by some families).
    let gsm = spec("gsm8k");
    let official = tok.encode("1080", false).unwrap();
    let texts = decode(&answer_variant_ids(&tok, &gsm, &ex("1080"), &official).unwrap());
    assert_eq!(texts, ["1080", " 1080"], "{name}");
}

#[test]
fn variants_for_smollm2_gpt2_byte_level() {
    check("smollm2-135m-instruct");
}

#[test]
fn variants_for_qwen2() {
    check("qwen2.5-coder-0.5b-instruct");
}

#[test]
fn variants_for_gemma_sentencepiece() {
    check("gemma3-270m");
}
