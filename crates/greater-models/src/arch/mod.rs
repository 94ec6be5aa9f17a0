//! Architectures, one family per file, behind one small embedding-first surface ([`CausalLm`]).

pub mod block;
pub mod gemma;
pub mod llama;

use burn::tensor::{Device, Int, Tensor};

use crate::LoadError;
use crate::cache::KvCache;
use crate::config::{Family, ModelConfig};
use crate::loading::WeightSource;

pub use gemma::Gemma;
pub use llama::Llama;

/// Which validity (padding) the new tokens of a step have; `None` means all are real.
pub type Valid<'a> = Option<&'a [Vec<bool>]>;

/// The surface every family exposes. Everything above the model layer is written against it.
pub trait CausalLm {
    /// The resolved configuration.
    fn config(&self) -> &ModelConfig;
    /// The device the weights live on.
    fn device(&self) -> &Device;
    /// Raw rows of the embedding matrix for `ids`: `[batch, seq] → [batch, seq, hidden]`.
    fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3>;
    /// `[vocab, hidden]`; `one_hot.matmul(E)` equals `embed(ids)`.
    fn embedding_matrix(&self) -> Tensor<2>;
    /// Run the decoder over `embeds` (raw embedding rows: family scaling happens in here) and
    /// return the output of the final norm.
    ///
    /// # Shapes
    /// - `embeds`: `[batch, seq, hidden]` → `[batch, seq, hidden]`
    fn forward_hidden(&self, embeds: Tensor<3>, valid: Valid<'_>, cache: &mut KvCache) -> Tensor<3>;
    /// The output head (with any final soft-capping).
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]` → `[batch, seq, vocab]`
    fn lm_head(&self, hidden: Tensor<3>) -> Tensor<3>;

    /// Logits at every position: [`forward_hidden`](Self::forward_hidden) then
    /// [`lm_head`](Self::lm_head).
    fn forward_embeds(&self, embeds: Tensor<3>, valid: Valid<'_>, cache: &mut KvCache) -> Tensor<3> {
        let hidden = self.forward_hidden(embeds, valid, cache);
        self.lm_head(hidden)
    }
}

/// Any supported family. `match`es forward to the family type.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyModel {
    /// Llama, SmolLM, Mistral, Qwen2.
    Llama(Llama),
    /// Gemma 2, Gemma 3.
    Gemma(Gemma),
}

impl AnyModel {
    /// Build the family named by `config` from `weights`: the config is
    /// [`validate`](ModelConfig::validate)d (naming the weights' file) and every tensor checked
    /// first, so a hand-built or edited config cannot reach `forward` with impossible shapes.
    pub fn load(config: &ModelConfig, weights: &dyn WeightSource, device: &Device) -> Result<Self, LoadError> {
        config.validate(weights.path())?;
        match config.family {
            Family::Llama | Family::Qwen2 => Ok(Self::Llama(Llama::load(config, weights, device)?)),
            Family::Gemma2 | Family::Gemma3 => Ok(Self::Gemma(Gemma::load(config, weights, device)?)),
        }
    }

    fn inner(&self) -> &dyn CausalLm {
        match self {
            Self::Llama(m) => m,
            Self::Gemma(m) => m,
        }
    }
}

impl CausalLm for AnyModel {
    fn config(&self) -> &ModelConfig {
        self.inner().config()
    }
    fn device(&self) -> &Device {
        self.inner().device()
    }
    fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.inner().embed(ids)
    }
    fn embedding_matrix(&self) -> Tensor<2> {
        self.inner().embedding_matrix()
    }
    fn forward_hidden(&self, embeds: Tensor<3>, valid: Valid<'_>, cache: &mut KvCache) -> Tensor<3> {
        self.inner().forward_hidden(embeds, valid, cache)
    }
    fn lm_head(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.inner().lm_head(hidden)
    }
}

/// Check that `weights` holds every `(name, shape)` of `expected`; report all problems at once.
pub fn check_tensors(weights: &dyn WeightSource, expected: &[(String, Vec<usize>)]) -> Result<(), LoadError> {
    let path = weights.path().to_path_buf();
    let missing: Vec<String> = expected.iter().filter(|(n, _)| !weights.contains(n)).map(|(n, _)| n.clone()).collect();
    if !missing.is_empty() {
        return Err(LoadError::MissingTensors { path, names: missing });
    }
    for (name, want) in expected {
        let got = weights.shape(name)?;
        if &got != want {
            let path = weights.file_of(name).to_path_buf();
            return Err(LoadError::TensorShape { path, name: name.clone(), got, expected: want.clone() });
        }
    }
    Ok(())
}

impl AnyModel {
    /// The canonical tensor names and shapes `config` needs.
    pub fn expected_tensors(config: &ModelConfig) -> Vec<(String, Vec<usize>)> {
        match config.family {
            Family::Llama | Family::Qwen2 => Llama::expected_tensors(config),
            Family::Gemma2 | Family::Gemma3 => Gemma::expected_tensors(config),
        }
    }
}
