//! The generation engine returns exactly what plain greedy decoding returns, whatever the draft,
//! the batch size or the batching mode; and its one-pass scores equal a full forward's.

use greater_models::arch::CausalLm;
use greater_models::cache::KvCache;
use greater_models::config::Family;
use greater_models::engine::{DraftOptions, EngineOptions, EngineStats, Finished, Flow, Job, prefill_prefixes, run};
use greater_models::generate::{GenerateOptions, Generation, generate};
use greater_models::layers::download;
use greater_models::testing::tiny_loaded;

const NEW: usize = 24;

fn prompts() -> Vec<Vec<u32>> {
    let texts = ["not ( True ) and", "Sort: pear apple fig", "Q: 3 + 4 * 2 =", "ab", "The quick brown fox jumps"];
    texts.iter().map(|t| t.bytes().map(u32::from).collect()).collect()
}

/// Plain greedy output, and a stop id that ends some rows early (the commonest generated token).
fn plain(model: &dyn CausalLm, prompts: &[Vec<u32>]) -> (Vec<Generation>, Vec<u32>) {
    let free = generate(model, prompts, &GenerateOptions { max_new_tokens: NEW, stop_ids: vec![] }, |_, _| {}).unwrap();
    let mut counts = std::collections::HashMap::new();
    for g in &free {
        for &t in &g.ids[2..] {
            *counts.entry(t).or_insert(0) += 1;
        }
    }
    let stop = counts.into_iter().max_by_key(|&(t, c)| (c, std::cmp::Reverse(t))).unwrap().0;
    let opts = GenerateOptions { max_new_tokens: NEW, stop_ids: vec![stop] };
    (generate(model, prompts, &opts, |_, _| {}).unwrap(), vec![stop])
}

fn options(stop: &[u32], batch: usize, draft: Option<usize>, continuous: bool) -> EngineOptions {
    EngineOptions {
        max_new_tokens: NEW,
        stop_ids: stop.to_vec(),
        batch_size: batch,
        draft: draft.map(|chunk| DraftOptions { chunk, ngram: 2 }),
        continuous,
        tail_temperature: 1.0,
        answer_tokens: 0,
        labels: Vec::new(),
    }
}

fn engine(model: &dyn CausalLm, jobs: &[Job], opts: &EngineOptions) -> (Vec<Finished>, EngineStats) {
    let (out, stats) = run(model, jobs, opts, &mut |_, _| Flow::Continue).unwrap();
    (out.into_iter().map(|f| f.expect("every job finishes")).collect(), stats)
}

fn jobs(prompts: &[Vec<u32>], drafts: &[Vec<u32>]) -> Vec<Job> {
    prompts.iter().zip(drafts).map(|(p, d)| Job { prompt: p.clone(), draft: d.clone(), ..Job::default() }).collect()
}

fn assert_same(got: &[Finished], want: &[Generation], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!((&g.ids, g.stop), (&w.ids, w.stop), "{what}: job {i}");
    }
}

