//! Limits instead of aborts: files that claim absurd sizes are errors naming the file and the
//! field, and the claim is refused before memory is allocated for it (a counting allocator in
//! this test binary checks the peak). Also the regression tests of the fuzzer's findings.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use greater_models::chat::{ChatMessage, ChatTemplate, TemplateSource};
use greater_models::loading::GgufFile;
use greater_models::tokenizer::{MAX_MERGES, Tokenizer};
use greater_testkit::alloc::{CountingAlloc, peak_of};

/// Tests measure peaks one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend(3u32.to_le_bytes());
    v.extend(n_tensors.to_le_bytes());
    v.extend(n_kv.to_le_bytes());
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gguf_err(bytes: &[u8]) -> (String, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "claims.gguf", bytes);
    let (r, peak) = peak_of(|| GgufFile::open(&path).map(|_| ()));
    let err = r.unwrap_err().to_string();
    assert!(err.contains("claims.gguf"), "error does not name the file: {err}");
    (err, peak)
}

#[test]
fn gguf_claims_beyond_the_file_are_refused_before_allocating() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 10^12 tensors.
    let mut f = header(1_000_000_000_000, 0);
    f.extend([0; 64]);
    let (err, peak) = gguf_err(&f);
    assert!(err.contains("tensor count 1000000000000"), "{err}");
    assert!(peak < 1 << 20, "allocated {peak} bytes for the claim");
    // A key of 2^60 bytes.
    let mut f = header(0, 1);
    f.extend((1u64 << 60).to_le_bytes());
    f.extend([b'k'; 64]);
    let (err, peak) = gguf_err(&f);
    assert!(err.contains("metadata key length") && err.contains(&(1u64 << 60).to_string()), "{err}");
    assert!(peak < 1 << 20, "allocated {peak} bytes for the claim");
    // A string value of 2^60 bytes.
    let mut f = header(0, 1);
    put_str(&mut f, "general.name");
    f.extend(8u32.to_le_bytes());
    f.extend((1u64 << 60).to_le_bytes());
    f.extend([b'x'; 64]);
    let (err, _) = gguf_err(&f);
    assert!(err.contains("value of `general.name`"), "{err}");
    // An array longer than MAX_ARRAY_LEN, its bytes present: refused before the entries are built.
    let n = greater_models::loading::gguf::MAX_ARRAY_LEN + 1;
    let mut f = header(0, 1);
    put_str(&mut f, "tokenizer.ggml.token_type");
    f.extend(9u32.to_le_bytes());
    f.extend(0u32.to_le_bytes());
    f.extend((n as u64).to_le_bytes());
    f.resize(f.len() + n, 1);
    let (err, peak) = gguf_err(&f);
    assert!(err.contains("tokenizer.ggml.token_type") && err.contains("over the limit"), "{err}");
    // The file itself is read by mmap; its entries (32 bytes each) are never allocated.
    assert!(peak < 16 << 20, "allocated {peak} bytes");
}

/// A GGUF with a gpt2 vocabulary of `tokens` and `merges` entries.
fn vocab_gguf(tokens: usize, merges: usize) -> Vec<u8> {
    let mut f = header(0, 3);
    put_str(&mut f, "tokenizer.ggml.model");
    f.extend(8u32.to_le_bytes());
    put_str(&mut f, "gpt2");
    for (key, n, item) in [("tokenizer.ggml.tokens", tokens, "a"), ("tokenizer.ggml.merges", merges, "a b")] {
        put_str(&mut f, key);
        f.extend(9u32.to_le_bytes());
        f.extend(8u32.to_le_bytes());
        f.extend((n as u64).to_le_bytes());
        for _ in 0..n {
            put_str(&mut f, item);
        }
    }
    f
}

