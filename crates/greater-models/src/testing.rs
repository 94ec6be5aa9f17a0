//! A complete tiny model in memory — network, tokenizer and chat template — for hermetic tests and
//! benchmarks of the layers above (the optimiser, the evaluation runner) that need no file.
//!
//! The tokenizer is byte-level BPE without merges: every byte is one token, so any text encodes,
//! offsets are exact and every ASCII letter is its own token. ChatML control tokens and EOS follow
//! the 256 byte tokens. The network is [`ModelConfig::tiny`] with seeded random weights.
//!
//! [`write_tiny_model`] writes a tiny model as a Hugging Face folder instead, for tests that go
//! through files (the CLI, checkpoints under fault injection).

mod folder;

pub use folder::{tiny_vocab_size, write_tiny_model};

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

use crate::LoadError;
use crate::arch::AnyModel;
use crate::chat::ChatTemplate;
use crate::config::{Family, ModelConfig};
use crate::loading::memory::MemoryWeights;
use crate::model::{Format, LoadedModel};
use crate::tokenizer::{SpecialIds, Tokenizer};

/// The special tokens after the 256 byte tokens, in id order.
const SPECIAL: [&str; 4] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"];

/// Vocabulary size of [`tiny_loaded`]: 256 byte tokens and [`SPECIAL`].
pub const TINY_VOCAB: usize = 256 + SPECIAL.len();

/// A byte-level tokenizer over [`TINY_VOCAB`] ids: EOS `<|endoftext|>` (256), ChatML markers 257
/// and 258 (`<|im_end|>` ends a turn), `<pad>` 259.
pub fn tiny_tokenizer() -> Result<Tokenizer, LoadError> {
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort_unstable();
    let vocab: tokenizers::models::bpe::Vocab = alphabet.into_iter().map(|c| c.to_string()).zip(0u32..).collect();
    debug_assert_eq!(vocab.len(), 256);
    let origin = std::path::PathBuf::from("<tiny byte-level tokenizer>");
    let bad = |e: tokenizers::Error| LoadError::Tokenizer { path: origin.clone(), reason: e.to_string() };
    let bpe = BPE::builder().vocab_and_merges(vocab, Vec::new()).build().map_err(bad)?;
    let mut inner = HfTokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(ByteLevel::new(false, false, false)));
    inner.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    inner.add_special_tokens(SPECIAL.map(|s| AddedToken::from(s, true).normalized(false))).map_err(bad)?;
    let special = SpecialIds { bos: None, eos: Some(256), pad: Some(259), unk: None };
    Tokenizer::from_pipeline(inner, origin, special, false, TINY_VOCAB)
}

/// A tiny `family` model with weights from `seed`, the byte-level tokenizer and the built-in chat
/// template of the family. Logits are those of a random network: tests compare paths, not quality.
pub fn tiny_loaded(family: Family, seed: u64) -> Result<LoadedModel, LoadError> {
    let mut config = ModelConfig::tiny(family);
    config.vocab_size = TINY_VOCAB;
    config.max_position_embeddings = 4096;
    let weights = MemoryWeights::random(&AnyModel::expected_tensors(&config), seed, 0.3, family.is_gemma());
    let model = AnyModel::load(&config, &weights, &crate::default_device())?;
    let tokenizer = tiny_tokenizer()?;
    let chat = ChatTemplate::fallback(Family::Llama, &tokenizer)?;
    let source = format!("<tiny random {} model, seed {seed}>", family.name()).into();
    Ok(LoadedModel { model, tokenizer, chat, source, format: Format::HuggingFace })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_a_token_and_text_round_trips() {
        let tok = tiny_tokenizer().unwrap();
        let text = "not ( True and False ) is. Think step by step.";
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(ids.len(), text.len());
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        let chat = tok.encode("<|im_start|>user", false).unwrap();
        assert_eq!(chat[0], 257);
        assert!(tok.stop_ids().contains(&258) && tok.stop_ids().contains(&256));
    }

    #[test]
    fn tiny_model_renders_and_generates() {
        let m = tiny_loaded(Family::Llama, 3).unwrap();
        let text = m.chat.render(&[crate::chat::ChatMessage::user("hi")], true).unwrap();
        let ids = m.tokenizer.encode(&text, false).unwrap();
        let opts = crate::generate::GenerateOptions { max_new_tokens: 4, stop_ids: vec![] };
        let g = crate::generate::generate(&m.model, &[ids], &opts, |_, _| {}).unwrap();
        assert_eq!(g[0].ids.len(), 4);
    }
}
