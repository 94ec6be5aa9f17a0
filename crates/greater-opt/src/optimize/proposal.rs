//! Candidate proposal (SPEC B.1.2 C.2): the model's own top-k next tokens at the prompt position,
//! intersected over random subsets of examples, united, with k growing until enough remain.

use std::collections::BTreeSet;

use burn::tensor::Tensor;
use greater_models::arch::CausalLm;
use greater_models::cache::KvCache;
use greater_models::generate::try_prefill;
use greater_models::layers::download;
use greater_models::tokenizer::Tokenizer;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

use super::config::OptimizeConfig;
use crate::OptError;

/// Which ids may never be proposed: special tokens always; unless `allow_non_ascii`, every token
/// whose text is not letters and spaces only (`allowed_punctuation` excepted: `"."`, `","` and
/// `" "` by default), as the official filter does. Computed once per run.
pub fn banned_tokens(tok: &Tokenizer, cfg: &OptimizeConfig) -> Result<Vec<bool>, OptError> {
    let v = tok.vocab_size();
    let mut banned = vec![false; v];
    for (id, b) in banned.iter_mut().enumerate() {
        let id = id as u32;
        if tok.is_special(id) || [tok.bos_id(), tok.eos_id(), tok.pad_id(), tok.unk_id()].contains(&Some(id)) {
            *b = true;
            continue;
        }
        if cfg.allow_non_ascii {
            continue;
        }
        let text = tok.decode(&[id], false)?;
        let allowed = cfg.allowed_punctuation.contains(&text)
            || (!text.is_empty() && text.chars().all(|c| c.is_ascii_alphabetic() || c == ' '));
        *b = !allowed;
    }
    Ok(banned)
}

/// The next-token log-probabilities at the prompt position for every example: one batched prefix
/// forward (the prefix up to the position, not the whole sequence). Returns `[n][vocab]` rows.
pub fn position_logits(
    model: &dyn CausalLm,
    prefixes: &[Vec<u32>],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>, OptError> {
    let mut out = vec![Vec::new(); prefixes.len()];
    let mut order: Vec<usize> = (0..prefixes.len()).collect();
    order.sort_by_key(|&i| (prefixes[i].len(), i));
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| prefixes[i].clone()).collect();
        let mut cache = KvCache::uncached(batch.len());
        let logits: Tensor<2> = try_prefill(model, &batch, &mut cache)?;
        let v = logits.dims()[1];
        let flat = download(logits);
        for (k, &i) in chunk.iter().enumerate() {
            out[i] = flat[k * v..(k + 1) * v].to_vec();
        }
    }
    Ok(out)
}

