//! The key/value cache of incremental decoding.
//!
//! A plain struct outside the module tree, passed as `&mut`. Slots are preallocated once
//! (`capacity`) and written with `slice_assign`: growing the cache by concatenation measured 1.7×
//! slower. Every row of the batch shares the slot index; left padding is recorded per slot, so a
//! row's real tokens start at position 0 whatever its padding. A cache with capacity 0 stores
//! nothing: one forward over a whole sequence (the gradient pass) uses it.

use burn::tensor::{Int, Tensor, TensorData};

use crate::layers::mask::Slot;

/// Per-layer keys and values `[batch, kv_heads, capacity, head_dim]`, and per-slot bookkeeping.
///
/// Cloning is cheap and safe: tensors are shared until written, and every write makes a new one.
#[derive(Debug, Clone)]
pub struct KvCache {
    batch: usize,
    capacity: usize,
    len: usize,
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    slots: Vec<Vec<Slot>>,
}

/// What one forward step adds: positions of the new tokens and the slot list masks are built from.
#[derive(Debug, Clone)]
pub struct StepPlan {
    /// RoPE position of every new token, `[batch][new]`.
    pub positions: Vec<Vec<usize>>,
    /// Every key slot after the step (cached, then new), `[batch][len + new]`.
    pub keys: Vec<Vec<Slot>>,
    /// Number of new tokens.
    pub new: usize,
}

impl KvCache {
    /// An empty cache for `batch` rows and up to `capacity` tokens each.
    pub fn new(batch: usize, capacity: usize) -> Self {
        Self { batch, capacity, len: 0, layers: Vec::new(), slots: vec![Vec::new(); batch] }
    }

    /// A cache that stores nothing: for one forward over whole sequences.
    pub fn uncached(batch: usize) -> Self {
        Self::new(batch, 0)
    }

    /// The slot index of the next token (equal for every row).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows in the batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Maximum number of slots (0 for an uncached pass).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Plan a step of `new` tokens; `valid[r][i]` says whether new token `i` of row `r` is real
    /// (`None`: all are).
    ///
    /// # Panics
    /// If the step does not fit the capacity, or the valid mask's shape is wrong. Callers check
    /// the context length first and report it as an error.
    pub fn plan(&self, new: usize, valid: Option<&[Vec<bool>]>) -> StepPlan {
        assert!(
            self.capacity == 0 && self.len == 0 || self.len + new <= self.capacity,
            "kv cache overflow: {} + {new} > {}",
            self.len,
            self.capacity
        );
        let mut positions = Vec::with_capacity(self.batch);
        let mut keys = Vec::with_capacity(self.batch);
        for r in 0..self.batch {
            let mut row = self.slots[r].clone();
            let mut pos = next_pos(&row);
            let mut row_pos = Vec::with_capacity(new);
            for i in 0..new {
                let v = valid.is_none_or(|m| m[r][i]);
                row_pos.push(if v { pos } else { 0 });
                row.push(Slot { valid: v, pos: if v { pos } else { 0 } });
                pos += v as usize;
            }
            positions.push(row_pos);
            keys.push(row);
        }
        StepPlan { positions, keys, new }
    }

    /// Store layer `layer`'s new keys and values and return all keys and values so far.
    ///
    /// # Shapes
    /// - `k`, `v`: `[batch, kv_heads, new, head_dim]` → two `[batch, kv_heads, len + new, head_dim]`
    pub fn update(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        if self.capacity == 0 {
            return (k, v);
        }
        if self.layers.len() <= layer {
            self.layers.resize_with(layer + 1, || None);
        }
        let [b, h, s, d] = k.dims();
        let (start, end) = (self.len, self.len + s);
        // Take the buffers out of the cache so they are uniquely owned while written: a backend
        // can then update them in place instead of copying the whole cache every step.
        let (ck, cv) = self.layers[layer].take().unwrap_or_else(|| {
            let z = Tensor::<4>::zeros([b, h, self.capacity, d], &k.device());
            (z.clone(), z.zeros_like())
        });
        let ck = ck.slice_assign([0..b, 0..h, start..end, 0..d], k);
        let cv = cv.slice_assign([0..b, 0..h, start..end, 0..d], v);
        let out = (ck.clone().slice([0..b, 0..h, 0..end, 0..d]), cv.clone().slice([0..b, 0..h, 0..end, 0..d]));
        self.layers[layer] = Some((ck, cv));
        out
    }

    /// Finish a step: the planned slots become cached.
    pub fn commit(&mut self, plan: StepPlan) {
        if self.capacity == 0 {
            return;
        }
        self.len += plan.new;
        self.slots = plan.keys;
    }

    /// Return to a shared prefix of `len` slots.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        for row in &mut self.slots {
            row.truncate(self.len);
        }
    }

    /// Keep only the rows `rows` (in that order), e.g. to drop finished sequences.
    pub fn retain_rows(&mut self, rows: &[usize]) {
        if rows.len() == self.batch && rows.iter().enumerate().all(|(i, &r)| i == r) {
            return;
        }
        let mut idx: Option<Tensor<1, Int>> = None;
        for entry in self.layers.iter_mut().flatten() {
            let device = entry.0.device();
            let index = idx
                .get_or_insert_with(|| {
                    let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
                    Tensor::from_data(TensorData::new(ids, [rows.len()]), &device)
                })
                .clone();
            *entry = (entry.0.clone().select(0, index.clone()), entry.1.clone().select(0, index));
        }
        self.slots = rows.iter().map(|&r| self.slots[r].clone()).collect();
        self.batch = rows.len();
    }
}

fn next_pos(row: &[Slot]) -> usize {
    row.iter().rev().find(|s| s.valid).map_or(0, |s| s.pos + 1)
}
