//! The fuzz targets: one per parser, each with its seeds, how its inputs are mutated, and how
//! an input is fed to the product code. A target returns `Ok` when the input was accepted and
//! `Err(message)` when it was rejected; panics, hangs and over-cap allocations are findings.

use std::path::{Path, PathBuf};

use greater_models::chat::{ChatMessage, ChatTemplate, TemplateSource};
use greater_models::config::ModelConfig;
use greater_models::loading::{GgmlType, GgufFile, SafetensorsWeights, WeightSource, dequant};
use greater_models::tokenizer::Tokenizer;
use greater_tasks::Source;

use crate::mutate::{INTERESTING, Rng};
use crate::seeds;

/// How a target's inputs are mutated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Bytes only.
    Bytes,
    /// JSON values (falling back to bytes).
    Json,
    /// JSON lines: one line mutated as JSON, or bytes.
    JsonLines,
    /// Text (templates, TOML): bytes and token insertions.
    Text,
    /// safetensors: the header mutated as JSON, or bytes.
    Safetensors,
}

/// What a target sees besides its input.
#[derive(Debug)]
pub struct Ctx {
    /// A folder of its own.
    pub dir: PathBuf,
    /// `dir/<file>`: the driver writes each input there before running it.
    pub input: PathBuf,
    /// A small tokenizer (chat templates need one for their special tokens).
    pub tokenizer: Tokenizer,
}

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name for `--target`.
    pub name: &'static str,
    /// What the target covers, for `--list`.
    pub about: &'static str,
    /// The input's file name inside the target's folder.
    pub file: &'static str,
    /// Mutation style.
    pub style: Style,
    /// Seeds: synthetic, plus real files when `real` is set.
    pub seeds: fn(real: bool) -> Vec<Vec<u8>>,
    /// Generates a fresh input instead of mutating (some targets), else `None`.
    pub generate: Option<fn(&mut Rng) -> Vec<u8>>,
    /// Feeds the input (already written to `ctx.dir/file`) to the product code.
    pub run: fn(&Ctx, &[u8]) -> Result<(), String>,
}

