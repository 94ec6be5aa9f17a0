//! Object counting like BBH `object_counting`:
//! `I have a flute, two lamps, and a drum. How many musical instruments do I have?` → `2`.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

/// One countable item of the generator's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountingItem {
    /// Category as asked in the question, e.g. `fruits`.
    pub category: &'static str,
    /// `a` or `an`.
    pub article: &'static str,
    /// Singular phrase, e.g. `head of broccoli`.
    pub singular: &'static str,
    /// Plural phrase, e.g. `heads of broccoli`.
    pub plural: &'static str,
}

/// The categories, as asked in the question. `objects` questions list only objects (no distractors).
pub const COUNTING_CATEGORIES: [&str; 5] = ["musical instruments", "fruits", "vegetables", "animals", "objects"];

const fn item(
    category: &'static str,
    article: &'static str,
    singular: &'static str,
    plural: &'static str,
) -> CountingItem {
    CountingItem { category, article, singular, plural }
}

const MUSIC: &str = "musical instruments";
const FRUIT: &str = "fruits";
const VEG: &str = "vegetables";
const ANIMAL: &str = "animals";
const OBJECT: &str = "objects";

/// The vocabulary; every phrase (singular or plural) names exactly one item.
pub const COUNTING_ITEMS: &[CountingItem] = &[
    item(MUSIC, "a", "piano", "pianos"),
    item(MUSIC, "a", "flute", "flutes"),
    item(MUSIC, "a", "trombone", "trombones"),
    item(MUSIC, "a", "violin", "violins"),
    item(MUSIC, "an", "accordion", "accordions"),
    item(MUSIC, "a", "clarinet", "clarinets"),
    item(MUSIC, "a", "drum", "drums"),
    item(MUSIC, "a", "trumpet", "trumpets"),
    item(FRUIT, "an", "apple", "apples"),
    item(FRUIT, "a", "banana", "bananas"),
    item(FRUIT, "a", "strawberry", "strawberries"),
    item(FRUIT, "a", "peach", "peaches"),
    item(FRUIT, "an", "orange", "oranges"),
    item(FRUIT, "a", "plum", "plums"),
    item(FRUIT, "a", "raspberry", "raspberries"),
    item(FRUIT, "a", "grape", "grapes"),
    item(FRUIT, "a", "nectarine", "nectarines"),
    item(FRUIT, "a", "blackberry", "blackberries"),
    item(VEG, "a", "yam", "yams"),
    item(VEG, "a", "cauliflower", "cauliflowers"),
    item(VEG, "a", "lettuce head", "lettuce heads"),
    item(VEG, "a", "head of broccoli", "heads of broccoli"),
    item(VEG, "a", "potato", "potatoes"),
    item(VEG, "a", "stalk of celery", "stalks of celery"),
    item(VEG, "an", "onion", "onions"),
    item(VEG, "a", "cabbage", "cabbages"),
    item(VEG, "a", "carrot", "carrots"),
    item(ANIMAL, "a", "bear", "bears"),
    item(ANIMAL, "a", "frog", "frogs"),
    item(ANIMAL, "a", "cat", "cats"),
    item(ANIMAL, "a", "dog", "dogs"),
    item(ANIMAL, "a", "rabbit", "rabbits"),
    item(ANIMAL, "a", "goat", "goats"),
    item(ANIMAL, "a", "pig", "pigs"),
    item(ANIMAL, "a", "cow", "cows"),
    item(ANIMAL, "a", "donkey", "donkeys"),
    item(ANIMAL, "a", "snake", "snakes"),
    item(ANIMAL, "a", "mouse", "mice"),
    item(ANIMAL, "a", "duck", "ducks"),
    item(OBJECT, "a", "fridge", "fridges"),
    item(OBJECT, "a", "chair", "chairs"),
    item(OBJECT, "a", "microwave", "microwaves"),
    item(OBJECT, "a", "couch", "couches"),
    item(OBJECT, "an", "oven", "ovens"),
    item(OBJECT, "a", "car", "cars"),
    item(OBJECT, "a", "toaster", "toasters"),
    item(OBJECT, "a", "stove", "stoves"),
    item(OBJECT, "a", "table", "tables"),
    item(OBJECT, "a", "lamp", "lamps"),
    item(OBJECT, "a", "bed", "beds"),
];

const NUMBER_WORDS: [&str; 6] = ["", "", "two", "three", "four", "five"];

/// `(input, target)`: 1–8 items of the asked category, up to 3 distractor objects, counts 1–5 in words.
pub(super) fn generate(rng: &mut StdRng) -> (String, String) {
    let category = COUNTING_CATEGORIES[rng.random_range(0..COUNTING_CATEGORIES.len())];
    let of = |wanted: bool| -> Vec<&CountingItem> {
        COUNTING_ITEMS.iter().filter(|i| (i.category == category) == wanted).collect()
    };
    let (members, others) = (of(true), of(false));
    // At least two items in all, as in BBH.
    let distractors = if category == OBJECT { 0 } else { rng.random_range(0..=3) };
    let min_wanted = if distractors == 0 { 2 } else { 1 };
    let wanted = rng.random_range(min_wanted..=8.min(members.len()));
    let mut chosen: Vec<&CountingItem> = sample(rng, members.len(), wanted).into_iter().map(|i| members[i]).collect();
    let others_of_objects: Vec<&CountingItem> = others.into_iter().filter(|i| i.category == OBJECT).collect();
    chosen.extend(sample(rng, others_of_objects.len(), distractors).into_iter().map(|i| others_of_objects[i]));
    // Shuffle so distractors are not always last (Fisher–Yates).
    for i in (1..chosen.len()).rev() {
        chosen.swap(i, rng.random_range(0..=i));
    }

    let mut total = 0;
    let mut phrases = Vec::with_capacity(chosen.len());
    for item in chosen {
        let count = if rng.random_bool(0.75) { 1 } else { rng.random_range(2..=5) };
        if item.category == category {
            total += count;
        }
        phrases.push(if count == 1 {
            format!("{} {}", item.article, item.singular)
        } else {
            format!("{} {}", NUMBER_WORDS[count], item.plural)
        });
    }
    let list = match phrases.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{}, and {last}", rest.join(", ")),
        _ => phrases.concat(),
    };
    (format!("I have {list}. How many {category} do I have?"), total.to_string())
}