#[test]
fn a_million_merges_is_an_error_naming_the_field() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // GGUF: the metadata is parsed, but no tokenizer is built from it.
    let path = write(dir.path(), "merges.gguf", &vocab_gguf(4, MAX_MERGES + 1));
    let file = GgufFile::open(&path).unwrap();
    let err = Tokenizer::from_gguf(file.metadata(), &path).unwrap_err().to_string();
    assert!(
        err.contains("merges.gguf") && err.contains("tokenizer.ggml.merges") && err.contains("over the limit"),
        "{err}"
    );
    // tokenizer.json: counted without building anything.
    let mut text = String::from(r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["#);
    for i in 0..=MAX_MERGES {
        text.push_str(if i == 0 { r#"["a","b"]"# } else { r#",["a","b"]"# });
    }
    text.push_str("]}}");
    let json = write(dir.path(), "tokenizer.json", text.as_bytes());
    drop(text);
    let (r, peak) = peak_of(|| Tokenizer::from_file(&json, None));
    let err = r.unwrap_err().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("model.merges") && err.contains("over the limit"), "{err}");
    // The file's text (~12 MB) is read; the million merge pairs are not built.
    let size = std::fs::metadata(&json).unwrap().len() as usize;
    assert!(peak < size + (8 << 20), "allocated {peak} bytes for a {size}-byte file");
}

#[test]
fn a_syntax_error_inside_a_decoder_is_an_error_not_a_panic() {
    // Found by `cargo xtask fuzz --target tokenizer`: tokenizers 0.23 panics ("Helper") on a
    // syntax error inside the `decoder` object instead of returning an error.
    let dir = tempfile::tempdir().unwrap();
    let text = r#"{"added_tokens":[],"decoder":{"\cleanup":true,"type":"WordPiece"},"model":{"type":"WordLevel","unk_token":"<unk>","vocab":{"<unk>":0}}}"#;
    let path = write(dir.path(), "tokenizer.json", text.as_bytes());
    let err = std::panic::catch_unwind(|| Tokenizer::from_file(&path, None)).expect("no panic").unwrap_err();
    let err = err.to_string();
    assert!(err.contains("tokenizer.json") && err.contains("line 1, column"), "{err}");
}

fn tiny_tokenizer(dir: &Path) -> Tokenizer {
    greater_models::testing::write_tiny_model(dir, 1).unwrap();
    Tokenizer::from_file(dir.join("tokenizer.json"), None).unwrap()
}

fn render(template: &str, tok: &Tokenizer) -> Result<String, String> {
    let t = ChatTemplate::new(template, TemplateSource::Model, "hostile.jinja", "chat_template", tok)
        .map_err(|e| e.to_string())?;
    t.render(&[ChatMessage::user("hi")], true).map_err(|e| e.to_string())
}

#[test]
fn hostile_templates_stop_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tiny_tokenizer(dir.path());
    let endless = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let t = std::time::Instant::now();
    let err = render(endless, &tok).unwrap_err();
    assert!(err.contains("hostile.jinja") && err.contains("fuel"), "{err}");
    assert!(t.elapsed().as_secs_f64() < 5.0, "took {:?}", t.elapsed());
    let huge = "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}";
    let err = render(huge, &tok).unwrap_err();
    assert!(err.contains("hostile.jinja") && err.contains("MiB"), "{err}");
    let quadratic = "{% set ns = namespace(s='') %}{% for i in range(100000) %}{% for j in range(100000) %}\
                     {% set ns.s = ns.s ~ 'xyz' %}{% endfor %}{% endfor %}{{ ns.s }}";
    let t = std::time::Instant::now();
    assert!(render(quadratic, &tok).unwrap_err().contains("fuel"));
    assert!(t.elapsed().as_secs_f64() < 5.0, "took {:?}", t.elapsed());
    let recursive = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
    assert!(render(recursive, &tok).is_err());
    // A long ordinary conversation stays far inside the limits.
    let template = greater_models::chat::CHATML_FALLBACK_TEMPLATE;
    let t = ChatTemplate::new(template, TemplateSource::Model, "chatml", "chat_template", &tok).unwrap();
    let messages: Vec<ChatMessage> = (0..1000).map(|i| ChatMessage::user(format!("message {i}"))).collect();
    assert!(t.render(&messages, true).unwrap().contains("message 999"));
}

#[test]
fn a_config_claiming_four_billion_layers_is_refused_before_allocating() {
    // Found by `cargo xtask fuzz --target config`: `num_hidden_layers: 4294967296` made the
    // per-layer attention table allocate 64 GiB before validation.
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 4_294_967_296u64, "num_attention_heads": 4, "num_key_value_heads": 2,
    });
    let path = write(dir.path(), "config.json", config.to_string().as_bytes());
    let (r, peak) = peak_of(|| greater_models::ModelConfig::from_hf_config(&path));
    let err = r.unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("num_hidden_layers") && err.contains("limit"), "{err}");
    assert!(peak < 1 << 20, "allocated {peak} bytes");
    // The same claim in GGUF metadata names the GGUF key.
    let mut meta = greater_models::loading::Metadata::new("claims.gguf");
    use greater_models::loading::MetaValue;
    meta.insert("general.architecture".into(), MetaValue::String("llama".into()));
    for (k, v) in [("block_count", 1u64 << 32), ("embedding_length", 32), ("feed_forward_length", 64)] {
        meta.insert(format!("llama.{k}"), MetaValue::U64(v));
    }
    meta.insert("llama.attention.head_count".into(), MetaValue::U32(4));
    meta.insert("llama.context_length".into(), MetaValue::U32(64));
    meta.insert("llama.attention.layer_norm_rms_epsilon".into(), MetaValue::F32(1e-5));
    meta.insert("llama.vocab_size".into(), MetaValue::U32(64));
    let (r, peak) = peak_of(|| greater_models::ModelConfig::from_gguf(&meta, false));
    let err = r.unwrap_err().to_string();
    assert!(err.contains("claims.gguf") && err.contains("llama.block_count"), "{err}");
    assert!(peak < 1 << 20, "allocated {peak} bytes");
}

