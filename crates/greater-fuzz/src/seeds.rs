//! Seed inputs: small synthetic files built here (always available) and, when present, the real
//! files of the machine: headers of cached GGUF models (tensor data cut), the cached Hugging Face
//! folders' `config.json` / `tokenizer.json`, and dataset files under `GREATER_DATA`. Nothing is
//! copied into the repository.

use std::path::{Path, PathBuf};

/// A minimal GGUF writer (v3, little-endian) for synthetic seeds.
#[derive(Debug, Default)]
pub struct GgufWriter {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl GgufWriter {
    fn key(&mut self, key: &str, ty: u32) -> &mut Vec<u8> {
        self.n_kv += 1;
        put_str(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        &mut self.kv
    }

    /// A `u32` value.
    pub fn u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.key(key, 4).extend(v.to_le_bytes());
        self
    }

    /// An `f32` value.
    pub fn f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.key(key, 6).extend(v.to_le_bytes());
        self
    }

    /// A string value.
    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        let out = self.key(key, 8);
        put_str(out, v);
        self
    }

    /// An array of strings.
    pub fn strs(&mut self, key: &str, items: &[String]) -> &mut Self {
        let out = self.key(key, 9);
        out.extend(8u32.to_le_bytes());
        out.extend((items.len() as u64).to_le_bytes());
        for s in items {
            put_str(out, s);
        }
        self
    }

    /// An array of `f32` (type 6) or `i32` (type 5) given as raw 4-byte words.
    pub fn words(&mut self, key: &str, ty: u32, items: &[[u8; 4]]) -> &mut Self {
        let out = self.key(key, 9);
        out.extend(ty.to_le_bytes());
        out.extend((items.len() as u64).to_le_bytes());
        for w in items {
            out.extend(w);
        }
        self
    }

    /// A tensor of ggml type `ty` with `dims` (ggml order) and raw `data`.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, data: Vec<u8>) -> &mut Self {
        self.tensors.push((name.into(), dims.to_vec(), ty, data));
        self
    }

    /// The file's bytes (alignment 32).
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        let mut offset = 0u64;
        for (name, dims, ty, data) in &self.tensors {
            put_str(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(ty.to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset = (offset + data.len() as u64).next_multiple_of(32);
        }
        out.resize(out.len().next_multiple_of(32), 0);
        for (_, _, _, data) in &self.tensors {
            out.extend(data);
            out.resize(out.len().next_multiple_of(32), 0);
        }
        out
    }
}

/// A tiny llama GGUF: config keys, a gpt2 or llama (SentencePiece) vocabulary, a chat template
/// and a few small tensors (F32, F16, Q8_0, Q4_K).
pub fn tiny_gguf(spm: bool) -> Vec<u8> {
    let mut w = GgufWriter::default();
    w.str("general.architecture", "llama")
        .u32("llama.block_count", 1)
        .u32("llama.embedding_length", 8)
        .u32("llama.feed_forward_length", 16)
        .u32("llama.attention.head_count", 2)
        .u32("llama.attention.head_count_kv", 1)
        .u32("llama.context_length", 64)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .f32("llama.rope.freq_base", 10_000.0);
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"].map(String::from).to_vec();
    if spm {
        tokens.extend(["▁", "a", "b", "ab", "▁a", "▁ab", "<0x41>"].map(String::from));
        w.str("tokenizer.ggml.model", "llama");
        let scores: Vec<[u8; 4]> = (0..tokens.len()).map(|i| (-(i as f32)).to_le_bytes()).collect();
        w.words("tokenizer.ggml.scores", 6, &scores);
    } else {
        tokens.extend(["Ġ", "a", "b", "ab", "Ġa", "Ġab", "c"].map(String::from));
        w.str("tokenizer.ggml.model", "gpt2").str("tokenizer.ggml.pre", "smollm");
        w.strs("tokenizer.ggml.merges", &["a b", "Ġ a", "Ġa b"].map(String::from));
    }
    let types: Vec<[u8; 4]> =
        (0..tokens.len()).map(|i| (if (3..5).contains(&i) { 3i32 } else { 1 }).to_le_bytes()).collect();
    w.strs("tokenizer.ggml.tokens", &tokens)
        .words("tokenizer.ggml.token_type", 5, &types)
        .u32("tokenizer.ggml.bos_token_id", 1)
        .u32("tokenizer.ggml.eos_token_id", 2)
        .str("tokenizer.chat_template", CHATML);
    let f32s: Vec<u8> = (0..16).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect();
    w.tensor("token_embd.weight", &[8, 2], 0, f32s);
    w.tensor("blk.0.attn_norm.weight", &[8], 1, (0..8u16).flat_map(|i| (0x3C00 + i).to_le_bytes()).collect());
    // One Q8_0 block: f16 scale then 32 i8.
    let mut q8 = 0x3C00u16.to_le_bytes().to_vec();
    q8.extend((0..32).map(|i| i as u8));
    w.tensor("blk.0.ffn_up.weight", &[32], 8, q8);
    // One Q4_K block (144 bytes).
    w.tensor("blk.0.ffn_down.weight", &[256], 12, (0..144).map(|i| (i * 7) as u8).collect());
    w.bytes()
}

