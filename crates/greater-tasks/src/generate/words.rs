//! Word sorting like BBH `word_sorting`, over the word list `datasets/words.txt`.

use std::sync::LazyLock;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

static WORDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    include_str!("../../../../datasets/words.txt")
        .lines()
        .map(str::trim)
        .filter(|w| !w.is_empty() && !w.starts_with('#'))
        .collect()
});

/// The embedded word list (lowercase ASCII words, one per line in `datasets/words.txt`).
pub fn word_list() -> &'static [&'static str] {
    &WORDS
}

/// `(input, target)`: 2–20 distinct words in random order, and the same words sorted.
pub(super) fn generate(rng: &mut StdRng) -> (String, String) {
    let words = word_list();
    let count = rng.random_range(2..=20);
    let picked: Vec<&str> = sample(rng, words.len(), count).into_iter().map(|i| words[i]).collect();
    let mut sorted = picked.clone();
    sorted.sort_unstable();
    (format!("Sort the following words alphabetically: List: {}", picked.join(" ")), sorted.join(" "))
}