#[test]
fn every_draft_and_batching_mode_gives_the_plain_greedy_ids() {
    for family in [Family::Llama, Family::Gemma3] {
        let m = tiny_loaded(family, 11).unwrap();
        let ps = prompts();
        let (want, stop) = plain(&m.model, &ps);
        assert!(want.iter().any(|g| g.stop.is_some()) && want.iter().any(|g| g.stop.is_none()), "some rows stop early");
        let perfect: Vec<Vec<u32>> = want.iter().map(|g| g.ids.clone()).collect();
        let wrong: Vec<Vec<u32>> = want.iter().map(|g| g.ids.iter().map(|&t| (t + 7) % 200).collect()).collect();
        // A chain that differs at token 3 and has two extra tokens there: lost, then found again.
        let diverging: Vec<Vec<u32>> = perfect
            .iter()
            .map(|ids| {
                let mut d = ids.clone();
                if d.len() > 4 {
                    d.splice(3..4, [1, 2, 3]);
                }
                d
            })
            .collect();
        let empty = vec![Vec::new(); ps.len()];
        for (name, drafts) in [("perfect", &perfect), ("wrong", &wrong), ("diverging", &diverging), ("empty", &empty)] {
            for batch in [1, 2, 5] {
                for continuous in [false, true] {
                    for chunk in [None, Some(1), Some(4)] {
                        let (got, _) = engine(&m.model, &jobs(&ps, drafts), &options(&stop, batch, chunk, continuous));
                        let what =
                            format!("{family:?} {name} draft, batch {batch}, continuous {continuous}, chunk {chunk:?}");
                        assert_same(&got, &want, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn drafts_are_accepted_when_right_and_cost_fewer_forwards() {
    let m = tiny_loaded(Family::Llama, 11).unwrap();
    let ps = prompts();
    let (want, stop) = plain(&m.model, &ps);
    let perfect: Vec<Vec<u32>> = want.iter().map(|g| g.ids.clone()).collect();
    let (_, plain_stats) = engine(&m.model, &jobs(&ps, &perfect), &options(&stop, 5, None, true));
    let (_, fast) = engine(&m.model, &jobs(&ps, &perfect), &options(&stop, 5, Some(8), true));
    assert_eq!(fast.accepted, fast.drafted, "a perfect draft is accepted whole: {fast:?}");
    assert!(fast.drafted > 0);
    // At least 2.5× fewer forwards: the width rule starts each row from a 0.8 hit-rate prior, so
    // its first chunks (2 tokens at the measured fixed cost) are narrower than the 8 tokens a
    // perfect draft would allow.
    assert!(fast.forwards * 5 <= plain_stats.forwards * 2, "{fast:?} against {plain_stats:?}");
    assert_eq!(fast.generated, plain_stats.generated);
    // Every fifth token wrong: proposed, partly rejected, and the output is still the plain one.
    let spoiled: Vec<Vec<u32>> = perfect
        .iter()
        .map(|ids| ids.iter().enumerate().map(|(i, &t)| if i % 5 == 4 { (t + 7) % 200 } else { t }).collect())
        .collect();
    let (got, bad) = engine(&m.model, &jobs(&ps, &spoiled), &options(&stop, 5, Some(8), true));
    assert!(bad.accepted < bad.drafted && bad.accepted > 0, "{bad:?}");
    assert_same(&got, &want, "spoiled draft");
}

/// −log p and argmax at every position of `seq` from one uncached forward.
fn full_forward(model: &dyn CausalLm, seq: &[u32], t: f32) -> (Vec<f32>, Vec<u32>) {
    use burn::tensor::{Int, Tensor, TensorData};
    let v = model.config().vocab_size;
    let ids = Tensor::<2, Int>::from_data(
        TensorData::new(seq.iter().map(|&x| x as i64).collect(), [1, seq.len()]),
        model.device(),
    );
    let logits = download(model.forward_embeds(model.embed(ids), None, &mut KvCache::uncached(1)));
    let mut nll = Vec::new();
    let mut arg = Vec::new();
    for (p, row) in logits.chunks(v).enumerate().take(seq.len() - 1) {
        let target = seq[p + 1] as usize;
        let max = row.iter().map(|&x| f64::from(x / t)).fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|&x| (f64::from(x / t) - max).exp()).sum::<f64>().ln();
        nll.push((lse - f64::from(row[target] / t)) as f32);
        arg.push(greater_models::generate::argmax(row));
    }
    (nll, arg)
}

#[test]
fn one_pass_scores_equal_a_full_forward() {
    for family in [Family::Llama, Family::Gemma3] {
        let m = tiny_loaded(family, 5).unwrap();
        let ps = prompts();
        let (want, stop) = plain(&m.model, &ps);
        let tail: Vec<u32> = " so the answer is 42".bytes().map(u32::from).collect();
        let perfect: Vec<Vec<u32>> = want.iter().map(|g| g.ids.clone()).collect();
        let js: Vec<Job> = ps
            .iter()
            .zip(&perfect)
            .map(|(p, d)| Job {
                prompt: p.clone(),
                draft: d.clone(),
                scored: 1..p.len(),
                tail: tail.clone(),
                prefix: None,
                group: 0,
            })
            .collect();
        // The same jobs with their first tokens (all but the last two) from a cached prefix.
        let heads: Vec<Vec<u32>> = ps.iter().map(|p| p[..p.len().saturating_sub(2).max(1)].to_vec()).collect();
        let prefixes = prefill_prefixes(&m.model, &heads, &vec![1; heads.len()], 2);
        let with_prefix: Vec<Job> = js
            .iter()
            .zip(prefixes)
            .map(|(j, p)| Job { prefix: (j.prompt.len() > p.ids.len()).then_some(p), ..j.clone() })
            .collect();
        let js = if with_prefix.iter().all(|j| j.prefix.is_some()) {
            vec![js, with_prefix]
        } else {
            panic!("a prompt too short")
        };
        for (chunk, js) in [None, Some(4)].into_iter().flat_map(|c| js.iter().map(move |j| (c, j))) {
            let mut opts = options(&stop, 2, chunk, true);
            opts.tail_temperature = 0.7;
            let (got, _) = engine(&m.model, js, &opts);
            for (i, g) in got.iter().enumerate() {
                assert_eq!(g.ids, want[i].ids, "{family:?} job {i}: greedy ids");
                let seq = [&ps[i][..], &g.ids, &tail].concat();
                let (nll1, _) = full_forward(&m.model, &seq, 1.0);
                let (nll_t, arg) = full_forward(&m.model, &seq, 0.7);
                let p = ps[i].len();
                for (k, &x) in g.prompt_nll.iter().enumerate() {
                    assert!(
                        (x - nll1[k]).abs() <= 1e-5,
                        "{family:?} job {i} prompt token {}: {x} vs {}",
                        k + 1,
                        nll1[k]
                    );
                }
                let from = p + g.ids.len() - 1;
                for k in 0..tail.len() {
                    assert!((g.tail_nll[k] - nll_t[from + k]).abs() <= 1e-5, "{family:?} job {i} tail {k}");
                    assert_eq!(g.tail_argmax[k], arg[from + k], "{family:?} job {i} tail argmax {k}");
                }
            }
        }
    }
}

#[test]
fn answers_and_labels_after_the_tail_equal_a_fresh_prefill() {
    for family in [Family::Llama, Family::Gemma3] {
        let m = tiny_loaded(family, 5).unwrap();
        let ps = prompts();
        let (want, stop) = plain(&m.model, &ps);
        let tail: Vec<u32> = " so the answer is".bytes().map(u32::from).collect();
        let labels: Vec<Vec<u32>> = ["4", "42", "xyz"].iter().map(|l| l.bytes().map(u32::from).collect()).collect();
        let perfect: Vec<Vec<u32>> = want.iter().map(|g| g.ids.clone()).collect();
        let js: Vec<Job> = jobs(&ps, &perfect).into_iter().map(|j| Job { tail: tail.clone(), ..j }).collect();
        for (batch, continuous, chunk) in [(1, true, None), (2, true, Some(4)), (5, false, None), (3, false, Some(2))] {
            let opts =
                EngineOptions { answer_tokens: 6, labels: labels.clone(), ..options(&stop, batch, chunk, continuous) };
            let (got, stats) = engine(&m.model, &js, &opts);
            assert_eq!(stats.jobs, ps.len());
            let what = format!("{family:?} batch {batch}, continuous {continuous}, chunk {chunk:?}");
            assert_same(&got, &want, &what);
            for (i, g) in got.iter().enumerate() {
                let context = [&ps[i][..], &g.ids, &tail].concat();
                let gopts = GenerateOptions { max_new_tokens: 6, stop_ids: stop.clone() };
                let fresh = generate(&m.model, std::slice::from_ref(&context), &gopts, |_, _| {}).unwrap();
                assert_eq!(g.answer, fresh[0].ids, "{what}: job {i} answer");
                assert_eq!(g.label_logprob.len(), labels.len());
                for (l, lab) in labels.iter().enumerate() {
                    let (nll, _) = full_forward(&m.model, &[&context[..], lab].concat(), 1.0);
                    let want_lp: f64 = -nll[context.len() - 1..].iter().map(|&x| f64::from(x)).sum::<f64>();
                    let got_lp = g.label_logprob[l];
                    assert!((got_lp - want_lp).abs() <= 1e-4, "{what}: job {i} label {l}: {got_lp} vs {want_lp}");
                }
            }
        }
    }
}

#[test]
fn a_stop_from_the_caller_ends_the_run() {
    let m = tiny_loaded(Family::Llama, 11).unwrap();
    let ps = prompts();
    let js = jobs(&ps, &vec![Vec::new(); ps.len()]);
    let mut seen = 0;
    let (out, stats) = run(&m.model, &js, &options(&[], 1, None, true), &mut |_, _| {
        seen += 1;
        if seen == 2 { Flow::Stop } else { Flow::Continue }
    })
    .unwrap();
    assert_eq!(out.iter().filter(|o| o.is_some()).count(), 2);
    assert_eq!(stats.jobs, 2);
}

/// Last-position logits after feeding `ids` (`[batch][new]`) through `cache`.
fn feed(model: &dyn CausalLm, cache: &mut KvCache, ids: &[Vec<u32>]) -> Vec<f32> {
    use burn::tensor::{Int, Tensor, TensorData};
    let (b, s) = (ids.len(), ids[0].len());
    let flat: Vec<i64> = ids.iter().flatten().map(|&t| t as i64).collect();
    let x = Tensor::<2, Int>::from_data(TensorData::new(flat, [b, s]), model.device());
    let h = model.forward_hidden(model.embed(x), None, cache);
    let last = h.clone().slice([0..b, s - 1..s, 0..model.config().hidden_size]);
    download(model.lm_head(last))
}

fn close(a: &[f32], b: &[f32], what: &str) {
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "{what}: logits differ by {worst}");
}

#[test]
fn rejected_slots_compaction_and_stacking_leave_the_logits_unchanged() {
    let m = tiny_loaded(Family::Gemma3, 2).unwrap();
    let (a, b) = (prompts()[0].clone(), prompts()[4].clone());
    // Reference: each prompt alone, then one more token.
    let mut ra = KvCache::new(1, 64);
    feed(&m.model, &mut ra, std::slice::from_ref(&a));
    let want_a = feed(&m.model, &mut ra, &[vec![42]]);
    let mut rb = KvCache::new(1, 64);
    feed(&m.model, &mut rb, std::slice::from_ref(&b));
    let want_b = feed(&m.model, &mut rb, &[vec![42]]);
    // Prompt a, then three tokens that are rejected: holes the next token must not see.
    let mut holes = KvCache::new(1, 64);
    feed(&m.model, &mut holes, std::slice::from_ref(&a));
    feed(&m.model, &mut holes, &[vec![7, 8, 9]]);
    holes.reject_from(0, a.len());
    assert_eq!(holes.holes(), 3);
    let mut compacted = holes.clone();
    close(&feed(&m.model, &mut holes, &[vec![42]]), &want_a, "with holes");
    compacted.compact(32);
    assert_eq!((compacted.len(), compacted.holes(), compacted.capacity()), (a.len(), 0, 32));
    close(&feed(&m.model, &mut compacted, &[vec![42]]), &want_a, "compacted");
    // Two caches of different lengths stacked into one batch.
    let mut ca = KvCache::new(1, 64);
    feed(&m.model, &mut ca, std::slice::from_ref(&a));
    let mut cb = KvCache::new(1, 64);
    feed(&m.model, &mut cb, std::slice::from_ref(&b));
    ca.append_rows(cb, 64);
    assert_eq!((ca.batch(), ca.len(), ca.longest_row()), (2, a.len().max(b.len()), a.len().max(b.len())));
    let v = m.model.config().vocab_size;
    let both = feed(&m.model, &mut ca, &[vec![42], vec![42]]);
    close(&both[..v], &want_a, "stacked row a");
    close(&both[v..], &want_b, "stacked row b");
}

#[test]
fn a_dropped_group_leaves_the_other_groups_whole() {
    let m = tiny_loaded(Family::Llama, 11).unwrap();
    let ps = prompts();
    let (want, stop) = plain(&m.model, &ps);
    let mut js = jobs(&ps, &vec![Vec::new(); ps.len()]);
    js.extend(jobs(&ps, &vec![Vec::new(); ps.len()]).into_iter().map(|j| Job { group: 1, ..j }));
    let (out, _) = run(&m.model, &js, &options(&stop, 2, None, true), &mut |job, _| {
        if job >= ps.len() { Flow::DropGroup(1) } else { Flow::Continue }
    })
    .unwrap();
    let (first, second) = out.split_at(ps.len());
    for (g, w) in first.iter().zip(&want) {
        assert_eq!(g.as_ref().map(|g| &g.ids), Some(&w.ids));
    }
    assert!(second.iter().filter(|o| o.is_some()).count() < ps.len(), "group 1 ran to the end");
}
