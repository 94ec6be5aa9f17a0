//! Built-in generated tasks: seeded generators that give unlimited fresh examples with exact answers, shaped
//! like their BBH counterparts (`gen/boolean_expressions`, `gen/multistep_arithmetic`, `gen/word_sorting`,
//! `gen/object_counting`).
//!
//! A generator draws from `StdRng::seed_from_u64(seed)`, so a seed gives the same examples for a fixed `rand`
//! version (pinned by `Cargo.lock`).

mod arithmetic;
mod boolean;
mod counting;
mod words;

use std::collections::HashSet;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

pub use counting::{COUNTING_CATEGORIES, COUNTING_ITEMS, CountingItem};
pub use words::word_list;

use crate::error::TaskError;
use crate::example::Example;

/// A built-in example generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Generator {
    /// `not ( True ) and ( True ) is` → `False`: 8 tokens of constants, `not`, `and`, `or` and parentheses,
    /// evaluated with Python precedence (`not` > `and` > `or`).
    BooleanExpressions,
    /// `((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =` → `24`: two groups of four integers in −9..=9.
    MultistepArithmetic,
    /// `Sort the following words alphabetically: List: b a` → `a b`: 2–20 distinct words.
    WordSorting,
    /// `I have a flute, two lamps, and a drum. How many musical instruments do I have?` → `3`.
    ObjectCounting,
}

impl Generator {
    /// Every generator.
    pub const ALL: [Generator; 4] = [
        Generator::BooleanExpressions,
        Generator::MultistepArithmetic,
        Generator::WordSorting,
        Generator::ObjectCounting,
    ];

    /// The generator's name, e.g. `boolean_expressions`; its task is `gen/<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Generator::BooleanExpressions => "boolean_expressions",
            Generator::MultistepArithmetic => "multistep_arithmetic",
            Generator::WordSorting => "word_sorting",
            Generator::ObjectCounting => "object_counting",
        }
    }

    /// The generator of task `gen/<name>`.
    pub fn from_task_name(task: &str) -> Option<Self> {
        let name = task.strip_prefix("gen/")?;
        Self::ALL.into_iter().find(|g| g.name() == name)
    }

    /// One example drawn from `rng`.
    pub fn example(self, rng: &mut StdRng) -> Example {
        let (input, target) = match self {
            Generator::BooleanExpressions => boolean::generate(rng),
            Generator::MultistepArithmetic => arithmetic::generate(rng),
            Generator::WordSorting => words::generate(rng),
            Generator::ObjectCounting => counting::generate(rng),
        };
        Example { input, raw_target: target.clone(), target, choices: Vec::new() }
    }

    /// An unlimited stream of examples for `seed` (inputs may repeat; see [`Generator::distinct`]).
    pub fn stream(self, seed: u64) -> impl Iterator<Item = Example> {
        let mut rng = StdRng::seed_from_u64(seed);
        std::iter::repeat_with(move || self.example(&mut rng))
    }

    /// The first `n` examples of the stream for `seed` whose inputs are all different.
    pub fn distinct(self, seed: u64, n: usize) -> Result<Vec<Example>, TaskError> {
        let tries = 50 * n + 1000;
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(n);
        for example in self.stream(seed).take(tries) {
            if out.len() == n {
                break;
            }
            if seen.insert(example.input.clone()) {
                out.push(example);
            }
        }
        if out.len() < n {
            return Err(TaskError::GeneratorExhausted {
                generator: self.name().into(),
                made: out.len(),
                wanted: n,
                tries,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
