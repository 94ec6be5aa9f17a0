//! Answer handling (SPEC A6): normalisation, matching against the gold label, the flexible score over the
//! reasoning, and the token-healing split of an extractor.

use serde::{Deserialize, Serialize};

use crate::example::Example;
use crate::spec::{AnswerKind, TaskSpec};

/// Splits an extractor into the text that is fed to the model and the prefix the answer carries.
///
/// Trailing whitespace of an extractor is never fed as a token of its own (token healing, SPEC A6): it is
/// removed from the fed text and carried by the answer instead, e.g. the token `" False"`.
///
/// ```
/// let (fed, prefix) = greater_tasks::split_extractor("... is $ ");
/// assert_eq!((fed, prefix), ("... is $", " "));
/// ```
pub fn split_extractor(extractor: &str) -> (&str, &str) {
    let fed = extractor.trim_end();
    (fed, &extractor[fed.len()..])
}

/// Normalises an answer text (SPEC A6), independent of the answer kind.
///
/// Repeats until nothing changes: strip surrounding whitespace; remove every `**`; strip `$` and quotes
/// (`'`, `"`, `` ` ``, curly quotes) at both ends; drop one trailing period; unwrap `(X)` around a single letter.
pub fn normalise(text: &str) -> String {
    const EDGE: &[char] = &['$', '"', '\'', '`', '\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}'];
    let mut current = text.to_owned();
    loop {
        let mut next = current.replace("**", "");
        next = next.trim().trim_matches(EDGE).trim().to_owned();
        if let Some(stripped) = next.strip_suffix('.') {
            next = stripped.to_owned();
        }
        if let Some(letter) = parenthesised_letter(&next) {
            next = letter.to_string();
        }
        if next == current {
            return current;
        }
        current = next;
    }
}

/// Cuts a greedy answer continuation at its first newline (SPEC A6).
pub fn cut_continuation(continuation: &str) -> &str {
    continuation.split('\n').next().unwrap_or("")
}

/// The outcome of scoring one answer against one example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerScore {
    /// The answer in canonical form, or `None` when it does not fit the task's answer kind (unparseable).
    pub prediction: Option<String>,
    /// Whether it equals the normalised gold.
    pub correct: bool,
}

impl TaskSpec {
    /// The extractor text fed to the model: the extractor without its trailing whitespace.
    pub fn fed_extractor(&self) -> &str {
        split_extractor(&self.extractor).0
    }

    /// The whitespace the answer carries (the extractor's trailing whitespace), e.g. `" "` or `""`.
    pub fn answer_prefix(&self) -> &str {
        split_extractor(&self.extractor).1
    }

    /// The training target text placed right after [`TaskSpec::fed_extractor`]: `answer_prefix + gold`.
    pub fn training_target(&self, example: &Example) -> String {
        format!("{}{}", self.answer_prefix(), example.target)
    }

    /// For closed label sets, every label as it is appended after the fed extractor (`answer_prefix + label`),
    /// in label order; `None` for open kinds. Used by the constrained score.
    pub fn label_texts(&self) -> Option<Vec<String>> {
        self.kind.is_closed().then(|| self.labels.iter().map(|l| format!("{}{l}", self.answer_prefix())).collect())
    }

    /// The canonical form of `text` if it fits the answer kind, else `None`.
    ///
    /// Letters must be one of the task's letters (case-sensitive); two-word sets match case-insensitively and
    /// return the task's spelling; numbers drop thousands separators, a `+`, leading zeros and trailing
    /// fractional zeros; free text must be non-empty.
    pub fn canonical(&self, text: &str) -> Option<String> {
        let norm = normalise(text);
        match self.kind {
            AnswerKind::Letter => self.labels.iter().find(|l| **l == norm).cloned(),
            AnswerKind::YesNo | AnswerKind::TrueFalse | AnswerKind::ValidInvalid => {
                self.labels.iter().find(|l| l.eq_ignore_ascii_case(&norm)).cloned()
            }
            AnswerKind::Integer => canonical_number(&norm).filter(|n| !n.contains('.')),
            AnswerKind::Number => canonical_number(&norm),
            AnswerKind::FreeText => (!norm.is_empty()).then_some(norm),
        }
    }

