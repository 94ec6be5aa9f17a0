//! Building a `tokenizers` pipeline from GGUF `tokenizer.ggml.*` metadata.
//!
//! Two tokenizer models exist in the files this crate reads:
//!
//! - `gpt2`: byte-level BPE. The vocabulary (`tokens`, already in byte-level spelling `Ġthe`) and
//!   the ranked `merges` (`"Ġ t"`) go straight into a `tokenizers` BPE. The pre-tokenizer is
//!   chosen by `tokenizer.ggml.pre` as transformers' GGUF loader chooses it (the golden
//!   reference): `qwen2` uses Qwen2's regex (with NFC), `llama-bpe` Llama 3's, and everything
//!   else, `smollm` included, the plain GPT-2 regex. llama.cpp splits digits off first for
//!   `smollm`, and that is not the same: in `"step:\n\n1."` the digit split leaves `"\n\n"` at
//!   the end of a piece, where it becomes the one token `ĊĊ`, while the GPT-2 regex's `\s+(?!\S)`
//!   gives `Ċ Ċ` (which is what transformers produces, and the golden gradient sequence holds).
//! - `llama`: SentencePiece BPE. GGUF stores `tokens` and `scores` but no merges. SentencePiece
//!   merges, at every step, the adjacent pair whose concatenation is the highest-scoring token.
//!   A BPE whose merges are every split `(left, right)` of every token, ranked by the merged
//!   token's score (best first), does the same thing; this is how Hugging Face's GGUF converter
//!   (`GGUFTokenizerSkeleton` in transformers' `integrations/ggml.py`) derives them. Spaces become
//!   `▁` in a normalizer, characters missing from the vocabulary fall back to `<0xXX>` tokens.
//!
//! In both models, CONTROL tokens (type 3) are special added tokens and USER_DEFINED tokens
//! (type 4, e.g. Gemma's runs of spaces, tabs and newlines) plain added tokens: both are cut out of
//! the raw text before normalisation, longest match first, as llama.cpp's
//! `tokenizer_st_partition` does, so `"     "` is Gemma's single token 141.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::prepend::Prepend;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::normalizers::{NormalizerWrapper, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::{SpecialIds, Tokenizer};
use crate::LoadError;
use crate::loading::{MetaValue, Metadata};

/// llama.cpp's `LLAMA_TOKEN_TYPE_CONTROL`.
const TOKEN_TYPE_CONTROL: i32 = 3;
/// llama.cpp's `LLAMA_TOKEN_TYPE_USER_DEFINED`.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// SentencePiece's visible space.
const SPM_SPACE: &str = "\u{2581}";

/// Qwen2's pre-tokenizer regex (Hugging Face `Qwen2Converter`, llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`):
/// single digits, letters with one leading non-letter, newline runs kept together.
const QWEN2_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Llama 3's pre-tokenizer regex (llama.cpp `LLAMA_VOCAB_PRE_TYPE_LLAMA3`): digits in groups of
/// up to three.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Builds the tokenizer described by `md` (the metadata of GGUF file `path`).
pub(super) fn load(md: &Metadata, path: &Path) -> Result<Tokenizer, LoadError> {
    let vocab = GgufVocab::read(md, path)?;
    let mut inner = match vocab.model.as_str() {
        "gpt2" => byte_level_bpe(&vocab, path)?,
        "llama" => sentencepiece_bpe(&vocab, path)?,
        other => {
            return Err(LoadError::BadField {
                path: path.into(),
                field: "tokenizer.ggml.model".into(),
                reason: format!("unsupported tokenizer model `{other}` (supported: gpt2, llama)"),
            });
        }
    };
    add_literal_tokens(&mut inner, &vocab).map_err(|e| tokenizer_error(path, e))?;
    if inner.get_vocab_size(true) != vocab.tokens.len() {
        tracing::warn!(
            path = %path.display(),
            distinct = inner.get_vocab_size(true),
            tokens = vocab.tokens.len(),
            "GGUF vocabulary spells some tokens twice; the later id wins when encoding"
        );
    }
    Tokenizer::from_pipeline(inner, path.to_path_buf(), vocab.special, vocab.add_bos_token, vocab.tokens.len())
}

