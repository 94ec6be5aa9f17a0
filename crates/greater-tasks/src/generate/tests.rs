//! Generator tests: determinism, shapes, and answers recomputed by independent parsers.

use super::*;

fn take(generator: Generator, seed: u64, n: usize) -> Vec<Example> {
    generator.stream(seed).take(n).collect()
}

#[test]
fn same_seed_same_examples_other_seed_others() {
    for generator in Generator::ALL {
        let a = take(generator, 7, 20);
        assert_eq!(a, take(generator, 7, 20), "{}", generator.name());
        assert_ne!(a, take(generator, 8, 20), "{}", generator.name());
        let distinct = generator.distinct(7, 250).unwrap();
        let inputs: HashSet<&str> = distinct.iter().map(|e| e.input.as_str()).collect();
        assert_eq!(inputs.len(), 250, "{}", generator.name());
    }
}

#[test]
fn task_names_round_trip() {
    for generator in Generator::ALL {
        assert_eq!(Generator::from_task_name(&format!("gen/{}", generator.name())), Some(generator));
    }
    assert_eq!(Generator::from_task_name("bbh/word_sorting"), None);
}

// ---- boolean expressions: a recursive-descent parser over the tokens -------------------------------------

fn parse_or(tokens: &[&str], pos: &mut usize) -> bool {
    let mut value = parse_and(tokens, pos);
    while tokens.get(*pos) == Some(&"or") {
        *pos += 1;
        let right = parse_and(tokens, pos);
        value = value || right;
    }
    value
}

fn parse_and(tokens: &[&str], pos: &mut usize) -> bool {
    let mut value = parse_not(tokens, pos);
    while tokens.get(*pos) == Some(&"and") {
        *pos += 1;
        let right = parse_not(tokens, pos);
        value = value && right;
    }
    value
}

fn parse_not(tokens: &[&str], pos: &mut usize) -> bool {
    let token = tokens[*pos];
    *pos += 1;
    match token {
        "not" => !parse_not(tokens, pos),
        "True" => true,
        "False" => false,
        "(" => {
            let value = parse_or(tokens, pos);
            assert_eq!(tokens[*pos], ")");
            *pos += 1;
            value
        }
        other => panic!("unexpected token {other}"),
    }
}

#[test]
fn boolean_answers_are_correct() {
    let mut both = [false, false];
    for example in take(Generator::BooleanExpressions, 1, 300) {
        let tokens: Vec<&str> = example.input.split(' ').collect();
        assert_eq!(tokens.len(), 9, "{}", example.input);
        assert_eq!(tokens[8], "is");
        let mut pos = 0;
        let value = parse_or(&tokens[..8], &mut pos);
        assert_eq!(pos, 8, "{}", example.input);
        assert_eq!(example.target, if value { "True" } else { "False" }, "{}", example.input);
        both[usize::from(value)] = true;
    }
    assert_eq!(both, [true, true]);
    // Hand-checked: not True or False or ( False ) → False; True and not not ( not False ) → True.
    let mut pos = 0;
    assert!(!parse_or(&["not", "True", "or", "False", "or", "(", "False", ")"], &mut pos));
}

// ---- arithmetic: a character-level recursive-descent evaluator ---------------------------------------------

struct Calc<'a> {
    s: &'a [u8],
    i: usize,
}

impl Calc<'_> {
    fn skip(&mut self) {
        while self.s.get(self.i) == Some(&b' ') {
            self.i += 1;
        }
    }
    fn expr(&mut self) -> i64 {
        let mut value = self.term();
        loop {
            self.skip();
            match self.s.get(self.i) {
                Some(b'+') if self.s.get(self.i + 1) == Some(&b' ') => {
                    self.i += 1;
                    value += self.term();
                }
                Some(b'-') if self.s.get(self.i + 1) == Some(&b' ') => {
                    self.i += 1;
                    value -= self.term();
                }
                _ => return value,
            }
        }
    }
    fn term(&mut self) -> i64 {
        let mut value = self.atom();
        loop {
            self.skip();
            if self.s.get(self.i) == Some(&b'*') {
                self.i += 1;
                value *= self.atom();
            } else {
                return value;
            }
        }
    }
    fn atom(&mut self) -> i64 {
        self.skip();
        if self.s[self.i] == b'(' {
            self.i += 1;
            let value = self.expr();
            self.skip();
            assert_eq!(self.s[self.i], b')');
            self.i += 1;
            return value;
        }
        let start = self.i;
        if self.s[self.i] == b'-' {
            self.i += 1;
        }
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).unwrap().parse().unwrap()
    }
}