    /// The normalised gold for a raw target, or a description of what would fit.
    ///
    /// Targets listed in the spec's `odd_targets` are accepted as free text.
    pub fn gold(&self, raw_target: &str) -> Result<String, String> {
        if let Some(gold) = self.canonical(raw_target) {
            return Ok(gold);
        }
        if self.odd_targets.iter().any(|t| t == raw_target) {
            return Ok(normalise(raw_target));
        }
        Err(self.expected())
    }

    /// What an answer of this task looks like, for messages (e.g. "one of A, B, C").
    pub fn expected(&self) -> String {
        match self.kind {
            k if k.is_closed() => format!("one of {}", self.labels.join(", ")),
            AnswerKind::Integer => "an integer".into(),
            AnswerKind::Number => "a number".into(),
            _ => "non-empty text".into(),
        }
    }

    /// Scores a greedy answer continuation (the text generated after the fed extractor) against `example`.
    ///
    /// The continuation is cut at its first newline and normalised; it is correct when its canonical form
    /// equals the gold. An answer that fits no label is unparseable (`prediction: None`); it is still correct
    /// when its normalised text equals an odd gold (e.g. `Monsters, Inc`).
    pub fn score_answer(&self, example: &Example, continuation: &str) -> AnswerScore {
        let answer = cut_continuation(continuation);
        let prediction = self.canonical(answer);
        let correct = match &prediction {
            Some(p) => *p == example.target,
            None => normalise(answer) == example.target,
        };
        AnswerScore { prediction, correct }
    }

    /// The flexible reading of `reasoning`: the last span that matches the task's pattern, in canonical form.
    ///
    /// The span is the first capture group that took part in the match, or the whole match when the pattern has
    /// no group. `None` when nothing matches, the matched span fits no label, or the task has no pattern.
    pub fn flexible_answer(&self, reasoning: &str) -> Option<String> {
        let regex = self.flexible.as_ref()?;
        let caps = regex.captures_iter(reasoning).last()?;
        let span = caps.iter().skip(1).flatten().next().or_else(|| caps.get(0))?;
        self.canonical(span.as_str())
    }

    /// Scores the flexible reading of `reasoning` against `example`.
    pub fn score_flexible(&self, example: &Example, reasoning: &str) -> AnswerScore {
        let prediction = self.flexible_answer(reasoning);
        let correct = prediction.as_deref() == Some(example.target.as_str());
        AnswerScore { prediction, correct }
    }
}

/// `(X)` with X a single ASCII letter → X.
fn parenthesised_letter(text: &str) -> Option<char> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let mut chars = inner.chars();
    let c = chars.next()?;
    (chars.next().is_none() && c.is_ascii_alphabetic()).then_some(c)
}

