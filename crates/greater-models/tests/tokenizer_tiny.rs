//! The tokenizer on tiny hand-built vocabularies, where every expected id can be checked by hand:
//! score-ranked SentencePiece merges, byte fallback, literal added tokens, pre-tokenizer choice,
//! the BOS rule, stop ids, Hugging Face files, and the errors for inconsistent metadata.

use std::path::Path;

use greater_models::LoadError;
use greater_models::loading::{MetaValue, Metadata};
use greater_models::tokenizer::Tokenizer;

const GGUF: &str = "tiny.gguf";

fn strings(items: &[String]) -> MetaValue {
    MetaValue::Array(items.iter().map(|s| MetaValue::String(s.clone())).collect())
}

fn set(md: &mut Metadata, key: &str, value: MetaValue) {
    md.insert(key.to_owned(), value);
}

/// A SentencePiece vocabulary: `<unk>` 0, `<s>` 1, `</s>` 2, `<0x00>`..`<0xFF>` 3..=258, then
/// `▁` 259, `a` 260, `b` 261, `c` 262, `ab` 263, `bc` 264, `▁a` 265 (scores: `ab` best, then
/// `bc`, then `▁a`), the USER_DEFINED run of two spaces 266 and the CONTROL token `<ctl>` 267.
fn spm_metadata(add_space_prefix: bool) -> Metadata {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0, 0.0, 0.0];
    for byte in 0..=255u8 {
        tokens.push(format!("<0x{byte:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for (token, score) in
        [("▁", -10.0), ("a", -11.0), ("b", -12.0), ("c", -13.0), ("ab", -1.0), ("bc", -2.0), ("▁a", -3.0)]
    {
        tokens.push(token.into());
        types.push(1);
        scores.push(score);
    }
    tokens.extend(["  ".to_string(), "<ctl>".to_string()]);
    types.extend([4, 3]);
    scores.extend([0.0, 0.0]);

    let mut md = Metadata::new(GGUF);
    set(&mut md, "general.architecture", MetaValue::String("gemma3".into()));
    set(&mut md, "tokenizer.ggml.model", MetaValue::String("llama".into()));
    set(&mut md, "tokenizer.ggml.tokens", strings(&tokens));
    set(&mut md, "tokenizer.ggml.scores", MetaValue::Array(scores.into_iter().map(MetaValue::F32).collect()));
    set(&mut md, "tokenizer.ggml.token_type", MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()));
    set(&mut md, "tokenizer.ggml.unknown_token_id", MetaValue::U32(0));
    set(&mut md, "tokenizer.ggml.bos_token_id", MetaValue::U32(1));
    set(&mut md, "tokenizer.ggml.eos_token_id", MetaValue::U32(2));
    set(&mut md, "tokenizer.ggml.add_bos_token", MetaValue::Bool(true));
    set(&mut md, "tokenizer.ggml.add_space_prefix", MetaValue::Bool(add_space_prefix));
    md
}

/// A byte-level BPE vocabulary: `<|endoftext|>` 0, `<|im_start|>` 1, `<|im_end|>` 2 (CONTROL),
/// `Ġ` 3, `a` 4, `b` 5, `1` 6, `2` 7, `Ġa` 8, `ab` 9, `Ġab` 10, `12` 11.
fn bpe_metadata(pre: &str) -> Metadata {
    let tokens: Vec<String> =
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "Ġ", "a", "b", "1", "2", "Ġa", "ab", "Ġab", "12"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let types = [3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    let merges: Vec<String> = ["Ġ a", "a b", "Ġa b", "1 2"].iter().map(|s| s.to_string()).collect();
    let mut md = Metadata::new(GGUF);
    set(&mut md, "general.architecture", MetaValue::String("llama".into()));
    set(&mut md, "tokenizer.ggml.model", MetaValue::String("gpt2".into()));
    set(&mut md, "tokenizer.ggml.pre", MetaValue::String(pre.into()));
    set(&mut md, "tokenizer.ggml.tokens", strings(&tokens));
    set(&mut md, "tokenizer.ggml.merges", strings(&merges));
    set(&mut md, "tokenizer.ggml.token_type", MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()));
    set(&mut md, "tokenizer.ggml.bos_token_id", MetaValue::U32(1));
    set(&mut md, "tokenizer.ggml.eos_token_id", MetaValue::U32(2));
    set(&mut md, "tokenizer.ggml.add_bos_token", MetaValue::Bool(false));
    md
}

fn spm(add_space_prefix: bool) -> Tokenizer {
    Tokenizer::from_gguf(&spm_metadata(add_space_prefix), GGUF).unwrap()
}

#[test]
fn sentencepiece_merges_follow_scores_not_position() {
    let tok = spm(false);
    // "abc": `ab` (-1) beats `bc` (-2).
    assert_eq!(tok.encode("abc", false).unwrap(), [263, 262]);
    assert_eq!(tok.encode("bc", false).unwrap(), [264]);
    // "▁abc": `ab` is merged before `▁a` (-3) could be, and `▁ab` does not exist.
    assert_eq!(tok.encode(" abc", false).unwrap(), [259, 263, 262]);
    // "a▁bc": nothing merges across the space.
    assert_eq!(tok.encode("a bc", false).unwrap(), [260, 259, 264]);
    assert_eq!(tok.decode(&[260, 259, 264], false).unwrap(), "a bc");
}

#[test]
fn sentencepiece_byte_fallback_round_trips() {
    let tok = spm(false);
    // "é" is not in the vocabulary: its UTF-8 bytes C3 A9 become <0xC3> <0xA9> (ids 3 + byte).
    assert_eq!(tok.encode("é", false).unwrap(), [3 + 0xC3, 3 + 0xA9]);
    assert_eq!(tok.decode(&[260, 3 + 0xC3, 3 + 0xA9], false).unwrap(), "aé");
}

#[test]
fn control_and_user_defined_tokens_are_matched_literally() {
    let tok = spm(false);
    // Two spaces are the USER_DEFINED token 266, not two `▁`.
    assert_eq!(tok.encode("a  b", false).unwrap(), [260, 266, 261]);
    assert_eq!(tok.encode("<ctl>ab</s>", false).unwrap(), [267, 263, 2]);
    assert!(tok.is_special(267) && tok.is_special(2) && !tok.is_special(266) && !tok.is_special(263));
    assert_eq!(tok.decode(&[267, 263, 266, 2], false).unwrap(), "<ctl>ab  </s>");
    assert_eq!(tok.decode(&[267, 263, 266, 2], true).unwrap(), "ab  ");
}

#[test]
fn bos_is_prepended_only_with_add_special() {
    let tok = spm(false);
    assert!(tok.add_bos_token());
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.unk_id(), tok.pad_id()), (Some(1), Some(2), Some(0), None));
    assert_eq!(tok.encode("ab", true).unwrap(), [1, 263]);
    assert_eq!(tok.encode("ab", false).unwrap(), [263]);
    assert_eq!(tok.encode("", true).unwrap(), [1]);
    let with_offsets = tok.encode_with_offsets("ab c", true).unwrap();
    assert_eq!(with_offsets.ids, [1, 263, 259, 262]);
    assert_eq!(with_offsets.offsets, [(0, 0), (0, 2), (2, 3), (3, 4)]);
    assert_eq!(tok.stop_ids(), [2]);
    assert_eq!(tok.vocab_size(), 268);
}