#[test]
fn a_subword_prefix_longer_than_a_merge_is_an_error_not_a_panic() {
    // Found by `cargo xtask fuzz --target tokenizer`: tokenizers 0.23 slices the
    // `continuing_subword_prefix` off each merge's second token unchecked (an index panic).
    let dir = tempfile::tempdir().unwrap();
    let text = r#"{"model": {"type": "BPE", "continuing_subword_prefix": "xxxxxxxx", "vocab": {"a": 0, "b": 1, "ab": 2},
                   "merges": [["a", "b"]]}}"#;
    let path = write(dir.path(), "tokenizer.json", text.as_bytes());
    let err = std::panic::catch_unwind(|| Tokenizer::from_file(&path, None)).expect("no panic").unwrap_err();
    let err = err.to_string();
    assert!(err.contains("tokenizer.json") && err.contains("model.merges[0]"), "{err}");
}

#[test]
fn a_merge_longer_than_every_token_is_an_error_not_a_panic() {
    // Found by the long fuzz run (`--target tokenizer`, input 46 835): a merge whose result is
    // missing from the vocabulary and longer than every entry overflows tokenizers' copy buffer.
    let dir = tempfile::tempdir().unwrap();
    let text = r#"{"model": {"type": "BPE", "vocab": {"a": 1, "b": 2, "Ġ": 3, "Ġa": 5}, "merges": [["Ġ", "a"], ["Ġa", "b"]]}}"#;
    let path = write(dir.path(), "tokenizer.json", text.as_bytes());
    let err = std::panic::catch_unwind(|| Tokenizer::from_file(&path, None)).expect("no panic").unwrap_err();
    let err = err.to_string();
    assert!(err.contains("tokenizer.json") && err.contains("model.merges[1]") && err.contains("Ġab"), "{err}");
}