/// Canonical decimal text of a number such as `-1,080.50` → `-1080.5`, or `None` when it is not one.
pub(crate) fn canonical_number(text: &str) -> Option<String> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let negative = text.starts_with('-');
    let plain: String = unsigned.chars().filter(|&c| c != ',').collect();
    if unsigned.starts_with(',') || unsigned.ends_with(',') {
        return None;
    }
    let (int, frac) = match plain.split_once('.') {
        Some((i, f)) => (i, f),
        None => (plain.as_str(), ""),
    };
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || (plain.contains('.') && frac.is_empty()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::new();
    if negative && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::spec;

    fn ex(target: &str) -> Example {
        Example { input: String::new(), target: target.into(), raw_target: target.into(), choices: Vec::new() }
    }

    #[test]
    fn normalise_strips_the_a6_decorations() {
        assert_eq!(normalise("  $ True  "), "True");
        assert_eq!(normalise("**B**"), "B");
        assert_eq!(normalise("(C)."), "C");
        assert_eq!(normalise("$(D)$"), "D");
        assert_eq!(normalise("'valid'"), "valid");
        assert_eq!(normalise("\"No.\""), "No");
        assert_eq!(normalise("$72$"), "72");
        assert_eq!(normalise("3.5"), "3.5");
        assert_eq!(normalise("(AB)"), "(AB)");
        assert_eq!(normalise("] ] >"), "] ] >");
        assert_eq!(normalise(""), "");
    }

    #[test]
    fn numbers_are_canonical() {
        assert_eq!(canonical_number("1,080").as_deref(), Some("1080"));
        assert_eq!(canonical_number("-0050").as_deref(), Some("-50"));
        assert_eq!(canonical_number("+7").as_deref(), Some("7"));
        assert_eq!(canonical_number("2.50").as_deref(), Some("2.5"));
        assert_eq!(canonical_number("72.00").as_deref(), Some("72"));
        assert_eq!(canonical_number("-0").as_deref(), Some("0"));
        assert_eq!(canonical_number("1.").as_deref(), None);
        assert_eq!(canonical_number("1e3").as_deref(), None);
        assert_eq!(canonical_number(",5").as_deref(), None);
        assert_eq!(canonical_number("abc").as_deref(), None);
    }

    #[test]
    fn kinds_match_as_a6_says() {
        let tf = spec("bbh/boolean_expressions").unwrap();
        assert_eq!(tf.canonical(" false.").as_deref(), Some("False"));
        assert_eq!(tf.canonical("1."), None);
        let yes = spec("bbh/sports_understanding").unwrap();
        assert_eq!(yes.canonical("Yes").as_deref(), Some("yes"));
        let letters = spec("bbh/hyperbaton").unwrap();
        assert_eq!(letters.canonical("(B)").as_deref(), Some("B"));
        assert_eq!(letters.canonical("b"), None, "letters are case-sensitive");
        assert_eq!(letters.canonical("C"), None, "C is not a hyperbaton label");
        let int = spec("bbh/multistep_arithmetic_two").unwrap();
        assert_eq!(int.canonical("$-50$").as_deref(), Some("-50"));
        assert_eq!(int.canonical("2.5"), None);
        let num = spec("gsm8k").unwrap();
        assert_eq!(num.canonical("2.5").as_deref(), Some("2.5"));
    }

    #[test]
    fn continuation_is_cut_at_newline_and_scored() {
        let tf = spec("bbh/boolean_expressions").unwrap();
        let s = tf.score_answer(&ex("False"), " False$\nSo the answer is True");
        assert_eq!(s, AnswerScore { prediction: Some("False".into()), correct: true });
        let s = tf.score_answer(&ex("False"), " 1.\n");
        assert_eq!(s, AnswerScore { prediction: None, correct: false });
        let movie = spec("bbh/movie_recommendation").unwrap();
        assert_eq!(movie.gold("Monsters, Inc").as_deref(), Ok("Monsters, Inc"));
        assert!(movie.score_answer(&ex("Monsters, Inc"), "Monsters, Inc.").correct);
        assert!(!movie.score_answer(&ex("Monsters, Inc"), "A").correct);
        assert_eq!(movie.gold("Walk"), Err("one of A, B, C, D, E".into()));
    }

    #[test]
    fn flexible_takes_the_last_answer_like_span() {
        let letters = spec("bbh/date_understanding").unwrap();
        let reasoning = "Option (A) is wrong, (F) too. So the answer is (B). Done";
        assert_eq!(letters.flexible_answer(reasoning).as_deref(), Some("B"));
        assert_eq!(letters.flexible_answer("I think the answer is $C").as_deref(), Some("C"));
        assert_eq!(letters.flexible_answer("A cat sat."), None);
        let num = spec("gsm8k").unwrap();
        assert_eq!(num.flexible_answer("48 + 24 = 72, so 1,080 total.").as_deref(), Some("1080"));
        assert!(num.score_flexible(&ex("1080"), "it is 1,080").correct);
        let yn = spec("bbh/navigate").unwrap();
        assert_eq!(yn.flexible_answer("No step back... so yes.").as_deref(), Some("Yes"));
        assert_eq!(spec("bbh/word_sorting").unwrap().flexible_answer("a b c"), None);
    }

    #[test]
    fn extractor_split_and_training_target() {
        assert_eq!(split_extractor("is $ "), ("is $", " "));
        assert_eq!(split_extractor("is $"), ("is $", ""));
        assert_eq!(split_extractor("is  \t"), ("is", "  \t"));
        let tf = spec("bbh/boolean_expressions").unwrap();
        assert!(tf.fed_extractor().ends_with("') is $"));
        assert_eq!(tf.training_target(&ex("False")), " False");
        assert_eq!(tf.label_texts().unwrap(), [" True", " False"]);
        let letters = spec("bbh/snarks").unwrap();
        assert_eq!(letters.training_target(&ex("A")), "A");
        assert_eq!(letters.label_texts().unwrap(), ["A", "B"]);
        assert_eq!(spec("gsm8k").unwrap().label_texts(), None);
    }
}
