//! The tokenizer: a [`tokenizers::Tokenizer`] plus what a causal LM needs around it — the
//! special ids, whether BOS is prepended, and the ids that end a generated turn.
//!
//! Two front doors build it:
//! - [`Tokenizer::from_file`]: a Hugging Face `tokenizer.json`, with special tokens and
//!   `add_bos_token` from `tokenizer_config.json` where present;
//! - [`Tokenizer::from_gguf`]: the `tokenizer.ggml.*` metadata of a GGUF file, turned into an
//!   equivalent `tokenizers` pipeline in code (byte-level BPE for `gpt2`, score-ranked
//!   SentencePiece-style BPE for `llama`; see `gguf.rs`).
//!
//! `encode` never runs the `tokenizers` post-processor: BOS is prepended here, by one rule
//! (`add_special && add_bos_token`), whichever front door built the tokenizer. Control tokens
//! (`<|im_start|>`, `<start_of_turn>`, …) are matched literally in text, as Hugging Face and
//! llama.cpp do, so a rendered chat template encodes to the ids the model was trained on.

mod gguf;
mod hf;

pub(crate) use hf::read_json;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::LoadError;

/// Tokens that end an assistant turn in the chat formats this crate knows. Together with EOS they
/// form [`Tokenizer::stop_ids`]. `<|endoftext|>` is deliberately absent: SmolLM2 and Qwen2.5
/// use it as a document separator, and their `generation_config.json` does not stop on it.
const END_OF_TURN_TOKENS: [&str; 5] = ["<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|eom_id|>", "<|end|>"];

/// The largest vocabulary accepted (2^20 tokens; real models have at most 262 144). A file that
/// claims more is refused, naming the field, before the tokenizer is built.
pub const MAX_VOCAB: usize = 1 << 20;
/// The most BPE merges accepted from a file (real tokenizers have under 300 000).
pub const MAX_MERGES: usize = 1_000_000;
/// The most merges derived from a SentencePiece vocabulary (every split of every token whose
/// halves are tokens; Gemma's 262 144 tokens give well under this).
pub const MAX_DERIVED_MERGES: usize = 8 << 20;
/// The largest `tokenizer.json` read (real ones are under 40 MiB).
pub const MAX_TOKENIZER_JSON_BYTES: u64 = 512 << 20;

/// A tokenizer with the special ids, BOS rule and stop ids of its model.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    origin: PathBuf,
    special: SpecialIds,
    add_bos_token: bool,
    stop_ids: Vec<u32>,
    vocab_size: usize,
    control_ids: HashSet<u32>,
}

/// The ids of the model's special tokens, each absent when the model defines none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecialIds {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// Padding.
    pub pad: Option<u32>,
    /// Unknown token.
    pub unk: Option<u32>,
}

/// Token ids together with the part of the input each token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodingWithOffsets {
    /// The token ids (with BOS first when it was asked for).
    pub ids: Vec<u32>,
    /// For each id, the **byte** range `start..end` of the input text it covers. A prepended BOS
    /// covers `(0, 0)`. Pieces of one character (byte-fallback or byte-level tokens of an emoji)
    /// each cover the whole character.
    pub offsets: Vec<(usize, usize)>,
}

impl Tokenizer {
    /// Loads a Hugging Face tokenizer: `tokenizer_json` is `tokenizer.json`; `tokenizer_config`
    /// (usually the `tokenizer_config.json` beside it) supplies `bos_token`, `eos_token`,
    /// `pad_token`, `unk_token` and `add_bos_token`. Without it, special ids stay unset and BOS is
    /// added only if the file's own post-processor adds it.
    pub fn from_file(tokenizer_json: impl AsRef<Path>, tokenizer_config: Option<&Path>) -> Result<Self, LoadError> {
        hf::load(tokenizer_json.as_ref(), tokenizer_config)
    }

    /// Builds the tokenizer stored in GGUF metadata (`tokenizer.ggml.*`). `path` is the GGUF file,
    /// for error messages.
    ///
    /// Supported: `tokenizer.ggml.model = gpt2` (byte-level BPE from `tokens` + `merges`, with the
    /// pre-tokenizer named by `tokenizer.ggml.pre`) and `llama` (SentencePiece-style BPE from
    /// `tokens` + `scores`, byte fallback, `add_space_prefix`). Control and user-defined tokens are
    /// matched literally in text.
    pub fn from_gguf(metadata: &crate::loading::Metadata, path: impl AsRef<Path>) -> Result<Self, LoadError> {
        gguf::load(metadata, path.as_ref())
    }