/// Every target, in `cargo xtask fuzz` order.
pub const TARGETS: [Target; 13] = [
    Target {
        name: "gguf",
        about: "GGUF header, metadata, tensor directory; then config, tokenizer, chat template and tensors from it",
        file: "input.gguf",
        style: Style::Bytes,
        seeds: gguf_seeds,
        generate: Some(generate_gguf),
        run: run_gguf,
    },
    Target {
        name: "dequant",
        about: "every supported ggml block type, random blocks and random element counts",
        file: "blocks.bin",
        style: Style::Bytes,
        seeds: dequant_seeds,
        generate: Some(generate_blocks),
        run: run_dequant,
    },
    Target {
        name: "safetensors",
        about: "safetensors header and tensor reads",
        file: "model.safetensors",
        style: Style::Safetensors,
        seeds: |_| seeds::safetensors_seeds(),
        generate: None,
        run: run_safetensors,
    },
    Target {
        name: "config",
        about: "Hugging Face config.json to a validated ModelConfig",
        file: "config.json",
        style: Style::Json,
        seeds: |real| [seeds::configs(), if real { seeds::real_hf("config.json") } else { vec![] }].concat(),
        generate: None,
        run: run_config,
    },
    Target {
        name: "tokenizer",
        about: "Hugging Face tokenizer.json, then encode and decode",
        file: "tokenizer.json",
        style: Style::Json,
        seeds: |real| [seeds::tokenizers(), if real { seeds::real_hf("tokenizer.json") } else { vec![] }].concat(),
        generate: None,
        run: run_tokenizer,
    },
    Target {
        name: "template",
        about: "chat templates (minijinja), hostile ones included: endless loops, huge outputs, recursion",
        file: "chat_template.jinja",
        style: Style::Text,
        seeds: |_| {
            let mut v: Vec<Vec<u8>> = seeds::HOSTILE_TEMPLATES.iter().map(|t| t.as_bytes().to_vec()).collect();
            v.push(seeds::CHATML.as_bytes().to_vec());
            v.push(greater_models::chat::GEMMA_FALLBACK_TEMPLATE.as_bytes().to_vec());
            v
        },
        generate: Some(generate_template),
        run: run_template,
    },
    Target {
        name: "bbh",
        about: "BBH task files ({\"examples\": [..]}) through task loading and splitting",
        file: "bbh/boolean_expressions.json",
        style: Style::Json,
        seeds: |real| {
            [seeds::bbh(), if real { seeds::real_data("bbh/boolean_expressions.json", 0) } else { vec![] }].concat()
        },
        generate: None,
        run: |ctx, _| run_task(ctx, "bbh/boolean_expressions"),
    },
    Target {
        name: "gsm8k",
        about: "GSM8K JSONL through task loading",
        file: "gsm8k/test.jsonl",
        style: Style::JsonLines,
        seeds: |real| {
            [seeds::gsm8k(), if real { seeds::real_data("gsm8k/test.jsonl", 160 << 10) } else { vec![] }].concat()
        },
        generate: None,
        run: |ctx, _| run_task(ctx, "gsm8k"),
    },
    Target {
        name: "folio",
        about: "FOLIO JSONL through task loading",
        file: "folio/folio-validation.jsonl",
        style: Style::JsonLines,
        seeds: |real| {
            [seeds::folio(), if real { seeds::real_data("folio/folio-validation.jsonl", 320 << 10) } else { vec![] }]
                .concat()
        },
        generate: None,
        run: |ctx, _| run_task(ctx, "folio"),
    },
    Target {
        name: "jsonl",
        about: "custom JSONL tasks (answer kind inferred from the targets)",
        file: "custom.jsonl",
        style: Style::JsonLines,
        seeds: |_| seeds::custom(),
        generate: None,
        run: |ctx, _| greater_tasks::load_custom(&ctx.dir.join("custom.jsonl")).map(|_| ()).map_err(|e| e.to_string()),
    },
    Target {
        name: "csv",
        about: "custom CSV tasks (header-named columns, quoted fields, `|`-separated choices)",
        file: "custom.csv",
        style: Style::Text,
        seeds: |_| seeds::custom_csv(),
        generate: None,
        run: |ctx, _| greater_tasks::load_custom(&ctx.dir.join("custom.csv")).map(|_| ()).map_err(|e| e.to_string()),
    },
    Target {
        name: "tasks-toml",
        about: "the task-spec TOML (tasks.toml) through parsing and resolution",
        file: "tasks.toml",
        style: Style::Text,
        seeds: |_| vec![greater_tasks::TASKS_TOML.as_bytes().to_vec()],
        generate: None,
        run: |_, input| {
            let text = std::str::from_utf8(input).map_err(|e| e.to_string())?;
            greater_tasks::check_spec_file(text).map(|_| ()).map_err(|e| e.to_string())
        },
    },
    Target {
        name: "gguf-meta",
        about: "GGUF metadata alone (no tensors): config, tokenizer and template from real headers",
        file: "meta.gguf",
        style: Style::Bytes,
        seeds: |real| {
            let mut v = vec![seeds::tiny_gguf(false), seeds::tiny_gguf(true)];
            if real {
                v.extend(seeds::real_gguf_headers().into_iter().step_by(2));
            }
            v
        },
        generate: None,
        run: run_gguf,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn gguf_seeds(real: bool) -> Vec<Vec<u8>> {
    let mut v = vec![seeds::tiny_gguf(false), seeds::tiny_gguf(true)];
    if real {
        v.extend(seeds::real_gguf_headers().into_iter().skip(1).step_by(2));
    }
    v
}

fn run_gguf(ctx: &Ctx, input: &[u8]) -> Result<(), String> {
    let _ = input;
    let path = &ctx.input;
    let file = GgufFile::open(path).map_err(|e| e.to_string())?;
    for info in file.tensors().iter().take(16) {
        let _ = file.tensor_f32(&info.name);
    }
    let meta = file.metadata();
    let has_output = file.tensor_info("output.weight").is_some();
    let config = ModelConfig::from_gguf(meta, has_output).map_err(|e| e.to_string());
    if let Ok(c) = &config {
        let _ = c.validate(path).map(|_| c.num_parameters());
    }
    let tokenizer = Tokenizer::from_gguf(meta, path).map_err(|e| e.to_string())?;
    exercise_tokenizer(&tokenizer);
    let family = config.as_ref().map_or(greater_models::config::Family::Llama, |c| c.family);
    let template = ChatTemplate::from_gguf(meta, path, family, &tokenizer).map_err(|e| e.to_string())?;
    template.render(&messages(), true).map_err(|e| e.to_string())?;
    let _ = greater_models::loading::GgufWeights::from_metadata(file);
    Ok(())
}

fn exercise_tokenizer(tok: &Tokenizer) {
    for text in ["Hello world, 12 + 30 = 42!", "<|im_start|>user\nab ab<|im_end|>", "\u{1F600} é\t\n  x", ""] {
        if let Ok(enc) = tok.encode_with_offsets(text, true) {
            let _ = tok.decode(&enc.ids, false);
            let _ = tok.decode(&enc.ids, true);
        }
    }
    let _ = tok.decode(&[0, 1, 2, u32::MAX, tok.vocab_size() as u32], false);
    let _ = tok.id_to_token(u32::MAX);
}

fn messages() -> Vec<ChatMessage> {
    vec![ChatMessage::system("Be brief."), ChatMessage::user("What is 2+2?"), ChatMessage::assistant("4")]
}

/// Supported type ids, for the dequantiser target's first byte.
const DEQUANT_TYPES: [u32; 15] = [0, 1, 30, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn dequant_seeds(_: bool) -> Vec<Vec<u8>> {
    DEQUANT_TYPES
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let mut v = vec![i as u8, 0, 0, 0, 0];
            v.extend((0..300).map(|j| (j * 31 + i) as u8));
            v
        })
        .collect()
}

fn generate_blocks(rng: &mut Rng) -> Vec<u8> {
    let ty = GgmlType::from_id(*rng.pick(&DEQUANT_TYPES));
    let (block, size) = (ty.block_size().unwrap_or(1), ty.type_size().unwrap_or(4));
    let blocks = rng.below(5);
    let mut v = vec![DEQUANT_TYPES.iter().position(|&t| t == ty.id()).unwrap_or(0) as u8];
    // A claimed element count: usually right, sometimes interesting.
    let n = if rng.one_in(3) { *rng.pick(&INTERESTING) as u32 } else { (blocks * block) as u32 };
    v.extend(n.to_le_bytes());
    // Random blocks, often with NaN/inf scales (f16 0x7C00 / 0x7E00).
    for _ in 0..blocks * size {
        v.push(rng.next_u64() as u8);
    }
    if rng.one_in(4) && v.len() > 7 {
        v[5..7].copy_from_slice(&0x7E00u16.to_le_bytes());
    }
    v
}

fn run_dequant(_: &Ctx, input: &[u8]) -> Result<(), String> {
    let Some((&which, rest)) = input.split_first() else { return Err("empty".into()) };
    let ty = GgmlType::from_id(DEQUANT_TYPES[which as usize % DEQUANT_TYPES.len()]);
    let (claim, data) = if rest.len() >= 4 { rest.split_at(4) } else { (&[0u8; 4][..], rest) };
    let claimed = u32::from_le_bytes(claim.try_into().expect("4 bytes")) as usize;
    let natural = data.len() / ty.type_size().unwrap_or(1) * ty.block_size().unwrap_or(1);
    let exact = ty.byte_len(natural).map_or(data, |len| &data[..len.min(data.len())]);
    let _ = dequant::dequantize(ty, exact, natural);
    let _ = dequant::dequantize(ty, data, natural);
    // A claimed count larger than the data must be refused before its buffer is allocated.
    dequant::dequantize(ty, data, claimed).map(|_| ()).map_err(|e| e.to_string())
}

fn run_safetensors(ctx: &Ctx, _: &[u8]) -> Result<(), String> {
    let w = SafetensorsWeights::open(ctx.dir.join("model.safetensors")).map_err(|e| e.to_string())?;
    for name in w.names().into_iter().take(16) {
        let _ = w.shape(&name);
        let _ = w.dtype(&name);
        let _ = w.tensor(&name);
    }
    Ok(())
}

fn run_config(ctx: &Ctx, _: &[u8]) -> Result<(), String> {
    let path = ctx.dir.join("config.json");
    let c = ModelConfig::from_hf_config(&path).map_err(|e| e.to_string())?;
    c.validate(&path).map_err(|e| e.to_string())?;
    let _ = c.num_parameters();
    let _ = greater_models::AnyModel::expected_tensors(&c);
    Ok(())
}

fn run_tokenizer(ctx: &Ctx, _: &[u8]) -> Result<(), String> {
    let tok = Tokenizer::from_file(ctx.dir.join("tokenizer.json"), None).map_err(|e| e.to_string())?;
    exercise_tokenizer(&tok);
    Ok(())
}

/// Pieces that hostile and ordinary templates are made of.
const TEMPLATE_PIECES: [&str; 24] = [
    "{% for m in messages %}",
    "{% endfor %}",
    "{% for i in range(100000) %}",
    "{% if loop.first %}",
    "{% endif %}",
    "{{ m['content'] }}",
    "{{ m.role }}",
    "{{ bos_token }}",
    "{{ 'x' * 99999 }}",
    "{{ messages|tojson }}",
    "{% set ns = namespace(a='a') %}",
    "{% set ns.a = ns.a ~ 'abc' %}",
    "{% macro r(n) %}{{ r(n) }}{% endmacro %}",
    "{{ r(1) }}",
    "{{ raise_exception('no') }}",
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    "{{ (m.content|trim).split(' ')|join('-') }}",
    "{%- if m.role == 'system' -%}",
    "{{ m.content.startswith('W') }}",
    "{{ strftime_now('%Y-%m-%d') }}",
    "{% generation %}",
    "{{ messages[1:]|length }}",
    "<|im_end|>\n",
    "{{ loop.index0 }}",
];

fn generate_template(rng: &mut Rng) -> Vec<u8> {
    (0..1 + rng.below(12)).map(|_| *rng.pick(&TEMPLATE_PIECES)).collect::<String>().into_bytes()
}

fn run_template(ctx: &Ctx, input: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(input);
    let origin = ctx.dir.join("chat_template.jinja");
    let t = ChatTemplate::new(text, TemplateSource::Model, &origin, "chat_template", &ctx.tokenizer)
        .map_err(|e| e.to_string())?;
    t.render(&messages(), true).map_err(|e| e.to_string())?;
    t.render(&[], false).map(|_| ()).map_err(|e| e.to_string())
}

fn run_task(ctx: &Ctx, name: &str) -> Result<(), String> {
    let spec = greater_tasks::spec(name).map_err(|e| e.to_string())?;
    // The driver wrote the input to the target's `file`; every other file of the task gets the same bytes.
    let written = match &spec.source {
        Source::Bbh { file } => vec![file.clone()],
        Source::Gsm8k { train_file, test_file } | Source::Folio { train_file, test_file, .. } => {
            vec![train_file.clone(), test_file.clone()]
        }
        _ => vec![],
    };
    copy_to_all(&ctx.input, &ctx.dir, &written)?;
    greater_tasks::load(spec, &ctx.dir).map(|_| ()).map_err(|e| e.to_string())
}

/// Makes every file in `files` (relative to `dir`) a copy of `source`.
fn copy_to_all(source: &Path, dir: &Path, files: &[PathBuf]) -> Result<(), String> {
    for f in files {
        let p = dir.join(f);
        if p != source {
            std::fs::copy(source, &p).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// A random GGUF header: random counts (often interesting claims), random key/value types,
/// arrays of random claimed lengths, tensor entries with random dimensions and types.
fn generate_gguf(rng: &mut Rng) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend((*rng.pick(&[2u32, 3, 3, 3, 1, 0x0300_0000])).to_le_bytes());
    let n_tensors = if rng.one_in(3) { *rng.pick(&INTERESTING) } else { rng.below(4) as u64 };
    let n_kv = if rng.one_in(3) { *rng.pick(&INTERESTING) } else { rng.below(6) as u64 };
    out.extend(n_tensors.to_le_bytes());
    out.extend(n_kv.to_le_bytes());
    let keys = ["general.architecture", "general.alignment", "llama.block_count", "tokenizer.ggml.tokens", "k"];
    for _ in 0..n_kv.min(8) {
        let key = *rng.pick(&keys);
        let claim = if rng.one_in(5) { *rng.pick(&INTERESTING) } else { key.len() as u64 };
        out.extend(claim.to_le_bytes());
        out.extend(key.as_bytes());
        let ty = rng.below(14) as u32;
        out.extend(ty.to_le_bytes());
        gguf_value(rng, ty, &mut out, 0);
    }
    for i in 0..n_tensors.min(4) {
        let name = format!("blk.{i}.w");
        out.extend((name.len() as u64).to_le_bytes());
        out.extend(name.as_bytes());
        let n_dims = rng.below(6) as u32;
        out.extend(n_dims.to_le_bytes());
        for _ in 0..n_dims {
            let d = if rng.one_in(4) { *rng.pick(&INTERESTING) } else { 1 + rng.below(64) as u64 };
            out.extend(d.to_le_bytes());
        }
        out.extend((rng.below(40) as u32).to_le_bytes());
        out.extend((32 * rng.below(3) as u64).to_le_bytes());
    }
    out.resize(out.len().next_multiple_of(32) + rng.below(512), 0x11);
    out
}

fn gguf_value(rng: &mut Rng, ty: u32, out: &mut Vec<u8>, depth: usize) {
    match ty {
        0 | 1 | 7 => out.push(rng.below(3) as u8),
        2 | 3 => out.extend((rng.next_u64() as u16).to_le_bytes()),
        4..=6 => out.extend((*rng.pick(&INTERESTING) as u32).to_le_bytes()),
        8 => {
            let s = "llama";
            let claim = if rng.one_in(5) { *rng.pick(&INTERESTING) } else { s.len() as u64 };
            out.extend(claim.to_le_bytes());
            out.extend(s.as_bytes());
        }
        9 if depth < 3 => {
            let elem = rng.below(13) as u32;
            out.extend(elem.to_le_bytes());
            let n = if rng.one_in(3) { *rng.pick(&INTERESTING) } else { rng.below(5) as u64 };
            out.extend(n.to_le_bytes());
            for _ in 0..n.min(6) {
                gguf_value(rng, elem, out, depth + 1);
            }
        }
        _ => out.extend(rng.next_u64().to_le_bytes()),
    }
}
