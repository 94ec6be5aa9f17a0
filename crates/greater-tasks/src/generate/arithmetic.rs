//! Arithmetic like BBH `multistep_arithmetic_two`: `((a o b o c o d) O (e o f o g o h)) =`.

use rand::Rng;
use rand::rngs::StdRng;

const OPS: [char; 3] = ['+', '-', '*'];

/// `(input, target)`, e.g. `("((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =", "24")`.
pub(super) fn generate(rng: &mut StdRng) -> (String, String) {
    let (left_text, left) = group(rng);
    let (right_text, right) = group(rng);
    let op = OPS[rng.random_range(0..3)];
    let value = apply(left, op, right);
    (format!("(({left_text}) {op} ({right_text})) ="), value.to_string())
}

/// Four integers in −9..=9 joined by three operators, and its value with `*` before `+`/`-`.
fn group(rng: &mut StdRng) -> (String, i64) {
    let numbers: Vec<i64> = (0..4).map(|_| rng.random_range(-9..=9)).collect();
    let ops: Vec<char> = (0..3).map(|_| OPS[rng.random_range(0..3)]).collect();
    let mut text = numbers[0].to_string();
    for (op, n) in ops.iter().zip(&numbers[1..]) {
        text.push_str(&format!(" {op} {n}"));
    }
    // Sum of signed products: a `*` extends the current product, `+`/`-` close it.
    let mut total = 0;
    let mut product = numbers[0];
    let mut sign = 1;
    for (&op, &n) in ops.iter().zip(&numbers[1..]) {
        if op == '*' {
            product *= n;
        } else {
            total += sign * product;
            sign = if op == '+' { 1 } else { -1 };
            product = n;
        }
    }
    (text, total + sign * product)
}

fn apply(a: i64, op: char, b: i64) -> i64 {
    match op {
        '+' => a + b,
        '-' => a - b,
        _ => a * b,
    }
}