#[test]
fn space_prefix_is_added_and_stripped_again() {
    let tok = spm(true);
    // "ab" becomes "▁ab": `ab` outranks `▁a`.
    assert_eq!(tok.encode("ab", false).unwrap(), [259, 263]);
    assert_eq!(tok.decode(&[259, 263], false).unwrap(), "ab");
}

#[test]
fn byte_level_bpe_uses_merges_and_the_named_pre_tokenizer() {
    let tok = Tokenizer::from_gguf(&bpe_metadata("smollm"), GGUF).unwrap();
    assert_eq!(tok.encode("ab ab", false).unwrap(), [9, 10]);
    assert_eq!(tok.encode("a a", false).unwrap(), [4, 8]);
    // SmolLM gets the GPT-2 regex, as in transformers, which keeps digit runs together...
    assert_eq!(tok.encode("12", false).unwrap(), [11]);
    // ...while Qwen2's regex splits every digit off, so the merge `1 2` never applies.
    let qwen2 = Tokenizer::from_gguf(&bpe_metadata("qwen2"), GGUF).unwrap();
    assert_eq!(qwen2.encode("12", false).unwrap(), [6, 7]);
    assert_eq!(qwen2.encode("ab ab", false).unwrap(), [9, 10]);

    assert_eq!(tok.encode("<|im_start|>ab<|im_end|>", false).unwrap(), [1, 9, 2]);
    assert!(!tok.add_bos_token());
    assert_eq!(tok.encode("ab", true).unwrap(), [9]);
    assert_eq!(tok.decode(&[1, 9, 10, 2], false).unwrap(), "<|im_start|>ab ab<|im_end|>");
    assert_eq!(tok.decode(&[1, 9, 10, 2], true).unwrap(), "ab ab");
    assert_eq!(tok.stop_ids(), [2]);
    assert_eq!((tok.token_to_id("Ġab"), tok.id_to_token(10).as_deref()), (Some(10), Some("Ġab")));
}