/// The `tokenizer.ggml.*` fields, checked for consistency.
struct GgufVocab {
    /// `tokenizer.ggml.model`.
    model: String,
    /// `tokenizer.ggml.pre`, `default` when absent.
    pre: String,
    tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, all NORMAL (1) when absent.
    token_types: Vec<i32>,
    /// `tokenizer.ggml.scores` (required by `llama`).
    scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.merges` (required by `gpt2`).
    merges: Option<Vec<String>>,
    special: SpecialIds,
    add_bos_token: bool,
    add_space_prefix: bool,
}

impl GgufVocab {
    fn read(md: &Metadata, path: &Path) -> Result<Self, LoadError> {
        let model = tokenizer_model(md, path)?;
        check_claimed_sizes(md, path)?;
        let tokens: Vec<String> = md
            .get_str_array("tokenizer.ggml.tokens")
            .ok_or_else(|| bad_type(md, path, "tokenizer.ggml.tokens", "an array of strings"))?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let n = tokens.len();
        if n == 0 {
            return Err(bad_field(path, "tokenizer.ggml.tokens", "the vocabulary is empty".into()));
        }
        let token_types = match md.get("tokenizer.ggml.token_type") {
            None => vec![1; n],
            Some(_) => md
                .get_i32_array("tokenizer.ggml.token_type")
                .ok_or_else(|| bad_type(md, path, "tokenizer.ggml.token_type", "an array of integers"))?,
        };
        let scores = match md.get("tokenizer.ggml.scores") {
            None => None,
            Some(_) => Some(
                md.get_f32_array("tokenizer.ggml.scores")
                    .ok_or_else(|| bad_type(md, path, "tokenizer.ggml.scores", "an array of numbers"))?,
            ),
        };
        let merges = match md.get("tokenizer.ggml.merges") {
            None => None,
            Some(_) => Some(
                md.get_str_array("tokenizer.ggml.merges")
                    .ok_or_else(|| bad_type(md, path, "tokenizer.ggml.merges", "an array of strings"))?
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            ),
        };
        check_lengths(md, path, n, &token_types, scores.as_deref())?;
        let special = SpecialIds {
            bos: special_id(md, path, "tokenizer.ggml.bos_token_id", n)?,
            eos: special_id(md, path, "tokenizer.ggml.eos_token_id", n)?,
            pad: special_id(md, path, "tokenizer.ggml.padding_token_id", n)?,
            unk: special_id(md, path, "tokenizer.ggml.unknown_token_id", n)?,
        };
        // llama.cpp's defaults: SentencePiece models add BOS and a space prefix, BPE ones neither.
        let spm = model == "llama";
        let add_bos_token = flag(md, path, "tokenizer.ggml.add_bos_token", spm)?;
        let add_space_prefix = flag(md, path, "tokenizer.ggml.add_space_prefix", spm)?;
        let pre = md.get_str("tokenizer.ggml.pre").unwrap_or("default").to_owned();
        Ok(Self { model, pre, tokens, token_types, scores, merges, special, add_bos_token, add_space_prefix })
    }

    /// Tokens of `kind` (a llama.cpp token type), with their ids.
    fn tokens_of_type(&self, kind: i32) -> impl Iterator<Item = &str> {
        self.tokens.iter().zip(&self.token_types).filter(move |(_, t)| **t == kind).map(|(token, _)| token.as_str())
    }

    /// Token → id. When a spelling repeats, the later id wins, as in llama.cpp and transformers.
    fn vocab(&self) -> Vocab {
        self.tokens.iter().enumerate().map(|(id, token)| (token.clone(), id as u32)).collect()
    }
}

/// `tokenizer.ggml.model`, once the arrays that model needs are known to be present.
fn tokenizer_model(md: &Metadata, path: &Path) -> Result<String, LoadError> {
    let model = md.get_str("tokenizer.ggml.model").map(str::to_owned);
    let required_arrays: &[&str] = match model.as_deref() {
        Some("gpt2") => &["tokenizer.ggml.tokens", "tokenizer.ggml.merges"],
        Some("llama") => &["tokenizer.ggml.tokens", "tokenizer.ggml.scores"],
        _ => &["tokenizer.ggml.tokens"],
    };
    let mut missing: Vec<String> =
        required_arrays.iter().filter(|key| md.get(key).is_none()).map(|key| key.to_string()).collect();
    if md.get("tokenizer.ggml.model").is_none() {
        missing.insert(0, "tokenizer.ggml.model".into());
    }
    if !missing.is_empty() {
        return Err(LoadError::MissingFields { path: path.into(), fields: missing });
    }
    model.ok_or_else(|| bad_type(md, path, "tokenizer.ggml.model", "a string"))
}

/// The array sizes the file claims stay under the limits, checked before anything is built.
fn check_claimed_sizes(md: &Metadata, path: &Path) -> Result<(), LoadError> {
    for (field, limit) in [("tokenizer.ggml.tokens", super::MAX_VOCAB), ("tokenizer.ggml.merges", super::MAX_MERGES)] {
        if let Some(n) = md.get(field).and_then(MetaValue::as_array).map(<[MetaValue]>::len)
            && n > limit
        {
            return Err(bad_field(path, field, format!("has {n} entries, over the limit of {limit}")));
        }
    }
    Ok(())
}

/// The per-token arrays have one entry per token, and the model's stated vocabulary size (when
/// the file has one) matches the token list.
fn check_lengths(
    md: &Metadata,
    path: &Path,
    n: usize,
    token_types: &[i32],
    scores: Option<&[f32]>,
) -> Result<(), LoadError> {
    let per_token_lengths =
        [("tokenizer.ggml.token_type", token_types.len()), ("tokenizer.ggml.scores", scores.map_or(n, <[f32]>::len))];
    for (field, len) in per_token_lengths {
        if len != n {
            return Err(bad_field(path, field, format!("has {len} entries for {n} tokens")));
        }
    }
    // The model's own vocabulary size, when the file states it, must match the token list.
    if let Some(arch) = md.get_str("general.architecture") {
        let key = format!("{arch}.vocab_size");
        if let Some(stated) = md.get_usize(&key)
            && stated != n
        {
            return Err(bad_field(path, &key, format!("is {stated} but tokenizer.ggml.tokens has {n} tokens")));
        }
    }

    Ok(())
}

/// Byte-level BPE (`tokenizer.ggml.model = gpt2`).
fn byte_level_bpe(v: &GgufVocab, path: &Path) -> Result<tokenizers::Tokenizer, LoadError> {
    let key = "tokenizer.ggml.merges";
    let merges = v
        .merges
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, merge)| {
            merge.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())).ok_or_else(|| {
                bad_field(path, key, format!("entry {i} `{merge}` is not two tokens separated by a space"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder().vocab_and_merges(v.vocab(), merges).build().map_err(|e| tokenizer_error(path, e))?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);

    let byte_level = |use_regex| PreTokenizerWrapper::from(ByteLevel::new(false, false, use_regex));
    let split = |regex: &str| -> Result<PreTokenizerWrapper, LoadError> {
        let split = Split::new(SplitPattern::Regex(regex.into()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| tokenizer_error(path, e))?;
        Ok(split.into())
    };
    let pre_tokenizer: PreTokenizerWrapper = match v.pre.as_str() {
        "qwen2" | "deepseek-r1-qwen" => {
            tokenizer.with_normalizer(Some(NFC)).map_err(|e| tokenizer_error(path, e))?;
            PreTokenizerSequence::new(vec![split(QWEN2_REGEX)?, byte_level(false)]).into()
        }
        "llama-bpe" | "llama3" => PreTokenizerSequence::new(vec![split(LLAMA3_REGEX)?, byte_level(false)]).into(),
        "default" | "gpt2" | "gpt-2" | "smollm" => byte_level(true),
        other => {
            tracing::warn!(path = %path.display(), pre = other, "unknown tokenizer.ggml.pre; using the GPT-2 regex");
            byte_level(true)
        }
    };
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    Ok(tokenizer)
}

/// SentencePiece-style BPE on scores (`tokenizer.ggml.model = llama`).
fn sentencepiece_bpe(v: &GgufVocab, path: &Path) -> Result<tokenizers::Tokenizer, LoadError> {
    let scores = v.scores.as_deref().unwrap_or_default();
    let merges = merges_from_scores(&v.tokens, scores).ok_or_else(|| {
        let limit = super::MAX_DERIVED_MERGES;
        let reason = format!("its tokens split into more than {limit} token pairs; the vocabulary is not a real one");
        bad_field(path, "tokenizer.ggml.tokens", reason)
    })?;
    let mut builder = BPE::builder().vocab_and_merges(v.vocab(), merges).byte_fallback(true).fuse_unk(true);
    if let Some(unk) = v.special.unk {
        builder = builder.unk_token(v.tokens[unk as usize].clone());
    }
    let bpe = builder.build().map_err(|e| tokenizer_error(path, e))?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);

    let replace_spaces = Replace::new(" ", SPM_SPACE).map_err(|e| tokenizer_error(path, e))?;
    let normalizer: NormalizerWrapper = if v.add_space_prefix {
        NormalizerSequence::new(vec![Prepend::new(SPM_SPACE.into()).into(), replace_spaces.into()]).into()
    } else {
        replace_spaces.into()
    };
    tokenizer.with_normalizer(Some(normalizer)).map_err(|e| tokenizer_error(path, e))?;

    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPM_SPACE, " ").map_err(|e| tokenizer_error(path, e))?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if v.add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}

/// SentencePiece merges as a ranked BPE merge list: every split of every token into two tokens,
/// ranked by the score of the token it produces (highest first); splits of one token are ordered
/// by the scores of their halves. Sorting is stable, so equal scores keep vocabulary order.
/// `None` when there would be more than [`super::MAX_DERIVED_MERGES`] (checked before the merge
/// strings are allocated).
pub(crate) fn merges_from_scores(tokens: &[String], scores: &[f32]) -> Option<Vec<(String, String)>> {
    let score_of: HashMap<&str, f32> = tokens.iter().map(String::as_str).zip(scores.iter().copied()).collect();
    let mut ranked: Vec<(f32, &str, &str)> = Vec::new();
    let mut local: Vec<(f32, f32, &str, &str)> = Vec::new();
    for token in tokens {
        let Some(&score) = score_of.get(token.as_str()) else {
            continue;
        };
        local.clear();
        for (split, _) in token.char_indices().skip(1) {
            let (left, right) = token.split_at(split);
            if let (Some(&l), Some(&r)) = (score_of.get(left), score_of.get(right)) {
                local.push((l, r, left, right));
            }
        }
        local.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
        if ranked.len() + local.len() > super::MAX_DERIVED_MERGES {
            return None;
        }
        ranked.extend(local.iter().map(|&(_, _, l, r)| (score, l, r)));
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    Some(ranked.into_iter().map(|(_, l, r)| (l.to_owned(), r.to_owned())).collect())
}

/// Registers CONTROL tokens as special and USER_DEFINED tokens as plain added tokens, both
/// matched in the raw text before normalisation.
fn add_literal_tokens(tokenizer: &mut tokenizers::Tokenizer, v: &GgufVocab) -> tokenizers::Result<()> {
    let control: Vec<AddedToken> =
        v.tokens_of_type(TOKEN_TYPE_CONTROL).map(|t| AddedToken::from(t, true).normalized(false)).collect();
    let user: Vec<AddedToken> =
        v.tokens_of_type(TOKEN_TYPE_USER_DEFINED).map(|t| AddedToken::from(t, false).normalized(false)).collect();
    tokenizer.add_special_tokens(control)?;
    tokenizer.add_tokens(user)?;
    Ok(())
}

/// A special-token id field: absent is `None`; present, it must be an id in the vocabulary.
fn special_id(md: &Metadata, path: &Path, key: &str, n: usize) -> Result<Option<u32>, LoadError> {
    let Some(value) = md.get(key) else {
        return Ok(None);
    };
    let id = value.as_usize().ok_or_else(|| bad_type(md, path, key, "a non-negative integer"))?;
    if id >= n {
        return Err(bad_field(path, key, format!("id {id} is outside the vocabulary of {n} tokens")));
    }
    Ok(Some(id as u32))
}

/// A boolean field with a default.
fn flag(md: &Metadata, path: &Path, key: &str, default: bool) -> Result<bool, LoadError> {
    match md.get(key) {
        None => Ok(default),
        Some(value) => value.as_bool().ok_or_else(|| bad_type(md, path, key, "a boolean")),
    }
}

fn bad_field(path: &Path, field: &str, reason: String) -> LoadError {
    LoadError::BadField { path: path.into(), field: field.into(), reason }
}

fn bad_type(md: &Metadata, path: &Path, field: &str, expected: &str) -> LoadError {
    let found = md.get(field).map_or("nothing", MetaValue::type_name);
    bad_field(path, field, format!("expected {expected}, found {found}"))
}

fn tokenizer_error(path: &Path, e: impl std::fmt::Display) -> LoadError {
    LoadError::Tokenizer { path: path.into(), reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::merges_from_scores;

    #[test]
    fn merges_are_ranked_by_the_merged_token_score() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"].iter().map(|s| s.to_string()).collect();
        // "bc" outranks "ab"; "abc" (best of all) splits as a+bc or ab+c, the split with the
        // better left half (ab: -4 > a: -10) first.
        let scores = [-10.0, -11.0, -12.0, -4.0, -3.0, -1.0];
        let merges = merges_from_scores(&tokens, &scores).unwrap();
        let pairs: Vec<(&str, &str)> = merges.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect();
        assert_eq!(pairs, [("ab", "c"), ("a", "bc"), ("b", "c"), ("a", "b")]);
    }
}