/// ChatML, as the seed template.
pub const CHATML: &str = "{%- for message in messages -%}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}";

/// Templates that must be stopped: loops without end, huge outputs, deep recursion.
pub const HOSTILE_TEMPLATES: [&str; 10] = [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% for k in range(100000) %}x{% endfor %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
    "{{ 'ab' * 1000000000 }}",
    "{% set ns = namespace(s='xx') %}{% for i in range(100000) %}{% for j in range(100000) %}{% set ns.s = ns.s ~ 'xyz' %}{% endfor %}{% endfor %}{{ ns.s|length }}",
    "{% for m in messages %}{% for m2 in messages %}{{ m.content * 100000 }}{% endfor %}{% endfor %}",
    "{{ raise_exception('hostile') }}",
    "{% for i in range(10) %}{{ strftime_now('%d %b %Y %%') }}{{ messages|tojson(indent=1000000) }}{% endfor %}",
    "{{ messages[0]['content'].startswith('x') }}{{ messages[99] }}{{ (messages|first).content.split('a') }}",
    "{% if true %}{% for x in [1, [2, [3, [4]]]] recursive %}{{ loop(x) if x is iterable }}{% endfor %}{% endif %}",
];

/// Small synthetic `config.json`s (llama, qwen2, gemma3).
pub fn configs() -> Vec<Vec<u8>> {
    let base = serde_json::json!({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 64, "hidden_size": 32,
        "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 8, "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": [2, 3],
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 64}
    });
    let mut qwen = base.clone();
    qwen["model_type"] = "qwen2".into();
    qwen["use_sliding_window"] = false.into();
    qwen["rope_scaling"] = serde_json::Value::Null;
    let gemma = serde_json::json!({
        "model_type": "gemma3_text", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
        "query_pre_attn_scalar": 8, "sliding_window": 4, "layer_types": ["sliding_attention", "full_attention"],
        "rope_local_base_freq": 10000.0, "rope_theta": 1000000.0, "final_logit_softcapping": null,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0}
    });
    let wrapped = serde_json::json!({"model_type": "gemma3", "text_config": gemma.clone()});
    [base, qwen, gemma, wrapped].iter().map(|v| serde_json::to_vec_pretty(v).expect("json")).collect()
}

/// Small `tokenizer.json`s: byte-level BPE and word-level, with added tokens.
pub fn tokenizers() -> Vec<Vec<u8>> {
    let bpe = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false,
                          "normalized": false, "special": true}],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\s?\\p{L}+|\\s?\\p{N}|\\s+"}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": {"<|endoftext|>": 0, "a": 1, "b": 2, "Ġ": 3, "ab": 4, "Ġa": 5, "Ġab": 6},
                  "merges": [["a", "b"], ["Ġ", "a"], ["Ġa", "b"]]}
    });
    let word = serde_json::json!({
        "version": "1.0", "added_tokens": [], "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}}], "pair": [{"Sequence": {"id": "A", "type_id": 0}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "<s>": 1, "hello": 2, "world": 3}, "unk_token": "<unk>"}
    });
    [bpe, word].iter().map(|v| serde_json::to_vec(v).expect("json")).collect()
}

/// A small safetensors file: an 8-byte header length, the JSON header, then the data.
pub fn safetensors(header: &serde_json::Value, data_len: usize) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("json");
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend((0..data_len).map(|i| i as u8));
    out
}

/// Synthetic safetensors seeds (F32, BF16, F16 tensors with HF names, and metadata).
pub fn safetensors_seeds() -> Vec<Vec<u8>> {
    let h = serde_json::json!({
        "__metadata__": {"format": "pt"},
        "model.embed_tokens.weight": {"dtype": "F32", "shape": [4, 2], "data_offsets": [0, 32]},
        "model.norm.weight": {"dtype": "BF16", "shape": [2], "data_offsets": [32, 36]},
        "lm_head.weight": {"dtype": "F16", "shape": [2, 2], "data_offsets": [36, 44]},
        "model.language_model.layers.0.mlp.up_proj.weight": {"dtype": "F64", "shape": [1], "data_offsets": [44, 52]}
    });
    vec![safetensors(&h, 52), safetensors(&serde_json::json!({}), 0)]
}

/// Data-file seeds per task format: BBH JSON, GSM8K / FOLIO / custom JSONL.
pub fn bbh() -> Vec<Vec<u8>> {
    let examples: Vec<serde_json::Value> = (0..120)
        .map(|i| {
            let (a, b) = (i % 2 == 0, i % 3 == 0);
            let input = format!("not ( {} ) and ( {} ) is", py(a), py(b));
            serde_json::json!({"input": input, "target": py(!a && b)})
        })
        .collect();
    vec![serde_json::to_vec(&serde_json::json!({ "examples": examples })).expect("json")]
}

