//! The GReaTer loop (SPEC B.1.2, with the fixes of A2).
//!
//! Each step: reasoning for every train example with the current prompt (reused when the previous
//! step's winner is this prompt); candidate proposal at the current position from prefix
//! forwards; one-hot gradients through the fixed reasoning; the top-μ candidates by −gradient
//! re-scored with regenerated reasoning (mistake rate + w · prompt NLL); the '.' rule; position
//! advance and growth; best and top-k tracking; a checkpoint and an `events.jsonl` line.

pub mod config;
pub mod decide;
pub mod event;
pub mod proposal;
pub mod prune;
mod select;
mod select_fast;
pub mod state;
mod step;

use std::path::{Path, PathBuf};

use greater_models::model::LoadedModel;
use greater_tasks::{Example, Task};

pub use config::{AnswerTarget, GradientThrough, OptimizeConfig, SelectionMistake};
pub use event::{Attribution, CandidateScore, PhaseSeconds, StepCost, StepEvent};
pub use state::{Driver, KnownReasoning, RunState, ScoredPrompt};

use crate::layout::{ExampleLayout, Layouter};
use crate::{Observer, OptError};

/// What the loop works on: model, data, config, output folder, observer.
pub struct Run<'a> {
    /// The model.
    pub loaded: &'a LoadedModel,
    /// The task (its train split is used).
    pub task: &'a Task,
    /// The resolved configuration.
    pub cfg: &'a OptimizeConfig,
    /// Output folder (checkpoint, events, reports).
    pub dir: PathBuf,
    /// Progress.
    pub observer: &'a dyn Observer,
}

impl std::fmt::Debug for Run<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("task", &self.task.name).field("dir", &self.dir).finish()
    }
}

/// The train examples with their fixed parts, and the initial prompt ids.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Train examples used.
    pub examples: Vec<Example>,
    /// Their layouts.
    pub layouts: Vec<ExampleLayout>,
    /// The initial prompt as ids.
    pub initial: Vec<u32>,
    /// Per example, the token ids of every answer variant (the official target first).
    pub variants: Vec<Vec<Vec<u32>>>,
}

impl Run<'_> {
    /// Lay out the train examples and the initial prompt.
    pub fn prepare(&self) -> Result<Prepared, OptError> {
        let cfg = self.cfg;
        cfg.validate()?;
        let train = &self.task.train;
        if train.is_empty() {
            return Err(OptError::Invalid(format!("task {} has an empty train split", self.task.name)));
        }
        let examples: Vec<Example> = train.iter().take(cfg.train).cloned().collect();
        let layouter = Layouter::new(self.loaded, &self.task.spec, cfg.placement());
        let mut layouts = Vec::with_capacity(examples.len());
        let mut initial: Option<Vec<u32>> = None;
        for (i, ex) in examples.iter().enumerate() {
            let (layout, control) = layouter.example(i, ex, &cfg.initial_prompt)?;
            match &initial {
                None => initial = Some(control),
                Some(c) if *c != control => {
                    return Err(OptError::Layout {
                        example: i,
                        reason:
                            "the prompt tokenises differently after this question; change the joiner or frozen prefix"
                                .into(),
                    });
                }
                Some(_) => {}
            }
            layouts.push(layout);
        }
        let tok = &self.loaded.tokenizer;
        let variants = examples
            .iter()
            .zip(&layouts)
            .map(|(ex, l)| crate::layout::answer_variant_ids(tok, &self.task.spec, ex, &l.answer))
            .collect::<Result<_, _>>()?;
        Ok(Prepared { examples, layouts, initial: initial.expect("at least one example"), variants })
    }

    /// The peak memory this run is predicted to need ([`crate::memory`]).
    pub fn memory_estimate(&self, prepared: &Prepared) -> crate::memory::MemoryEstimate {
        let layouts = &prepared.layouts;
        let control = &prepared.initial;
        let prompt = layouts.iter().map(|l| l.generation_prompt(control).len()).max().unwrap_or(0);
        let tail = layouts.iter().map(|l| l.extractor.len() + l.answer.len()).max().unwrap_or(0);
        let mut w = crate::memory::Workload::of_run(self.cfg, prompt, control.len(), tail);
        if self.cfg.answer_target == AnswerTarget::Variants {
            // Every answer spelling no other row serves is one more row, but it continues from
            // its example's prefix through the cache: it adds its answer tokens (and their
            // logits), not a whole sequence.
            let extra = layouts
                .iter()
                .zip(&prepared.variants)
                .map(|(l, v)| {
                    let longest = v.iter().map(Vec::len).max().unwrap_or(0);
                    (greater_grad::rows_per_example(&l.answer, v) - 1) * longest
                })
                .max()
                .unwrap_or(0);
            w.grad_tokens += extra;
            w.read_positions += extra;
        }
        crate::memory::estimate(greater_models::arch::CausalLm::config(&self.loaded.model), &w)
    }

    /// Run (or resume) the loop until the configured steps are done. Writes `config.toml`,
    /// `state.json` and `events.jsonl` in the output folder. A run predicted to need more than
    /// `max_memory` is refused before anything is written.
    pub fn optimize(&self, prepared: &Prepared, resume: bool) -> Result<RunState, OptError> {
        crate::memory::check_budget(&self.memory_estimate(prepared), self.cfg.max_memory)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| OptError::io(&self.dir, e))?;
        let mut state = if resume && state::has_checkpoint(&self.dir)? {
            let s = state::load(&self.dir)?;
            state::truncate_events(&self.dir, s.events)?;
            s
        } else {
            state::write_atomic(&self.dir.join("config.toml"), self.cfg.to_toml().as_bytes())?;
            state::truncate_events(&self.dir, 0)?;
            let s = RunState::new(prepared.initial.clone());
            state::save(&self.dir, &s)?;
            s
        };
        let banned = proposal::banned_tokens(&self.loaded.tokenizer, self.cfg)?;
        while state.step < self.cfg.steps && !state.finished {
            if self.observer.should_stop() {
                return Err(OptError::Interrupted(self.dir.clone()));
            }
            let (next, event) = step::step(self, prepared, &banned, &state)?;
            state = next;
            state::append_event(&self.dir, &event)?;
            state.events += 1;
            state::save(&self.dir, &state)?;
        }
        if !state.finished {
            state.finished = true;
            state::save(&self.dir, &state)?;
        }
        Ok(state)
    }
}

/// Read the resolved config of an earlier run.
pub fn load_config(dir: &Path) -> Result<OptimizeConfig, OptError> {
    OptimizeConfig::from_toml_file(&dir.join("config.toml"))
}

/// A per-step seed derived from the run seed, so a resumed run draws the same numbers.
pub fn step_seed(seed: u64, step: usize) -> u64 {
    greater_models::rng::derive_seed(seed, step as u64)
}