/// Propose candidates from per-example logits at the position.
///
/// `previous` (the prompt token before the position, if any) is banned too. The returned list is
/// sorted by id, with `current` appended when absent, so its order is reproducible.
pub fn propose(
    logits: &[Vec<f32>],
    banned: &[bool],
    previous: Option<u32>,
    current: u32,
    cfg: &OptimizeConfig,
    rng_seed: u64,
) -> Vec<u32> {
    let n = logits.len();
    let vocab = banned.len();
    let allowed = |t: usize| !banned[t] && Some(t as u32) != previous;
    // Each example's tokens, best first, allowed ones only.
    let ranked: Vec<Vec<u32>> = logits
        .iter()
        .map(|row| {
            let mut ids: Vec<u32> = (0..row.len().min(vocab)).filter(|&t| allowed(t)).map(|t| t as u32).collect();
            ids.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
            ids
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(rng_seed);
    let mut k = cfg.top_k;
    let max_k = ranked.iter().map(Vec::len).max().unwrap_or(0);
    let mut cand: BTreeSet<u32>;
    loop {
        let tops: Vec<BTreeSet<u32>> = ranked.iter().map(|r| r.iter().take(k).copied().collect()).collect();
        cand = BTreeSet::new();
        for _ in 0..cfg.top_q {
            let m = cfg.intersection_size.min(n);
            let chosen = sample(&mut rng, n, m);
            let mut inter: Option<BTreeSet<u32>> = None;
            for i in chosen.iter() {
                inter = Some(match inter {
                    None => tops[i].clone(),
                    Some(s) => s.intersection(&tops[i]).copied().collect(),
                });
            }
            cand.extend(inter.unwrap_or_default());
        }
        if cand.len() >= cfg.min_candidates || k >= max_k || n == 0 {
            break;
        }
        k += cfg.k_growth.max(1);
    }
    let mut out: Vec<u32> = cand.into_iter().collect();
    if !out.contains(&current) {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(top_k: usize, min: usize) -> OptimizeConfig {
        OptimizeConfig { top_k, top_q: 3, intersection_size: 2, min_candidates: min, k_growth: 1, ..Default::default() }
    }

    #[test]
    fn intersections_grow_k_until_enough_and_add_the_current_token() {
        // Two examples over 6 tokens; token 5 is banned, token 1 is the previous prompt token.
        let logits = vec![vec![6.0, 5.0, 4.0, 3.0, 2.0, 9.0], vec![1.0, 5.0, 2.0, 4.0, 6.0, 9.0]];
        let banned = [false, false, false, false, false, true];
        // k = 1: tops {0} and {4} never intersect; k grows until the common tokens appear.
        let got = propose(&logits, &banned, Some(1), 2, &cfg(1, 2), 7);
        // Ranked: ex0 [0,2,3,4], ex1 [4,3,2,0]. At k = 2: {0,2} ∩ {4,3} = ∅; k = 3: {0,2,3} ∩ {4,3,2} = {2,3}.
        assert_eq!(got, [2, 3]);
        let got = propose(&logits, &banned, Some(1), 4, &cfg(3, 1), 7);
        assert_eq!(got, [2, 3, 4]);
    }

    #[test]
    fn proposal_is_reproducible_for_a_seed() {
        let logits: Vec<Vec<f32>> = (0..8).map(|i| (0..30).map(|t| ((t * 7 + i * 3) % 11) as f32).collect()).collect();
        let banned = vec![false; 30];
        let a = propose(&logits, &banned, None, 0, &OptimizeConfig::default(), 42);
        let b = propose(&logits, &banned, None, 0, &OptimizeConfig::default(), 42);
        assert_eq!(a, b);
        assert!(a.len() >= 6);
    }

    fn one_draw(top_k: usize, k_growth: usize) -> OptimizeConfig {
        OptimizeConfig { top_k, top_q: 1, intersection_size: 2, min_candidates: 1, k_growth, ..Default::default() }
    }

    #[test]
    fn each_example_ranks_its_tokens_best_first_ties_by_lower_id() {
        // Tops at k = 2: {0, 1} and {0, 2} meet in {0}; ascending order would give {3}.
        let logits = vec![vec![9.0, 8.0, 1.0, 0.0], vec![9.0, 1.0, 8.0, 0.0]];
        assert_eq!(propose(&logits, &[false; 4], None, 3, &one_draw(2, 1), 0), [0, 3]);
        // Three equal logits: the lower ids come first, so the top 2 are {0, 1}.
        let ties = vec![vec![5.0, 5.0, 5.0, 0.0], vec![5.0, 5.0, 5.0, 0.0]];
        assert_eq!(propose(&ties, &[false; 4], None, 3, &one_draw(2, 1), 0), [0, 1, 3]);
    }

    #[test]
    fn k_grows_by_k_growth() {
        // Ranked: ex0 [0,1,2,3,4], ex1 [1,0,2,4,3]. k = 1 meets nowhere; k = 2 gives {0, 1},
        // k = 3 gives {0, 1, 2}: growth 1 stops at the first, growth 2 jumps to the second.
        let logits = vec![vec![5.0, 4.0, 3.0, 2.0, 1.0], vec![4.0, 5.0, 3.0, 1.0, 2.0]];
        assert_eq!(propose(&logits, &[false; 5], None, 0, &one_draw(1, 1), 0), [0, 1]);
        assert_eq!(propose(&logits, &[false; 5], None, 0, &one_draw(1, 2), 0), [0, 1, 2]);
    }

    #[test]
    fn candidates_unite_the_intersections_of_every_draw() {
        // Six examples, example i's best token is i. Draws of one example each: the candidates
        // are exactly the examples drawn over the top_q draws, in the seeded order.
        let n = 6;
        let logits: Vec<Vec<f32>> = (0..n).map(|i| (0..n).map(|t| if t == i { 1.0 } else { 0.0 }).collect()).collect();
        let cfg = OptimizeConfig { top_k: 1, top_q: 4, intersection_size: 1, min_candidates: 1, ..Default::default() };
        let seed = 11;
        let mut rng = StdRng::seed_from_u64(seed);
        let drawn: BTreeSet<u32> = (0..cfg.top_q).map(|_| sample(&mut rng, n, 1).index(0) as u32).collect();
        assert!(drawn.len() > 1, "the seed should draw several examples");
        let current = (0..n as u32).find(|t| !drawn.contains(t)).expect("four draws leave a token undrawn");
        let mut expected: Vec<u32> = drawn.into_iter().collect();
        expected.push(current);
        assert_eq!(propose(&logits, &vec![false; n], None, current, &cfg, seed), expected);
    }

    #[test]
    fn the_vocabulary_filter_keeps_letters_spaces_and_the_listed_punctuation() {
        let tok = greater_models::testing::tiny_tokenizer().unwrap();
        let id = |text: &str| tok.encode(text, false).unwrap()[0] as usize;
        let banned = banned_tokens(&tok, &OptimizeConfig::default()).unwrap();
        for ok in ["a", "Z", ".", ",", " "] {
            assert!(!banned[id(ok)], "{ok:?} must be allowed");
        }
        for bad in ["5", "_", "'", "!", "\n"] {
            assert!(banned[id(bad)], "{bad:?} must be banned");
        }
        // Special tokens (EOS 256, ChatML 257 and 258, pad 259) are banned, even with
        // non-ASCII allowed, which lets everything else through.
        let open = banned_tokens(&tok, &OptimizeConfig { allow_non_ascii: true, ..Default::default() }).unwrap();
        for special in 256..260 {
            assert!(banned[special] && open[special], "special id {special}");
        }
        assert!(!open[id("5")] && !open[id("_")]);
    }
}
