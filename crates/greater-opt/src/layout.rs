//! A task example as token ids with the index range of every part (SPEC A3).
//!
//! The user turn `{question}{joiner}{frozen_prefix}{prompt}` (the paper's placement; the prompt
//! can also go before the question or into the system turn, see [`PromptPlace`]) is rendered with
//! the model's own chat template (generation prompt on) and encoded once with offsets. Each token belongs to the text
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

pub use greater_tasks::PromptPlace;

/// Where the prompt goes, and the text around it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    /// Between the question and the frozen prefix (default `". "`).
    pub joiner: String,
    /// Fixed text before the prompt, never optimised (default `"Use "`).
    pub frozen_prefix: String,
    /// Which turn holds the prompt, and on which side of the question; `None`: the task's
    /// (a custom task's spec may say), else after the question.
    pub place: Option<PromptPlace>,
    /// The system turn: `None` leaves the template's default (SmolLM2's and Qwen2.5's inject
    /// one), `Some("")` asks for none, other text replaces it. Not with [`PromptPlace::System`].
    pub system: Option<String>,
}

impl Default for Placement {
    fn default() -> Self {
        Self {
            joiner: greater_tasks::DEFAULT_JOINER.into(),
            frozen_prefix: greater_tasks::DEFAULT_FROZEN_PREFIX.into(),
            place: None,
            system: None,
        }
    }
}

/// The messages of one example and where the prompt text lies in one of them.
struct Turns {
    messages: Vec<ChatMessage>,
    /// The message text that holds the prompt.
    holder: String,
    /// Byte range of the prompt in `holder`.
    prompt: std::ops::Range<usize>,
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

    /// The text of `question` with `prompt` as the model reads it: the user turn, preceded by
    /// `[system] …` when the prompt is in the system turn.
    pub fn user_turn(&self, question: &str, prompt: &str) -> String {
        let p = &self.placement;
        match self.place() {
            PromptPlace::After => format!("{question}{}{}{prompt}", p.joiner, p.frozen_prefix),
            PromptPlace::Before => format!("{}{prompt}{}{question}", p.frozen_prefix, p.joiner),
            PromptPlace::System => format!("[system] {}{prompt}\n[user] {question}", p.frozen_prefix),
        }
    }

    /// Where the prompt goes: the run's placement, else the task's, else after the question.
    pub fn place(&self) -> PromptPlace {
        self.placement.place.or(self.spec.placement).unwrap_or_default()
    }

    /// The messages of `question` with `prompt`, and where the prompt lies.
    fn turns(&self, question: &str, prompt: &str) -> Result<Turns, OptError> {
        let p = &self.placement;
        let at = |start: usize| start..start + prompt.len();
        let (holder, range) = match self.place() {
            PromptPlace::After => {
                let head = format!("{question}{}{}", p.joiner, p.frozen_prefix);
                (format!("{head}{prompt}"), at(head.len()))
            }
            PromptPlace::Before => {
                (format!("{}{prompt}{}{question}", p.frozen_prefix, p.joiner), at(p.frozen_prefix.len()))
            }
            PromptPlace::System => {
                if p.system.is_some() {
                    return Err(OptError::Invalid(
                        "a system text cannot be given when the prompt is placed in the system turn".into(),
                    ));
                }
                let holder = format!("{}{prompt}", p.frozen_prefix);
                let messages = vec![ChatMessage::system(holder.clone()), ChatMessage::user(question)];
                return Ok(Turns { messages, holder, prompt: at(p.frozen_prefix.len()) });
            }
        };
        let user = ChatMessage::user(holder.clone());
        let messages = match p.system.as_deref() {
            None => vec![user],
            Some("") => self.without_system(user)?,
            Some(text) => vec![ChatMessage::system(text), user],
        };
        Ok(Turns { messages, holder, prompt: range })
    }

    /// Messages with no system text: an empty system turn where the template would inject a
    /// default one, nothing where it has no system turn of its own (an empty one would only add
    /// whitespace, as Gemma's prepends it to the user turn).
    fn without_system(&self, user: ChatMessage) -> Result<Vec<ChatMessage>, OptError> {
        let chat = &self.loaded.chat;
        let bare = chat.render(std::slice::from_ref(&user), true)?;
        let empty = vec![ChatMessage::system(""), user.clone()];
        let with_empty = chat.render(&empty, true)?;
        let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        Ok(if squeeze(&bare) == squeeze(&with_empty) { vec![user] } else { empty })
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
        let turns = self.turns(&example.input, prompt)?;
        let rendered = self.loaded.chat.render(&turns.messages, true)?;
        let Some(at) = rendered.find(&turns.holder) else {
            return Err(err(
                "the chat template changed the prompt's turn, so the prompt cannot be located in it".into()
            ));
        };
        let (p0, p1) = (at + turns.prompt.start, at + turns.prompt.end);
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