#[test]
fn end_of_turn_tokens_join_eos_in_stop_ids() {
    let mut md = bpe_metadata("smollm");
    // EOS is now <|endoftext|>; <|im_end|> still ends a turn.
    set(&mut md, "tokenizer.ggml.eos_token_id", MetaValue::U32(0));
    let tok = Tokenizer::from_gguf(&md, GGUF).unwrap();
    assert_eq!(tok.stop_ids(), [0, 2]);
    assert!(tok.is_stop(2) && !tok.is_stop(1));
}

fn expect_bad_field(md: &Metadata, field: &str, reason_part: &str) {
    match Tokenizer::from_gguf(md, GGUF) {
        Err(LoadError::BadField { path, field: got, reason }) => {
            assert_eq!(path, Path::new(GGUF));
            assert_eq!(got, field, "{reason}");
            assert!(reason.contains(reason_part), "{reason}");
        }
        other => panic!("expected a bad `{field}`, got {other:?}"),
    }
}

#[test]
fn inconsistent_metadata_is_a_clear_error() {
    let mut md = spm_metadata(false);
    set(&mut md, "tokenizer.ggml.token_type", MetaValue::Array(vec![MetaValue::I32(1); 5]));
    expect_bad_field(&md, "tokenizer.ggml.token_type", "5 entries for 268 tokens");

    let mut md = spm_metadata(false);
    set(&mut md, "tokenizer.ggml.bos_token_id", MetaValue::U32(268));
    expect_bad_field(&md, "tokenizer.ggml.bos_token_id", "id 268 is outside the vocabulary of 268 tokens");

    let mut md = spm_metadata(false);
    set(&mut md, "gemma3.vocab_size", MetaValue::U32(300));
    expect_bad_field(&md, "gemma3.vocab_size", "is 300 but tokenizer.ggml.tokens has 268 tokens");

    let mut md = bpe_metadata("smollm");
    set(&mut md, "tokenizer.ggml.model", MetaValue::String("bert".into()));
    expect_bad_field(&md, "tokenizer.ggml.model", "unsupported tokenizer model `bert`");

    let mut md = bpe_metadata("smollm");
    set(&mut md, "tokenizer.ggml.merges", strings(&["Ġa".to_string()]));
    expect_bad_field(&md, "tokenizer.ggml.merges", "entry 0 `Ġa`");

    let mut md = Metadata::new(GGUF);
    set(&mut md, "tokenizer.ggml.model", MetaValue::String("gpt2".into()));
    match Tokenizer::from_gguf(&md, GGUF) {
        Err(LoadError::MissingFields { fields, .. }) => {
            assert_eq!(fields, ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"]);
        }
        other => panic!("expected missing fields, got {other:?}"),
    }
}

#[test]
fn ids_outside_the_vocabulary_are_errors() {
    let tok = spm(false);
    let err = tok.decode(&[260, 268], false).unwrap_err();
    assert!(err.to_string().contains("cannot decode id 268: the vocabulary has 268 tokens"), "{err}");
    assert!(tok.check_model_vocab(268).is_ok());
    assert!(tok.check_model_vocab(300).is_ok());
    let err = tok.check_model_vocab(100).unwrap_err();
    assert!(err.to_string().contains("268 tokens but the model's embedding has only 100 rows"), "{err}");
}

/// A byte-level `tokenizer.json`: `<s>` 0 and `</s>` 1 (special), `h` 2, `i` 3, `hi` 4, `Ġ` 5,
/// `Ġhi` 6; `post_processor` is spliced in.
fn tokenizer_json(post_processor: &str) -> String {
    let special = |id: u32, content: &str| {
        format!(
            r#"{{"id":{id},"content":"{content}","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}}"#
        )
    };
    format!(
        r#"{{"version":"1.0","truncation":null,"padding":null,
        "added_tokens":[{},{}],
        "normalizer":null,
        "pre_tokenizer":{{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":true}},
        "post_processor":{post_processor},
        "decoder":{{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":true}},
        "model":{{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,
          "end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,
          "vocab":{{"<s>":0,"</s>":1,"h":2,"i":3,"hi":4,"Ġ":5,"Ġhi":6}},"merges":["h i","Ġ hi"]}}}}"#,
        special(0, "<s>"),
        special(1, "</s>"),
    )
}

const BOS_TEMPLATE: &str = r#"{"type":"TemplateProcessing",
    "single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
    "pair":[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],
    "special_tokens":{"<s>":{"id":"<s>","ids":[0],"tokens":["<s>"]}}}"#;

#[test]
fn hugging_face_files_supply_special_ids_and_the_bos_rule() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("tokenizer.json");
    let config = dir.path().join("tokenizer_config.json");
    std::fs::write(&json, tokenizer_json("null")).unwrap();

    // Without a config: no special ids, no BOS.
    let tok = Tokenizer::from_file(&json, None).unwrap();
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.add_bos_token()), (None, None, false));
    assert_eq!(tok.encode("hi hi", true).unwrap(), [4, 6]);
    assert_eq!(tok.vocab_size(), 7);

    // Special tokens as a string and as an object; add_bos_token stated.
    std::fs::write(&config, r#"{"bos_token":"<s>","eos_token":{"content":"</s>"},"add_bos_token":true}"#).unwrap();
    let tok = Tokenizer::from_file(&json, Some(&config)).unwrap();
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.add_bos_token()), (Some(0), Some(1), true));
    assert_eq!(tok.encode("hi hi", true).unwrap(), [0, 4, 6]);
    assert_eq!(tok.decode(&[0, 4, 6, 1], false).unwrap(), "<s>hi hi</s>");
    assert_eq!(tok.decode(&[0, 4, 6, 1], true).unwrap(), "hi hi");
    assert_eq!(tok.stop_ids(), [1]);

    // No add_bos_token: the post-processor decides.
    std::fs::write(&config, r#"{"bos_token":"<s>","eos_token":"</s>"}"#).unwrap();
    assert!(!Tokenizer::from_file(&json, Some(&config)).unwrap().add_bos_token());
    std::fs::write(&json, tokenizer_json(BOS_TEMPLATE)).unwrap();
    let tok = Tokenizer::from_file(&json, Some(&config)).unwrap();
    assert!(tok.add_bos_token());
    // BOS comes once, from this crate's rule, not also from the post-processor.
    assert_eq!(tok.encode("hi", true).unwrap(), [0, 4]);

    // A special token the vocabulary lacks.
    std::fs::write(&config, r#"{"eos_token":"<|eot|>"}"#).unwrap();
    match Tokenizer::from_file(&json, Some(&config)) {
        Err(LoadError::BadField { field, reason, .. }) => {
            assert_eq!(field, "eos_token");
            assert!(reason.contains("`<|eot|>` is not in"), "{reason}");
        }
        other => panic!("expected a bad eos_token, got {other:?}"),
    }
}
