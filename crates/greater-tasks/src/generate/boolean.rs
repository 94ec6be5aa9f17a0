//! Boolean expressions like BBH `boolean_expressions`: 8 tokens, then `is`.

use rand::Rng;
use rand::rngs::StdRng;

/// Tokens of the expression (without the final `is`), as in every BBH example.
const TOKENS: usize = 8;

/// One operand: `not`s in front of a constant or a parenthesised expression.
struct Term {
    nots: usize,
    atom: Atom,
}

enum Atom {
    Const(bool),
    Paren(Expr),
}

/// Terms joined by `and`/`or`; `ops[i]` joins `terms[i]` and `terms[i + 1]` (`true` = `and`).
struct Expr {
    terms: Vec<Term>,
    ands: Vec<bool>,
}

/// `(input, target)`, e.g. `("not ( True ) and ( True ) is", "False")`.
pub(super) fn generate(rng: &mut StdRng) -> (String, String) {
    loop {
        let expr = random_expr(rng, 0);
        let mut tokens = Vec::new();
        render(&expr, &mut tokens);
        if tokens.len() == TOKENS {
            let value = evaluate(&expr);
            tokens.push("is");
            return (tokens.join(" "), if value { "True" } else { "False" }.to_owned());
        }
    }
}

fn random_expr(rng: &mut StdRng, depth: usize) -> Expr {
    let count = [1, 1, 2, 2, 2, 3, 3][rng.random_range(0..7)];
    let terms: Vec<Term> = (0..count).map(|_| random_term(rng, depth)).collect();
    let ands = (1..count).map(|_| rng.random_bool(0.5)).collect();
    Expr { terms, ands }
}

fn random_term(rng: &mut StdRng, depth: usize) -> Term {
    let nots = [0, 0, 0, 0, 1, 1, 1, 2, 2, 3][rng.random_range(0..10)];
    let atom = if depth < 2 && rng.random_bool(0.3) {
        Atom::Paren(random_expr(rng, depth + 1))
    } else {
        Atom::Const(rng.random_bool(0.5))
    };
    Term { nots, atom }
}

fn render(expr: &Expr, out: &mut Vec<&str>) {
    for (i, term) in expr.terms.iter().enumerate() {
        if i > 0 {
            out.push(if expr.ands[i - 1] { "and" } else { "or" });
        }
        out.extend(std::iter::repeat_n("not", term.nots));
        match &term.atom {
            Atom::Const(value) => out.push(if *value { "True" } else { "False" }),
            Atom::Paren(inner) => {
                out.push("(");
                render(inner, out);
                out.push(")");
            }
        }
    }
}

/// Python precedence: `not` binds tightest, then `and`, then `or` (an `or` of `and`-groups).
fn evaluate(expr: &Expr) -> bool {
    let mut any = false;
    let mut group = term_value(&expr.terms[0]);
    for (term, &and) in expr.terms[1..].iter().zip(&expr.ands) {
        let value = term_value(term);
        if and {
            group &= value;
        } else {
            any |= group;
            group = value;
        }
    }
    any | group
}

fn term_value(term: &Term) -> bool {
    let atom = match &term.atom {
        Atom::Const(value) => *value,
        Atom::Paren(inner) => evaluate(inner),
    };
    atom ^ (term.nots % 2 == 1)
}
