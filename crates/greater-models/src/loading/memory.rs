//! Weights held in memory: for tests, benchmarks and GPU checks with random weights in a real
//! model's shapes (the GPU machine cannot receive real checkpoints).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{HostTensor, WeightSource};
use crate::LoadError;
use crate::rng::SplitMix64;

/// A map from canonical name to tensor.
#[derive(Debug, Clone, Default)]
pub struct MemoryWeights {
    path: PathBuf,
    tensors: BTreeMap<String, HostTensor>,
}

impl MemoryWeights {
    /// An empty set; `label` stands in for a path in error messages.
    pub fn new(label: impl Into<PathBuf>) -> Self {
        Self { path: label.into(), tensors: BTreeMap::new() }
    }

    /// Replace every value `v` of every tensor by `f(v)`.
    pub fn map_values(&mut self, f: impl Fn(f32) -> f32) {
        self.tensors.values_mut().flat_map(|t| t.data.iter_mut()).for_each(|v| *v = f(*v));
    }

    /// Add or replace a tensor.
    pub fn insert(&mut self, name: impl Into<String>, t: HostTensor) {
        self.tensors.insert(name.into(), t);
    }

    /// Remove a tensor (tests of missing-tensor errors).
    pub fn remove(&mut self, name: &str) -> Option<HostTensor> {
        self.tensors.remove(name)
    }

    /// Iterate over all tensors by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &HostTensor)> {
        self.tensors.iter()
    }

    /// Seeded random tensors for every `(name, shape)`: norm weights near 1 (or near 0 where
    /// `zero_centred_norms`, Gemma's `1 + w`), everything else uniform in ±`scale`.
    pub fn random(expected: &[(String, Vec<usize>)], seed: u64, scale: f32, zero_centred_norms: bool) -> Self {
        let mut rng = SplitMix64(seed);
        let mut w = Self::new(format!("<random weights, seed {seed}>"));
        for (name, shape) in expected {
            let data = random_values(&mut rng, name, shape.iter().product(), scale, zero_centred_norms);
            w.insert(name.clone(), HostTensor { shape: shape.clone(), data });
        }
        w
    }
}

impl WeightSource for MemoryWeights {
    fn path(&self) -> &Path {
        &self.path
    }
    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }
    fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError> {
        self.tensors
            .get(name)
            .map(|t| t.shape.clone())
            .ok_or_else(|| LoadError::MissingTensors { path: self.path.clone(), names: vec![name.into()] })
    }
    fn tensor(&self, name: &str) -> Result<HostTensor, LoadError> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| LoadError::MissingTensors { path: self.path.clone(), names: vec![name.into()] })
    }
}

/// The next `n` values of tensor `name` in [`MemoryWeights::random`]'s stream, so a writer can
/// produce the same weights tensor by tensor (in the same order) without holding them all.
pub fn random_values(rng: &mut SplitMix64, name: &str, n: usize, scale: f32, zero_centred_norms: bool) -> Vec<f32> {
    let is_norm = name.contains("norm");
    (0..n)
        .map(|_| {
            let u = rng.next_f32() * 2.0 - 1.0;
            match (is_norm, zero_centred_norms) {
                (true, true) => 0.1 * u,
                (true, false) => 1.0 + 0.1 * u,
                _ => scale * u,
            }
        })
        .collect()
}
