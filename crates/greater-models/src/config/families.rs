//! The one table from the names files give an architecture to our [`Family`] (plus, for
//! `config.json`, the transformers config class whose defaults apply).
//!
//! Both front doors (`from_gguf`, `from_hf`) and the GGUF weight map look names up here, and the
//! "supported" lists of error messages are made from the same rows. The dispatch on the result is
//! an exhaustive `match` over [`Family`] or [`HfClass`], so a new row without its code, or new
//! code without its row, does not compile (or fails `every_family_has_a_gguf_row`).

use super::Family;

/// A transformers config class: which defaults apply to absent `config.json` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfClass {
    /// `LlamaConfig`.
    Llama,
    /// `MistralConfig` (a Llama with a default sliding window).
    Mistral,
    /// `Qwen2Config`.
    Qwen2,
    /// `Gemma2Config`.
    Gemma2,
    /// `Gemma3TextConfig`.
    Gemma3Text,
    /// `Gemma3Config`, the multimodal wrapper: the text model sits in `text_config`.
    Gemma3,
}

impl HfClass {
    /// The family that implements this class.
    pub fn family(self) -> Family {
        match self {
            Self::Llama | Self::Mistral => Family::Llama,
            Self::Qwen2 => Family::Qwen2,
            Self::Gemma2 => Family::Gemma2,
            Self::Gemma3Text | Self::Gemma3 => Family::Gemma3,
        }
    }
}

/// GGUF `general.architecture` → family. `llama` also covers SmolLM2 and Mistral (llama.cpp
/// writes them as `llama`).
pub const GGUF_ARCHITECTURES: &[(&str, Family)] =
    &[("llama", Family::Llama), ("qwen2", Family::Qwen2), ("gemma2", Family::Gemma2), ("gemma3", Family::Gemma3)];

/// `config.json` `model_type` → config class.
pub const HF_MODEL_TYPES: &[(&str, HfClass)] = &[
    ("llama", HfClass::Llama),
    ("mistral", HfClass::Mistral),
    ("qwen2", HfClass::Qwen2),
    ("gemma2", HfClass::Gemma2),
    ("gemma3_text", HfClass::Gemma3Text),
    ("gemma3", HfClass::Gemma3),
];

/// The family of a GGUF `general.architecture`, if implemented.
pub fn gguf_family(arch: &str) -> Option<Family> {
    GGUF_ARCHITECTURES.iter().find(|(n, _)| *n == arch).map(|&(_, f)| f)
}

/// The config class of a `config.json` `model_type`, if implemented.
pub fn hf_class(model_type: &str) -> Option<HfClass> {
    HF_MODEL_TYPES.iter().find(|(n, _)| *n == model_type).map(|&(_, c)| c)
}

/// The `supported` text of an unsupported-architecture error for `name`, listing `table`'s
/// names, with a hint for near misses (Gemma 1, other Gemma generations).
pub fn supported_text<T>(table: &[(&str, T)], name: &str) -> String {
    let list = table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    match name {
        "gemma" => format!("{list}; Gemma 1 (`gemma`) is not implemented"),
        o if o.starts_with("gemma") => format!("{list}; `{o}` is a different architecture from Gemma 2/3"),
        _ => list,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family, by an exhaustive match: adding a variant breaks this until it is listed.
    fn all_families() -> Vec<Family> {
        let all = [Family::Llama, Family::Qwen2, Family::Gemma2, Family::Gemma3];
        for f in all {
            match f {
                Family::Llama | Family::Qwen2 | Family::Gemma2 | Family::Gemma3 => {}
            }
        }
        all.to_vec()
    }

    #[test]
    fn every_family_has_a_gguf_row_and_an_hf_row() {
        for f in all_families() {
            assert!(GGUF_ARCHITECTURES.iter().any(|&(_, g)| g == f), "{f:?} has no GGUF row");
            assert!(HF_MODEL_TYPES.iter().any(|&(_, c)| c.family() == f), "{f:?} has no config.json row");
            assert_eq!(gguf_family(f.name()), Some(f), "the GGUF name of {f:?} is its family name");
        }
    }

    #[test]
    fn names_are_unique_and_looked_up() {
        let mut names: Vec<&str> = HF_MODEL_TYPES.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HF_MODEL_TYPES.len());
        assert_eq!(hf_class("mistral").map(HfClass::family), Some(Family::Llama));
        assert_eq!(gguf_family("phi3"), None);
        assert_eq!(hf_class("gemma"), None);
    }

    #[test]
    fn supported_text_lists_the_table_and_hints_at_near_misses() {
        assert_eq!(supported_text(GGUF_ARCHITECTURES, "phi3"), "llama, qwen2, gemma2, gemma3");
        assert!(supported_text(GGUF_ARCHITECTURES, "gemma").ends_with("Gemma 1 (`gemma`) is not implemented"));
        assert!(supported_text(HF_MODEL_TYPES, "gemma4").contains("`gemma4` is a different architecture"));
    }
}
