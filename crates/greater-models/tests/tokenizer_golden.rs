//! Parity of the GGUF tokenizers with the golden reference (Hugging Face transformers 5.24,
//! tokenizers 0.23.3): every case of `tokenizer_cases.json` for SmolLM2, Gemma 3 and Qwen2.5.
//!
//! Needs the real models (`$GREATER_CACHE` or the user cache dir, `models/<name>.gguf`) and the
//! golden data (`$GREATER_GOLDEN` or `../shared/golden`). When either is absent the test says so
//! and passes, unless `GREATER_REQUIRE_MODELS=1`.

use greater_models::loading::GgufFile;
use greater_models::tokenizer::Tokenizer;
use greater_testkit::{cached_model as model_path, golden_root as golden_dir, unavailable};
use serde_json::Value;

/// The golden cases and the tokenizer of model `name`, or `None` when either is missing.
fn load(name: &str) -> Option<(Value, Tokenizer)> {
    let cases_path = golden_dir().join(name).join("tokenizer_cases.json");
    let model = model_path(name);
    if !cases_path.is_file() {
        unavailable(&format!("golden file {} is missing", cases_path.display()));
        return None;
    }
    if !model.is_file() {
        unavailable(&format!("model {} is missing", model.display()));
        return None;
    }
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(&cases_path).unwrap()).unwrap();
    let file = GgufFile::open(&model).unwrap();
    let tokenizer = Tokenizer::from_gguf(file.metadata(), &model).unwrap();
    Some((golden, tokenizer))
}