fn py(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// `n` JSONL rows made by `row(i)`.
fn rows(n: usize, row: impl Fn(usize) -> String) -> Vec<u8> {
    (0..n).map(|i| row(i) + "\n").collect::<String>().into_bytes()
}

/// GSM8K seeds (enough rows for the train/dev split).
pub fn gsm8k() -> Vec<Vec<u8>> {
    let row = |i: usize| {
        format!(
            r#"{{"question": "Tom has {i} apples and buys 4. How many?", "answer": "{i} + 4 = {}\n#### {}"}}"#,
            i + 4,
            i + 4
        )
    };
    vec![rows(130, row)]
}

/// FOLIO seeds.
pub fn folio() -> Vec<Vec<u8>> {
    let labels = ["True", "False", "Uncertain"];
    let row = |i: usize| {
        format!(
            r#"{{"premises": ["All cats are mammals.", "Cat {i} is a cat."], "conclusion": "Cat {i} is a mammal.", "label": "{}"}}"#,
            labels[i % 3]
        )
    };
    vec![rows(130, row)]
}

/// Custom JSONL seeds: numbers, choices, yes/no.
pub fn custom() -> Vec<Vec<u8>> {
    vec![
        rows(70, |i| format!(r#"{{"input": "{i}+2?", "target": {}}}"#, i + 2)),
        rows(70, |i| format!(r#"{{"input": "pick {i}", "target": "red", "choices": ["blue", "red", "green"]}}"#)),
        rows(70, |i| format!(r#"{{"input": "is {i} even?", "target": "{}"}}"#, if i % 2 == 0 { "yes" } else { "no" })),
    ]
}

/// Custom CSV seeds: numbers, quoted inputs with commas and choices, yes/no.
pub fn custom_csv() -> Vec<Vec<u8>> {
    let with_header = |header: &str, body: Vec<u8>| [format!("{header}\n").into_bytes(), body].concat();
    vec![
        with_header("input,target", rows(70, |i| format!("{i}+2?,{}", i + 2))),
        with_header("id,input,target,choices", rows(70, |i| format!("{i},\"pick, {i}\",red,blue|red|green"))),
        with_header(
            "target,input",
            rows(70, |i| format!("{},\"is {i} \"\"even\"\"?\"", if i % 2 == 0 { "yes" } else { "no" })),
        ),
    ]
}

/// The first `max` bytes of every file under `dir` whose name ends with `suffix` (sorted).
fn heads(dir: &Path, suffix: &str, max: usize) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().ends_with(suffix)).collect();
    paths.sort();
    paths.iter().filter_map(|p| head(p, max)).collect()
}

fn head(path: &Path, max: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path).ok()?.take(max as u64).read_to_end(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

/// The model cache (`GREATER_CACHE`, else the user cache dir's `greater`).
pub fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("GREATER_CACHE").map(PathBuf::from).or_else(|| dirs::cache_dir().map(|d| d.join("greater")))
}

/// Cached GGUF files cut before their tensor data: the header with the tensor directory, and
/// the metadata alone (tensor count set to 0).
pub fn real_gguf_headers() -> Vec<Vec<u8>> {
    let Some(dir) = cache_dir().map(|d| d.join("models")) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "gguf")).collect();
    paths.sort();
    for path in paths {
        let Ok(file) = greater_models::loading::GgufFile::open(&path) else { continue };
        let Some(bytes) = head(&path, file.data_offset()) else { continue };
        let mut meta_only = bytes.clone();
        meta_only[8..16].copy_from_slice(&0u64.to_le_bytes());
        out.push(meta_only);
        out.push(bytes);
    }
    out
}

/// Real Hugging Face files in the cache (`config.json`, `tokenizer.json`), under `models/`.
pub fn real_hf(name: &str) -> Vec<Vec<u8>> {
    let Some(dir) = cache_dir().map(|d| d.join("models")) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        if let Some(bytes) = head(&e.path().join(name), 64 << 20) {
            out.push(bytes);
        }
    }
    out
}

/// The head of a dataset file under `GREATER_DATA` (JSONL: whole lines only).
pub fn real_data(relative: &str, max: usize) -> Vec<Vec<u8>> {
    let Some(root) = std::env::var_os("GREATER_DATA").map(PathBuf::from) else { return Vec::new() };
    let path = root.join(relative);
    if relative.ends_with(".json") {
        return head(&path, 1 << 20).into_iter().collect();
    }
    let Some(mut bytes) = head(&path, max) else { return Vec::new() };
    if let Some(end) = bytes.iter().rposition(|&b| b == b'\n') {
        bytes.truncate(end + 1);
    }
    vec![bytes]
}

/// Every BBH file's first 64 KiB under `GREATER_DATA/bbh` (not valid JSON when cut: mutation
/// seeds all the same).
pub fn real_bbh() -> Vec<Vec<u8>> {
    let Some(root) = std::env::var_os("GREATER_DATA").map(PathBuf::from) else { return Vec::new() };
    heads(&root.join("bbh"), ".json", 64 << 10).into_iter().take(6).collect()
}