    /// Assembles a tokenizer from a built pipeline: the two front doors use it, and so do tests and
    /// random models that build one in code. `origin` names it in errors; `vocab_size` is the
    /// number of ids the model knows, and every special id must be below it.
    pub fn from_pipeline(
        inner: tokenizers::Tokenizer,
        origin: PathBuf,
        special: SpecialIds,
        add_bos_token: bool,
        vocab_size: usize,
    ) -> Result<Self, LoadError> {
        for (name, id) in [("bos", special.bos), ("eos", special.eos), ("pad", special.pad), ("unk", special.unk)] {
            if let Some(id) = id.filter(|&id| id as usize >= vocab_size) {
                return Err(LoadError::Tokenizer {
                    path: origin,
                    reason: format!("{name} id {id} is outside the vocabulary of {vocab_size} tokens"),
                });
            }
        }
        if add_bos_token && special.bos.is_none() {
            return Err(LoadError::Tokenizer {
                path: origin,
                reason: "add_bos_token is set but the model defines no bos token".into(),
            });
        }
        let control_ids: HashSet<u32> =
            inner.get_added_tokens_decoder().into_iter().filter(|(_, token)| token.special).map(|(id, _)| id).collect();
        let mut stop_ids: Vec<u32> = special.eos.into_iter().collect();
        for name in END_OF_TURN_TOKENS {
            if let Some(id) = inner.token_to_id(name).filter(|id| control_ids.contains(id))
                && !stop_ids.contains(&id)
            {
                stop_ids.push(id);
            }
        }
        Ok(Self { inner, origin, special, add_bos_token, stop_ids, vocab_size, control_ids })
    }

    /// Encodes `text`. With `add_special`, BOS is prepended when the model does so
    /// ([`Self::add_bos_token`]); nothing else is ever added. Special tokens written in `text`
    /// (`<|im_start|>`) become their ids either way.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, LoadError> {
        Ok(self.encode_with_offsets(text, add_special)?.ids)
    }

    /// Like [`Self::encode`], with the byte range of `text` behind every token.
    pub fn encode_with_offsets(&self, text: &str, add_special: bool) -> Result<EncodingWithOffsets, LoadError> {
        let encoding = self.inner.encode(text, false).map_err(|e| self.error(e))?;
        let bos = self.special.bos.filter(|_| add_special && self.add_bos_token);
        let mut ids = Vec::with_capacity(encoding.len() + 1);
        let mut offsets = Vec::with_capacity(encoding.len() + 1);
        if let Some(bos) = bos {
            ids.push(bos);
            offsets.push((0, 0));
        }
        ids.extend_from_slice(encoding.get_ids());
        offsets.extend_from_slice(encoding.get_offsets());
        Ok(EncodingWithOffsets { ids, offsets })
    }

    /// Decodes `ids` to text. With `skip_special`, control tokens (BOS, EOS, `<start_of_turn>`, …)
    /// are left out. An id outside the vocabulary is an error.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, LoadError> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(LoadError::Tokenizer {
                path: self.origin.clone(),
                reason: format!("cannot decode id {bad}: the vocabulary has {} tokens", self.vocab_size),
            });
        }
        self.inner.decode(ids, skip_special).map_err(|e| self.error(e))
    }

    /// The id of the token spelled `token` (in the vocabulary's own spelling, e.g. `Ġthe`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary's spelling of token `id`.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Whether `id` is a special (control) token: BOS/EOS/PAD, chat markers, `<unusedN>`.
    /// User-defined tokens such as Gemma's runs of spaces are matched literally but are not special.
    pub fn is_special(&self, id: u32) -> bool {
        self.control_ids.contains(&id)
    }

    /// Beginning-of-sequence id.
    pub fn bos_id(&self) -> Option<u32> {
        self.special.bos
    }

    /// End-of-sequence id.
    pub fn eos_id(&self) -> Option<u32> {
        self.special.eos
    }

    /// Padding id.
    pub fn pad_id(&self) -> Option<u32> {
        self.special.pad
    }

    /// Unknown-token id.
    pub fn unk_id(&self) -> Option<u32> {
        self.special.unk
    }

    /// The BOS token's text (`<bos>`), for chat templates.
    pub fn bos_token(&self) -> Option<String> {
        self.special.bos.and_then(|id| self.id_to_token(id))
    }

    /// The EOS token's text (`<eos>`, `<|im_end|>`), for chat templates.
    pub fn eos_token(&self) -> Option<String> {
        self.special.eos.and_then(|id| self.id_to_token(id))
    }

    /// Whether [`Self::encode`] with `add_special` prepends BOS (Gemma: yes; SmolLM2, Qwen2: no).
    pub fn add_bos_token(&self) -> bool {
        self.add_bos_token
    }

    /// Ids that end generation: EOS first, then the end-of-turn tokens the vocabulary has
    /// (`<|im_end|>`, `<end_of_turn>`, `<|eot_id|>`, `<|eom_id|>`, `<|end|>`), without repeats.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// Whether `id` is one of [`Self::stop_ids`].
    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_ids.contains(&id)
    }

    /// Number of ids, special and added tokens included (GGUF: the length of `tokenizer.ggml.tokens`).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Checks that every id this tokenizer can produce has a row in a model with `model_vocab`
    /// embedding rows. A model may have more rows than tokens (Qwen2 pads its embedding), never fewer.
    pub fn check_model_vocab(&self, model_vocab: usize) -> Result<(), LoadError> {
        if self.vocab_size > model_vocab {
            return Err(LoadError::Tokenizer {
                path: self.origin.clone(),
                reason: format!(
                    "the tokenizer has {} tokens but the model's embedding has only {model_vocab} rows",
                    self.vocab_size
                ),
            });
        }
        Ok(())
    }

    /// Where the tokenizer was loaded from (the GGUF file or `tokenizer.json`).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The underlying `tokenizers` pipeline.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn error(&self, e: impl std::fmt::Display) -> LoadError {
        LoadError::Tokenizer { path: self.origin.clone(), reason: e.to_string() }
    }
}