fn calc(text: &str) -> i64 {
    let mut c = Calc { s: text.as_bytes(), i: 0 };
    let value = c.expr();
    assert_eq!(c.i, text.len(), "trailing text in {text}");
    value
}

#[test]
fn arithmetic_answers_are_correct() {
    // Hand-checked BBH rows: (-1 + 2 + 45) - (-2 + -4 + 28) = 46 - 22 = 24.
    assert_eq!(calc("((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7))"), 24);
    assert_eq!(calc("((6 * -6 * 8 * 1) * (-1 * 7 * -6 + -2))"), -11520);
    for example in take(Generator::MultistepArithmetic, 2, 300) {
        let expr = example.input.strip_suffix(" =").expect("ends with ' ='");
        assert!(expr.starts_with("((") && expr.ends_with("))"), "{expr}");
        assert_eq!(expr.matches(['+', '*']).count() + expr.matches(" - ").count(), 7, "{expr}");
        assert_eq!(example.target, calc(expr).to_string(), "{expr}");
    }
}

// ---- word sorting ------------------------------------------------------------------------------------------

#[test]
fn word_sorting_answers_are_correct() {
    let list = word_list();
    assert!(list.len() >= 200);
    assert!(list.iter().all(|w| w.bytes().all(|b| b.is_ascii_lowercase())), "words must be lowercase ASCII");
    assert_eq!(list.iter().collect::<HashSet<_>>().len(), list.len(), "duplicate words");
    for example in take(Generator::WordSorting, 3, 200) {
        let words = example.input.strip_prefix("Sort the following words alphabetically: List: ").unwrap();
        let mut words: Vec<&str> = words.split(' ').collect();
        assert!((2..=20).contains(&words.len()));
        words.sort();
        assert_eq!(example.target, words.join(" "));
    }
}

// ---- object counting: parse the list and count by the vocabulary --------------------------------------------

fn count_words(word: &str) -> Option<usize> {
    ["a", "two", "three", "four", "five"].iter().position(|w| *w == word).map(|i| i + 1).or((word == "an").then_some(1))
}

#[test]
fn counting_answers_are_correct() {
    let mut seen_categories = HashSet::new();
    for example in take(Generator::ObjectCounting, 4, 300) {
        let body = example.input.strip_prefix("I have ").unwrap();
        let (list, question) = body.split_once(". How many ").unwrap();
        let category = question.strip_suffix(" do I have?").unwrap();
        seen_categories.insert(category.to_owned());
        let phrases: Vec<&str> = list.split(", ").map(|p| p.strip_prefix("and ").unwrap_or(p)).collect();
        assert!(phrases.len() >= 2, "{}", example.input);
        let mut total = 0;
        for phrase in phrases {
            let (count, noun) = phrase.split_once(' ').unwrap();
            let count = count_words(count).unwrap_or_else(|| panic!("count word in {phrase}"));
            let item = COUNTING_ITEMS
                .iter()
                .find(|i| if count == 1 { i.singular == noun } else { i.plural == noun })
                .unwrap_or_else(|| panic!("unknown item {phrase}"));
            if item.category == category {
                total += count;
            }
        }
        assert!(total >= 1);
        assert_eq!(example.target, total.to_string(), "{}", example.input);
    }
    assert_eq!(seen_categories.len(), COUNTING_CATEGORIES.len());
}
