//! Answer variants: every spelling of the gold answer that the evaluation (SPEC A6) grades as
//! correct when it follows the fed extractor, so that a training target can reward the right answer
//! however the model prefers to write it (`True` or ` True`, `(A)` or `A`, `yes` or `Yes`).

use crate::answer::normalise;
use crate::example::Example;
use crate::spec::{AnswerKind, TaskSpec};

impl TaskSpec {
    /// The texts placed right after [`TaskSpec::fed_extractor`] that grade as `example`'s gold.
    ///
    /// The official training target ([`TaskSpec::training_target`]) comes first; then, for each
    /// leading whitespace (the extractor's own, none, one space) and each spelling the normaliser
    /// accepts — the gold as written, case variants for case-insensitive kinds, `(X)` around a single
    /// letter — the text, kept only if [`TaskSpec::canonical`] maps it back to the gold. No
    /// duplicates; the order is fixed.
    pub fn answer_variants(&self, example: &Example) -> Vec<String> {
        let gold = &example.target;
        let mut spellings = vec![gold.clone()];
        if self.kind.is_case_insensitive() {
            let lower = gold.to_ascii_lowercase();
            let mut capital = lower.clone();
            if let Some(first) = capital.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            spellings.extend([lower, capital, gold.to_ascii_uppercase()]);
        }
        if self.kind == AnswerKind::Letter && gold.chars().count() == 1 {
            spellings.push(format!("({gold})"));
        }
        let mut out = vec![self.training_target(example)];
        for lead in [self.answer_prefix(), "", " "] {
            for s in &spellings {
                let text = format!("{lead}{s}");
                if !out.contains(&text) && self.grades_as(&text, gold) {
                    out.push(text);
                }
            }
        }
        out
    }

    /// Whether an answer continuation `text` grades as `gold` (exact match after normalisation).
    fn grades_as(&self, text: &str, gold: &str) -> bool {
        match self.canonical(text) {
            Some(c) => c == gold,
            // Odd targets are free text: they match their own normal form.
            None => self.odd_targets.iter().any(|t| normalise(t) == gold) && normalise(text) == gold,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Example;
    use crate::registry::spec;

    fn ex(target: &str) -> Example {
        Example { input: String::new(), target: target.into(), raw_target: target.into(), choices: Vec::new() }
    }

    #[test]
    fn true_false_variants_cover_spacing_and_case() {
        let tf = spec("bbh/boolean_expressions").unwrap();
        let v = tf.answer_variants(&ex("False"));
        assert_eq!(v[0], " False", "the official target comes first");
        for want in [" False", " false", " FALSE", "False", "false", "FALSE"] {
            assert!(v.contains(&want.to_string()), "{want:?} missing from {v:?}");
        }
        assert_eq!(v.len(), 6, "{v:?}");
        for text in &v {
            assert!(tf.score_answer(&ex("False"), text).correct, "{text:?}");
        }
        assert!(!v.iter().any(|t| t.contains("True")));
    }

    #[test]
    fn letter_variants_add_parentheses_and_keep_case() {
        let letters = spec("bbh/logical_deduction_three_objects").unwrap();
        let v = letters.answer_variants(&ex("B"));
        assert_eq!(v, ["B", "(B)", " B", " (B)"]);
        // Letters are case-sensitive: "b" grades as wrong, so it is no variant.
        assert!(!letters.score_answer(&ex("B"), "b").correct);
    }

    #[test]
    fn numeric_and_multi_word_variants() {
        let gsm = spec("gsm8k").unwrap();
        assert_eq!(gsm.answer_variants(&ex("42")), ["42", " 42"]);
        let sorting = spec("bbh/word_sorting").unwrap();
        let v = sorting.answer_variants(&ex("apple banana cherry"));
        assert_eq!(v[0], sorting.training_target(&ex("apple banana cherry")));
        assert!(v.iter().all(|t| t.trim() == "apple banana cherry"), "{v:?}");
    }
}
