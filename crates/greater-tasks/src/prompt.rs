//! The user turn of SPEC A3: `{question}{joiner}{frozen_prefix}{prompt}`, with its defaults in one place,
//! and the other places a prompt can go ([`PromptPlace`]).

/// Text between the question and the frozen prefix (SPEC A3).
pub const DEFAULT_JOINER: &str = ". ";

/// Fixed text in front of the optimised prompt; never optimised (SPEC A3, B.3.2).
pub const DEFAULT_FROZEN_PREFIX: &str = "Use ";

/// The initial prompt GReaTer starts from (SPEC A3; B.2 without the leading space, which the frozen prefix carries).
pub const DEFAULT_INITIAL_PROMPT: &str =
    "proper logical reasoning and think step by step. Finally give the actual correct answer.";

/// Builds the user turn `{question}{joiner}{frozen_prefix}{prompt}`.
///
/// ```
/// use greater_tasks::{user_turn, DEFAULT_JOINER, DEFAULT_FROZEN_PREFIX};
/// let turn = user_turn("2 + 2 =", DEFAULT_JOINER, DEFAULT_FROZEN_PREFIX, "care.");
/// assert_eq!(turn, "2 + 2 =. Use care.");
/// ```
pub fn user_turn(question: &str, joiner: &str, frozen_prefix: &str, prompt: &str) -> String {
    let mut turn = String::with_capacity(question.len() + joiner.len() + frozen_prefix.len() + prompt.len());
    turn.push_str(question);
    turn.push_str(joiner);
    turn.push_str(frozen_prefix);
    turn.push_str(prompt);
    turn
}

/// Where the prompt goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptPlace {
    /// User turn `{question}{joiner}{frozen_prefix}{prompt}` (the paper's).
    #[default]
    After,
    /// User turn `{frozen_prefix}{prompt}{joiner}{question}`.
    Before,
    /// System turn `{frozen_prefix}{prompt}`, user turn `{question}`.
    System,
}

impl std::str::FromStr for PromptPlace {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "after" => Ok(Self::After),
            "before" => Ok(Self::Before),
            "system" => Ok(Self::System),
            _ => Err(format!("unknown prompt placement `{s}` (after, before or system)")),
        }
    }
}

/// The parts of the user turn other than the question, with the SPEC A3 defaults.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PromptLayout {
    /// Text between the question and the frozen prefix.
    pub joiner: String,
    /// Fixed, never optimised text in front of the prompt.
    pub frozen_prefix: String,
}

impl Default for PromptLayout {
    fn default() -> Self {
        Self { joiner: DEFAULT_JOINER.to_owned(), frozen_prefix: DEFAULT_FROZEN_PREFIX.to_owned() }
    }
}

impl PromptLayout {
    /// The user turn for `question` and `prompt` with this layout.
    pub fn user_turn(&self, question: &str, prompt: &str) -> String {
        user_turn(question, &self.joiner, &self.frozen_prefix, prompt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_turn_is_the_paper_layout() {
        let turn = PromptLayout::default().user_turn("Is 3 odd?", DEFAULT_INITIAL_PROMPT);
        assert_eq!(
            turn,
            "Is 3 odd?. Use proper logical reasoning and think step by step. Finally give the actual correct answer."
        );
    }

    #[test]
    fn parts_are_concatenated_verbatim() {
        assert_eq!(user_turn("Q", " | ", "", "P"), "Q | P");
        assert_eq!(user_turn("", "", "", ""), "");
    }
}
