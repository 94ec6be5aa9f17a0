//! [`LoadedModel`]: a model, its tokenizer and its chat template, from one path.
//!
//! A path is either a GGUF file (weights, config, tokenizer and template all come from it) or a
//! Hugging Face folder (`config.json`, `model.safetensors` or a sharded index, `tokenizer.json`,
//! `tokenizer_config.json`).

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::LoadError;
use crate::arch::{AnyModel, CausalLm};
use crate::chat::{ChatMessage, ChatTemplate};
use crate::config::ModelConfig;
use crate::loading::GgufFile;
use crate::loading::gguf_weights::GgufWeights;
use crate::loading::safetensors::SafetensorsWeights;
use crate::tokenizer::Tokenizer;

/// The file layout a model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    /// One GGUF file.
    Gguf,
    /// A Hugging Face folder with safetensors.
    HuggingFace,
}

/// Everything needed to run a model on text.
#[derive(Debug)]
pub struct LoadedModel {
    /// The network, on its device.
    pub model: AnyModel,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Its chat template (the model's own, or a built-in fallback).
    pub chat: ChatTemplate,
    /// Where it was loaded from.
    pub source: PathBuf,
    /// The file layout.
    pub format: Format,
}

impl LoadedModel {
    /// Load a GGUF file or a Hugging Face folder onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, LoadError> {
        if path.is_dir() { Self::load_hf(path, device) } else { Self::load_gguf(path, device) }
    }

    fn load_gguf(path: &Path, device: &Device) -> Result<Self, LoadError> {
        let file = GgufFile::open(path)?;
        let has_output = file.tensor_info("output.weight").is_some();
        let config = ModelConfig::from_gguf(file.metadata(), has_output)?;
        config.validate(path)?;
        let tokenizer = Tokenizer::from_gguf(file.metadata(), path)?;
        tokenizer.check_model_vocab(config.vocab_size)?;
        let chat = ChatTemplate::from_gguf(file.metadata(), path, config.family, &tokenizer)?;
        let weights = GgufWeights::new(file, config.family, config.num_hidden_layers)?;
        let model = AnyModel::load(&config, &weights, device)?;
        Ok(Self { model, tokenizer, chat, source: path.to_path_buf(), format: Format::Gguf })
    }

    fn load_hf(dir: &Path, device: &Device) -> Result<Self, LoadError> {
        let config = ModelConfig::from_hf_config(dir.join("config.json"))?;
        config.validate(dir.join("config.json"))?;
        let tok_config = dir.join("tokenizer_config.json");
        let tok_config = tok_config.is_file().then_some(tok_config);
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"), tok_config.as_deref())?;
        tokenizer.check_model_vocab(config.vocab_size)?;
        let chat = match &tok_config {
            Some(p) => ChatTemplate::from_tokenizer_config(p, config.family, &tokenizer)?,
            None => ChatTemplate::fallback(config.family, &tokenizer)?,
        };
        let weights = SafetensorsWeights::open(dir)?;
        let model = AnyModel::load(&config, &weights, device)?;
        Ok(Self { model, tokenizer, chat, source: dir.to_path_buf(), format: Format::HuggingFace })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    /// Render one user message with the model's template and the generation prompt, and encode
    /// it (the template writes any BOS itself).
    pub fn encode_chat(&self, user: &str) -> Result<Vec<u32>, LoadError> {
        let text = self.chat.render(&[ChatMessage::user(user)], true)?;
        self.tokenizer.encode(&text, false)
    }
}
