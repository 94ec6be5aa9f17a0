//! A task example as token ids with the index range of every part (SPEC A3).
//!
//! The user turn `{question}{joiner}{frozen_prefix}{prompt}` is rendered with the model's own chat
//! template (generation prompt on) and encoded once with offsets. Each token belongs to the text
//! part that holds its last character, so a prompt token absorbs the space before it (`" proper"`).
//! A token that swallows anything more than whitespace from a neighbouring part is an error: the
//! part boundary would otherwise shift silently. After that the prompt lives as ids; prefix and
//! suffix ids are reused around any candidate prompt, never re-tokenised.
//!
//! The assistant text is `{reasoning} {extractor}{answer}`: the extractor is fed without its
//! trailing whitespace and the answer carries it (token healing, SPEC A6).

use greater_grad::TrainSequence;
use greater_models::chat::ChatMessage;
use greater_models::model::LoadedModel;
use greater_tasks::{Example, TaskSpec};

use crate::OptError;

/// Where the prompt goes in the user turn.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    /// Between the question and the frozen prefix (default `". "`).
    pub joiner: String,
    /// Fixed text before the prompt, never optimised (default `"Use "`).
    pub frozen_prefix: String,
}

impl Default for Placement {
    fn default() -> Self {
        Self {
            joiner: greater_tasks::DEFAULT_JOINER.into(),
            frozen_prefix: greater_tasks::DEFAULT_FROZEN_PREFIX.into(),
        }
    }
}

/// The fixed ids around the prompt and after the reasoning, for one example.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExampleLayout {
    /// Chat prefix, question, joiner, frozen prefix.
    pub prefix: Vec<u32>,
    /// Rest of the user turn and the assistant header.
    pub suffix: Vec<u32>,
    /// `" " + extractor` without its trailing whitespace.
    pub extractor: Vec<u32>,
    /// The extractor's trailing whitespace + the gold label.
    pub answer: Vec<u32>,
}

impl ExampleLayout {
    /// The full sequence for `control` (prompt ids) and `reasoning` ids.
    pub fn sequence(&self, control: &[u32], reasoning: &[u32]) -> TrainSequence {
        TrainSequence::join([&self.prefix, control, &self.suffix, reasoning, &self.extractor, &self.answer])
    }

    /// The ids the reasoning is generated from.
    pub fn generation_prompt(&self, control: &[u32]) -> Vec<u32> {
        [&self.prefix[..], control, &self.suffix].concat()
    }

    /// The ids the answer is generated from (or scored after).
    pub fn answer_context(&self, control: &[u32], reasoning: &[u32]) -> Vec<u32> {
        [&self.prefix[..], control, &self.suffix, reasoning, &self.extractor].concat()
    }
}

/// Builds [`ExampleLayout`]s for one model, task and placement.
#[derive(Debug)]
pub struct Layouter<'a> {
    loaded: &'a LoadedModel,
    spec: &'a TaskSpec,
    placement: Placement,
}

impl<'a> Layouter<'a> {
    /// A layouter for `loaded` and `spec`.
    pub fn new(loaded: &'a LoadedModel, spec: &'a TaskSpec, placement: Placement) -> Self {
        Self { loaded, spec, placement }
    }

    /// The user turn text of `question` with `prompt`.
    pub fn user_turn(&self, question: &str, prompt: &str) -> String {
        format!("{question}{}{}{prompt}", self.placement.joiner, self.placement.frozen_prefix)
    }

    /// Lay out example `index` with the prompt `prompt` (text): its fixed parts and the prompt ids.
    pub fn example(
        &self,
        index: usize,
        example: &Example,
        prompt: &str,
    ) -> Result<(ExampleLayout, Vec<u32>), OptError> {
        let err = |reason: String| OptError::Layout { example: index, reason };
        if prompt.trim().is_empty() {
            return Err(err("the prompt is empty".into()));
        }
        let head = format!("{}{}{}", example.input, self.placement.joiner, self.placement.frozen_prefix);
        let user = format!("{head}{prompt}");
        let rendered = self.loaded.chat.render(&[ChatMessage::user(user.clone())], true)?;
        let Some(at) = rendered.find(&user) else {
            return Err(err("the chat template changed the user text, so the prompt cannot be located in it".into()));
        };
        let (p0, p1) = (at + head.len(), at + user.len());
        let enc = self.loaded.tokenizer.encode_with_offsets(&rendered, false)?;
        let (mut prefix, mut control, mut suffix) = (Vec::new(), Vec::new(), Vec::new());
        for (&id, &(start, end)) in enc.ids.iter().zip(&enc.offsets) {
            let last = end.max(start + 1) - 1;
            let crosses = |boundary: usize| start < boundary && last >= boundary;
            let only_space = |a: usize, b: usize| rendered[a..b].chars().all(char::is_whitespace);
            if last < p0 {
                prefix.push(id);
            } else if last < p1 {
                if crosses(p0) && !only_space(start, p0) {
                    return Err(err(format!(
                        "token {:?} merges the text before the prompt with the prompt; change the frozen prefix or the prompt's first word",
                        &rendered[start..end]
                    )));
                }
                control.push(id);
            } else {
                if crosses(p1) {
                    return Err(err(format!(
                        "token {:?} merges the end of the prompt with the text after it",
                        &rendered[start..end]
                    )));
                }
                suffix.push(id);
            }
        }
        if control.is_empty() {
            return Err(err("the prompt produced no tokens of its own".into()));
        }
        let layout = self.fixed_parts(prefix, suffix, example)?;
        Ok((layout, control))
    }

    fn fixed_parts(&self, prefix: Vec<u32>, suffix: Vec<u32>, example: &Example) -> Result<ExampleLayout, OptError> {
        let tok = &self.loaded.tokenizer;
        let extractor = tok.encode(&format!(" {}", self.spec.fed_extractor()), false)?;
        let answer = tok.encode(&self.spec.training_target(example), false)?;
        Ok(ExampleLayout { prefix, suffix, extractor, answer })
    }

    /// Ids of every closed label as appended after the fed extractor (constrained score).
    pub fn label_ids(&self) -> Result<Option<Vec<Vec<u32>>>, OptError> {
        let Some(labels) = self.spec.label_texts() else { return Ok(None) };
        let tok = &self.loaded.tokenizer;
        Ok(Some(labels.iter().map(|l| tok.encode(l, false)).collect::<Result<_, _>>()?))
    }
}

/// The token ids of every answer variant of `example` (SPEC A6 spellings of its gold, see
/// [`TaskSpec::answer_variants`]) as appended after the fed extractor: `official` first, then each
/// distinct tokenisation.
pub fn answer_variant_ids(
    tok: &greater_models::tokenizer::Tokenizer,
    spec: &TaskSpec,
    example: &Example,
    official: &[u32],
) -> Result<Vec<Vec<u32>>, OptError> {
    let mut ids: Vec<Vec<u32>> = vec![official.to_vec()];
    for text in spec.answer_variants(example) {
        let v = tok.encode(&text, false)?;
        if !v.is_empty() && !ids.contains(&v) {
            ids.push(v);
        }
    }
    Ok(ids)
}
