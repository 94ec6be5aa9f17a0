//! One training sequence as token ids, with the index range of each part (SPEC A3).
//!
//! ```text
//! [ chat prefix · question · joiner · frozen prefix ][ prompt ][ chat suffix ][ reasoning ][ extractor ][ answer ]
//!                                                    control                  reasoning    extractor    answer
//! ```
//! Parts are kept as ids and concatenated; the prompt is never decoded and re-encoded, so its
//! positions cannot drift. The text-level split that produces the initial parts lives with the
//! tokenizer in the optimiser; this module only joins ids and keeps the ranges right.

use std::ops::Range;

/// The parts of a sequence, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Part {
    /// Chat prefix, question, joiner and frozen prefix.
    Prefix,
    /// The prompt under optimisation (the "control").
    Control,
    /// The rest of the user turn and the assistant header.
    Suffix,
    /// The model's own greedy reasoning.
    Reasoning,
    /// The extractor text (its trailing space, if any, moved to the answer).
    Extractor,
    /// The gold answer tokens.
    Answer,
}

/// A sequence of ids with the range of every part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrainSequence {
    /// All ids.
    pub ids: Vec<u32>,
    /// `[start, stop)` of each [`Part`], in `Part` order.
    pub ranges: [Range<usize>; 6],
}

impl TrainSequence {
    /// Join the six parts, in [`Part`] order.
    pub fn join(parts: [&[u32]; 6]) -> Self {
        let mut ids = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        let ranges = parts.map(|p| {
            let start = ids.len();
            ids.extend_from_slice(p);
            start..ids.len()
        });
        Self { ids, ranges }
    }

    /// The range of `part`.
    pub fn range(&self, part: Part) -> Range<usize> {
        self.ranges[part as usize].clone()
    }

    /// The ids of `part`.
    pub fn part(&self, part: Part) -> &[u32] {
        &self.ids[self.range(part)]
    }

    /// The same sequence with another prompt (control) of any length.
    pub fn with_control(&self, control: &[u32]) -> Self {
        let p = |part| self.part(part);
        Self::join([p(Part::Prefix), control, p(Part::Suffix), p(Part::Reasoning), p(Part::Extractor), p(Part::Answer)])
    }

    /// The same sequence with other reasoning.
    pub fn with_reasoning(&self, reasoning: &[u32]) -> Self {
        let p = |part| self.part(part);
        Self::join([p(Part::Prefix), p(Part::Control), p(Part::Suffix), reasoning, p(Part::Extractor), p(Part::Answer)])
    }

    /// The ablation of the paper's Fig. 3: the answer right after the prompt, without reasoning.
    pub fn without_reasoning(&self) -> Self {
        self.with_reasoning(&[])
    }

    /// Everything before the reasoning: the rendered user turn and assistant header, from which
    /// the reasoning is generated.
    pub fn generation_prompt(&self) -> &[u32] {
        &self.ids[..self.range(Part::Reasoning).start]
    }

    /// The ids up to (not including) prompt position `p`: the prefix forward of candidate proposal.
    pub fn prefix_to_control(&self, p: usize) -> &[u32] {
        &self.ids[..self.range(Part::Control).start + p]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_parts_and_survive_edits() {
        let s = TrainSequence::join([&[1, 2], &[10, 11, 12], &[3], &[20, 21], &[30], &[40]]);
        assert_eq!(s.ids, [1, 2, 10, 11, 12, 3, 20, 21, 30, 40]);
        assert_eq!(s.range(Part::Control), 2..5);
        assert_eq!(s.range(Part::Answer), 9..10);
        let longer = s.with_control(&[10, 11, 12, 13]);
        assert_eq!(longer.range(Part::Reasoning), 7..9);
        assert_eq!(longer.part(Part::Answer), [40]);
        let bare = s.without_reasoning();
        assert_eq!(bare.ids, [1, 2, 10, 11, 12, 3, 30, 40]);
        assert_eq!(bare.range(Part::Reasoning), 6..6);
        assert_eq!(s.generation_prompt(), [1, 2, 10, 11, 12, 3]);
        assert_eq!(s.prefix_to_control(1), [1, 2, 10]);
    }
}
