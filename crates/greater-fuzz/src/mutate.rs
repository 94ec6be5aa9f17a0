//! Input mutation: a small deterministic RNG, byte-level mutations (flips, interesting integers,
//! splices, truncation, duplication) and structure-aware JSON mutations.

use serde_json::Value;

/// xorshift64*: deterministic, seedable, good enough for choosing mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Integers that break parsers: boundaries, powers of two, huge claims.
pub const INTERESTING: [u64; 20] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    32,
    255,
    256,
    65_535,
    65_536,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
    1 << 32,
    1_000_000_000_000,
    1 << 60,
    i64::MAX as u64,
    u64::MAX,
];

/// Applies 1 to 4 random byte-level mutations to `data`; `other` is a second seed for splicing.
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], max_len: usize) {
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, data, other);
    }
    data.truncate(max_len);
}

/// Bytes that matter to the parsers under test (JSON, Jinja, GSM8K answers, SentencePiece),
/// inserted whole.
const SYNTAX_TOKENS: [&[u8]; 18] = [
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\n",
    b"\0",
    b"\xff",
    b"\xe2\x96\x81",
    b"{{",
    b"}}",
    b"{%",
    b"%}",
    b"=",
    b"####",
];

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.below(10) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.next_u64() as u8;
        }
        2 => {
            // An interesting integer, little-endian, 1/2/4/8 bytes, often aligned.
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            if len >= width {
                let mut at = rng.below(len - width + 1);
                if rng.one_in(2) {
                    at -= at % width;
                }
                let v = *rng.pick(&INTERESTING);
                let v = if rng.one_in(4) { v.wrapping_sub(1) } else { v };
                data[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
        }
        3 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64));
            data.drain(at..at + n);
        }
        4 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            data.splice(at..at, bytes);
        }
        5 if len > 0 => {
            // Duplicate a chunk (repeated structures, runaway counts).
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(256));
            let chunk = data[at..at + n].to_vec();
            let to = rng.below(len + 1);
            data.splice(to..to, chunk);
        }
        6 if !other.is_empty() => {
            // Splice: our head, the other seed's tail.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..other.len().min(from + 4096)]);
        }
        7 if len > 0 => data.truncate(rng.below(len)),
        8 => {
            let at = rng.below(len + 1);
            let token = *rng.pick(&SYNTAX_TOKENS);
            data.splice(at..at, token.iter().copied());
        }
        _ if len > 1 => {
            let (a, b) = (rng.below(len), rng.below(len));
            data.swap(a, b);
        }
        _ => data.push(rng.next_u64() as u8),
    }
}

/// Mutates a JSON document at the value level: replaces, deletes, nests or repeats a random
/// node. Returns `None` when `text` is not JSON.
pub fn mutate_json(rng: &mut Rng, text: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(text).ok()?;
    for _ in 0..1 + rng.below(3) {
        let count = count_nodes(&value);
        let target = rng.below(count);
        let mut seen = 0;
        edit_node(rng, &mut value, target, &mut seen);
    }
    serde_json::to_vec(&value).ok()
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Walks to the `target`-th node (pre-order) and edits it; returns whether it was found.
fn edit_node(rng: &mut Rng, v: &mut Value, target: usize, seen: &mut usize) -> bool {
    if *seen == target {
        *v = replacement(rng, v);
        return true;
    }
    *seen += 1;
    match v {
        Value::Array(a) => {
            for item in a.iter_mut() {
                if edit_node(rng, item, target, seen) {
                    return true;
                }
            }
        }
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            for key in keys {
                if rng.one_in(64) {
                    o.remove(&key);
                    return true;
                }
                if let Some(item) = o.get_mut(&key)
                    && edit_node(rng, item, target, seen)
                {
                    return true;
                }
            }
        }
        _ => {}
    }
    false
}

fn replacement(rng: &mut Rng, old: &Value) -> Value {
    let n = *rng.pick(&INTERESTING);
    match rng.below(12) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => Value::from(n),
        3 => Value::from(-(n as i64).wrapping_abs()),
        4 => Value::from(f64::from_bits(rng.next_u64()) % 1e30),
        5 => Value::from(""),
        6 => Value::from("x".repeat(rng.below(300))),
        7 => Value::Array(vec![old.clone(); 1 + rng.below(8)]),
        8 => {
            let mut nested = old.clone();
            for _ in 0..rng.below(40) {
                nested = Value::Array(vec![nested]);
            }
            nested
        }
        9 => serde_json::json!({ "content": old.clone() }),
        10 => match old {
            Value::String(s) => Value::from(format!("{s}{s}")),
            Value::Array(a) if !a.is_empty() => Value::Array(a[..rng.below(a.len())].to_vec()),
            _ => Value::from(1e300),
        },
        _ => Value::from("<unk>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic() {
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        assert_eq!((0..5).map(|_| a.next_u64()).collect::<Vec<_>>(), (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
    }

    #[test]
    fn json_mutation_keeps_json() {
        let mut rng = Rng::new(1);
        let seed = br#"{"a": [1, 2, {"b": "c"}], "d": true}"#;
        for _ in 0..200 {
            let out = mutate_json(&mut rng, seed).unwrap();
            serde_json::from_slice::<Value>(&out).unwrap();
        }
    }
}