fn ids(value: &Value) -> Vec<u32> {
    value.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

fn opt_id(value: &Value) -> Option<u32> {
    value.as_u64().map(|v| v as u32)
}

/// What a token's text looks like in the input, for tokens made of ASCII characters and the
/// visible-space markers (`Ġ`, `Ċ`, `ĉ` of byte-level BPE, `▁` of SentencePiece).
fn surface(token: &str) -> String {
    token.replace(['Ġ', '▁'], " ").replace('Ċ', "\n").replace('ĉ', "\t")
}

/// Compares everything a golden file says about one model; returns every mismatch.
fn mismatches(golden: &Value, tok: &Tokenizer) -> Vec<String> {
    let mut bad = Vec::new();
    let mut offsets_checked = 0;
    let special = &golden["special_tokens_from_gguf"];
    let got = [tok.bos_id(), tok.eos_id(), tok.pad_id(), tok.unk_id()];
    for (name, got) in ["bos", "eos", "pad", "unk"].iter().zip(got) {
        let want = opt_id(&special[name]["id"]);
        if got != want {
            bad.push(format!("{name} id: got {got:?}, want {want:?}"));
        }
        if let Some(id) = got {
            let want_text = special[name]["token"].as_str().unwrap();
            if tok.id_to_token(id).as_deref() != Some(want_text) || !tok.is_special(id) {
                bad.push(format!("{name} token {id}: {:?} (special: {})", tok.id_to_token(id), tok.is_special(id)));
            }
        }
    }
    if tok.add_bos_token() != golden["add_bos_token"].as_bool().unwrap() {
        bad.push(format!("add_bos_token: got {}", tok.add_bos_token()));
    }
    if tok.vocab_size() as u64 != golden["vocab_size"].as_u64().unwrap() {
        bad.push(format!("vocab_size: got {}", tok.vocab_size()));
    }
    if tok.stop_ids() != ids(&golden["generation_stop_ids"]) {
        bad.push(format!("stop ids: got {:?}, want {}", tok.stop_ids(), golden["generation_stop_ids"]));
    }

    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let text = case["text"].as_str().unwrap();
        let want_ids = ids(&case["ids"]);
        let mut check = |what: &str, got: String, want: String| {
            if got != want {
                bad.push(format!("case `{name}` {what}:\n   got {got}\n  want {want}"));
            }
        };
        check("ids", format!("{:?}", tok.encode(text, false).unwrap()), format!("{want_ids:?}"));
        check(
            "ids with default special tokens",
            format!("{:?}", tok.encode(text, true).unwrap()),
            format!("{:?}", ids(&case["ids_with_default_special_tokens"])),
        );
        check(
            "decoded",
            format!("{:?}", tok.decode(&want_ids, false).unwrap()),
            format!("{:?}", case["decoded"].as_str().unwrap()),
        );
        check(
            "decoded_skip_special",
            format!("{:?}", tok.decode(&want_ids, true).unwrap()),
            format!("{:?}", case["decoded_skip_special"].as_str().unwrap()),
        );

        // Offsets: the ids are the same as `encode`, and where every golden token is plain ASCII
        // (after mapping the space markers), each offset range spells its token.
        let with_offsets = tok.encode_with_offsets(text, false).unwrap();
        check("ids of encode_with_offsets", format!("{:?}", with_offsets.ids), format!("{want_ids:?}"));
        let tokens: Vec<&str> = case["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        let surfaces: Vec<String> = tokens.iter().map(|t| surface(t)).collect();
        if with_offsets.ids == want_ids && surfaces.iter().all(|s| s.is_ascii() && !s.starts_with("<0x")) {
            offsets_checked += 1;
            for ((start, end), want) in with_offsets.offsets.iter().zip(&surfaces) {
                check("offset text", format!("{:?}", &text[*start..*end]), format!("{want:?}"));
            }
        }
    }
    if offsets_checked < 5 {
        bad.push(format!("only {offsets_checked} cases had their offsets checked"));
    }
    bad
}

/// The golden gradient sample: the full sequence's ids, and its `control`/`reasoning`/
/// `extractor`/`answer` token slices, where each token belongs to the segment (a character span)
/// holding its last character.
fn gradient_mismatches(name: &str, tok: &Tokenizer) -> Vec<String> {
    let path = golden_dir().join(name).join("gradient.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let text = golden["full_text"].as_str().unwrap();
    let encoded = tok.encode_with_offsets(text, false).unwrap();
    let mut bad = Vec::new();
    if encoded.ids != ids(&golden["ids"]) {
        bad.push(format!("gradient sequence ids differ: got {:?}", encoded.ids));
        return bad;
    }
    // Character index of each token's last character (offsets are bytes).
    let last_chars: Vec<usize> = encoded.offsets.iter().map(|&(_, end)| text[..end].chars().count() - 1).collect();
    for segment in ["control", "reasoning", "extractor", "answer"] {
        let span = ids(&golden["char_spans"][segment]);
        let inside: Vec<usize> =
            (0..last_chars.len()).filter(|&i| (span[0] as usize..span[1] as usize).contains(&last_chars[i])).collect();
        let got = [inside[0] as u32, *inside.last().unwrap() as u32 + 1];
        let want = ids(&golden["slices"][segment]);
        if got[..] != want[..] || inside.len() != (got[1] - got[0]) as usize {
            bad.push(format!("gradient slice `{segment}`: got {got:?}, want {want:?}"));
        }
    }
    bad
}

fn assert_matches_golden(name: &str) {
    let Some((golden, tokenizer)) = load(name) else {
        return;
    };
    assert_eq!(golden["cases"].as_array().unwrap().len(), 25);
    let mut bad = mismatches(&golden, &tokenizer);
    bad.extend(gradient_mismatches(name, &tokenizer));
    assert!(bad.is_empty(), "{name}: {} mismatch(es):\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn smollm2_tokenizer_matches_golden() {
    assert_matches_golden("smollm2-135m-instruct");
}

#[test]
fn gemma3_tokenizer_matches_golden() {
    assert_matches_golden("gemma3-270m");
}

#[test]
fn qwen2_tokenizer_matches_golden() {
    assert_matches_golden("qwen2.5-coder-0.5b-instruct");
}

#[test]
fn gemma3_special_and_user_defined_tokens_are_matched_literally() {
    let Some((_, tok)) = load("gemma3-270m") else {
        return;
    };
    // Golden README: `"     "` is the single USER_DEFINED token 141; 105/106 are the turn markers.
    assert_eq!(tok.encode("     ", false).unwrap(), [141]);
    assert_eq!(tok.encode("<start_of_turn>", false).unwrap(), [105]);
    assert!(tok.is_special(106) && !tok.is_special(141));
    assert_eq!(tok.decode(&[105, 141, 106], true).unwrap(), "     ");
}
