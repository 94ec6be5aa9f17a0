//! A tiny random model as a folder, for tests of this crate and the crates above it (no download, no
//! weights in the repository): a complete Hugging Face folder that [`LoadedModel::load`] reads
//! like a real checkpoint.
//!
//! [`LoadedModel::load`]: crate::model::LoadedModel::load

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

use crate::LoadError;
use crate::arch::AnyModel;
use crate::config::{Family, ModelConfig};
use crate::loading::memory::MemoryWeights;

/// Special tokens of the tiny vocabulary, ids 0–5.
const SPECIAL: [&str; 6] = ["<pad>", "<eos>", "<bos>", "<unk>", "<|im_start|>", "<|im_end|>"];

/// Words of the tiny vocabulary after the special tokens: enough for the generated boolean and
/// arithmetic tasks and the default prompts to tokenise without `<unk>`.
const WORDS: &str = "user assistant system True False and or not ( ) is . , ? ! : ; Use think step by Finally give \
    the actual correct answer So Let ' s A B C D Yes No 0 1 2 3 4 5 6 7 8 9 + - * = a an of to in it we that this";

/// The number of tokens of [`write_tiny_model`]'s vocabulary (rounded up to 64 with `w<i>` fillers).
pub fn tiny_vocab_size() -> usize {
    (SPECIAL.len() + WORDS.split_whitespace().count()).next_multiple_of(64)
}

/// Writes a tiny random Llama as a Hugging Face folder into `dir`: `config.json` (2 layers,
/// hidden 32), `model.safetensors` (f32 weights drawn from `seed`), a word-level
/// `tokenizer.json` that splits on whitespace and punctuation, and `tokenizer_config.json` with
/// a ChatML template.
pub fn write_tiny_model(dir: &Path, seed: u64) -> Result<(), LoadError> {
    let vocab = tiny_vocab_size();
    let mut config = ModelConfig::tiny(Family::Llama);
    config.vocab_size = vocab;
    config.max_position_embeddings = 512;
    std::fs::create_dir_all(dir).map_err(|e| LoadError::io(dir, e))?;
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).map_err(|e| LoadError::io(dir, e));
    let hf = json!({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": vocab,
        "hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads, "head_dim": config.head_dim,
        "max_position_embeddings": config.max_position_embeddings, "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta, "hidden_act": "silu", "tie_word_embeddings": config.tie_word_embeddings,
        "torch_dtype": "float32", "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
    });
    write("config.json", hf.to_string())?;
    write_tokenizer(dir, vocab)?;
    let template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
                    {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    let tokenizer_config = json!({
        "bos_token": "<bos>", "eos_token": "<|im_end|>", "pad_token": "<pad>", "unk_token": "<unk>",
        "add_bos_token": false, "chat_template": template,
    });
    write("tokenizer_config.json", tokenizer_config.to_string())?;
    let weights = MemoryWeights::random(&AnyModel::expected_tensors(&config), seed, 0.3, false);
    write_safetensors(&dir.join("model.safetensors"), &weights)
}

fn write_tokenizer(dir: &Path, vocab: usize) -> Result<(), LoadError> {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::{AddedToken, Tokenizer};
    let path = dir.join("tokenizer.json");
    let err = |e: tokenizers::Error| LoadError::Tokenizer { path: path.clone(), reason: e.to_string() };
    let mut tokens: Vec<String> = SPECIAL.iter().map(|s| s.to_string()).collect();
    tokens.extend(WORDS.split_whitespace().map(String::from));
    while tokens.len() < vocab {
        tokens.push(format!("w{}", tokens.len()));
    }
    let model = WordLevel::builder()
        .vocab(tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect())
        .unk_token("<unk>".into())
        .build()
        .map_err(err)?;
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Whitespace {}));
    tok.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
    tok.add_special_tokens(SPECIAL.iter().map(|s| AddedToken::from(*s, true))).map_err(err)?;
    tok.save(&path, false).map_err(err)
}

fn write_safetensors(path: &Path, w: &MemoryWeights) -> Result<(), LoadError> {
    use safetensors::tensor::TensorView;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = w
        .iter()
        .map(|(n, t)| (n.clone(), t.shape.clone(), t.data.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(n, shape, b)| Ok((n.clone(), TensorView::new(safetensors::Dtype::F32, shape.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| LoadError::format(path, e.to_string()))?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path).map_err(|e| LoadError::format(path, e.to_string()))
}
