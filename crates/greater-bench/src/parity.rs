//! `greater bench parity --model M`: the numbers two implementations (or two backends) of one
//! model must agree on, as one JSON file: the logits of a fixed id sequence, the GReaTer token
//! gradient over the whole vocabulary at one prompt position (greater-grad's own path, default
//! τ and w), its loss, and greedy tokens decoded through the KV cache.
//!
//! `--against FILE` compares with another such file (made by another backend's build, say wgpu
//! against flex) and prints the largest logit difference, the gradient's relative L2 error, top-3
//! agreement and whether the greedy tokens match. `scripts/peer_check.py --greater-logits FILE`
//! computes the same quantities in transformers.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::{Int, Tensor, TensorData};
use greater_grad::{GradExample, GradOptions, TrainSequence, token_gradients};
use greater_models::arch::CausalLm;
use greater_models::cache::KvCache;
use greater_models::generate::{GenerateOptions, generate};
use greater_models::layers::download;

use crate::{Common, Host};

/// `greater bench parity`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
The id sequence is split as the GReaTer layout: id 0 is the prefix, ids 1..3 the prompt
(the gradient is taken at its first token), 3..5 the chat suffix, 5..6 reasoning, 6..7 the
extractor and the last id the answer. The same layout is written into the file, so a peer can
recompute the loss: answer CE at temperature 0.2 plus 0.2 × the prompt's mean NLL.

Compare two backends: run the command with each build, then once more with `--against` the
other's file. Compare with transformers: scripts/peer_check.py DIR OUT --greater-logits FILE.")]
pub struct ParityArgs {
    /// Model: a registry name, a file, or a folder (e.g. one `greater export-random` wrote).
    #[arg(long)]
    pub model: String,
    /// The id sequence, comma-separated (at least 8 ids, all below the vocabulary size).
    #[arg(long, value_delimiter = ',', default_value = "2,17,300,5,9,61,7,33")]
    pub ids: Vec<u32>,
    /// Greedy tokens decoded after the ids through the KV cache.
    #[arg(long, default_value_t = 16)]
    pub decode: usize,
    /// Another parity file to compare with (its ids must be the same).
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// Largest |logit difference| accepted by `--against` (exit status 1 above it).
    #[arg(long, default_value_t = 1e-3)]
    pub tolerance: f32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// The numbers of one model on one backend, `parity-<backend>.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Parity {
    /// burn backend that computed them.
    pub backend: String,
    /// The model as named on the command line.
    pub model: String,
    /// The input ids.
    pub ids: Vec<u32>,
    /// `[start, stop)` of the prompt (the control) and of the answer in `ids`.
    pub control: [usize; 2],
    /// `[start, stop)` of the answer.
    pub answer: [usize; 2],
    /// Prompt position (within the control) of the gradient.
    pub position: usize,
    /// τ and w of the loss.
    pub answer_temperature: f32,
    /// Weight of the prompt NLL.
    pub control_weight: f32,
    /// Logits, `[ids.len() · vocab]`, row-major.
    pub logits: Vec<f32>,
    /// The GReaTer loss (answer CE at τ + w · prompt NLL).
    pub loss: f32,
    /// Gradient of the loss with respect to the one-hot at `position`, one value per vocabulary id.
    pub grad: Vec<f32>,
    /// Greedy tokens after `ids`, decoded through the KV cache.
    pub generated: Vec<u32>,
}

/// How two [`Parity`] files differ.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Agreement {
    /// Largest |logit difference|.
    pub max_abs_logit_diff: f32,
    /// ‖g₁ − g₂‖ / ‖g₂‖.
    pub grad_rel_l2: f32,
    /// Share of positions whose top-3 logits are the same ids in the same order.
    pub top3_agreement: f32,
    /// |loss₁ − loss₂|.
    pub loss_diff: f32,
    /// The greedy tokens are identical.
    pub same_generation: bool,
}

/// Run `greater bench parity`.
pub fn run(args: &ParityArgs, host: &dyn Host) -> Result<()> {
    let loaded = host.load_model(&args.model)?;
    let p = measure(&loaded.model, &args.model, &args.ids, args.decode)?;
    // Compact: the logits of a real vocabulary run to millions of numbers.
    let path = args.common.out.join(format!("parity-{}.json", p.backend));
    let text = serde_json::to_string(&p).context("serialising the parity numbers")?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    if let Some(other) = &args.against {
        let text = std::fs::read_to_string(other).with_context(|| format!("reading {}", other.display()))?;
        let theirs: Parity = serde_json::from_str(&text).with_context(|| format!("reading {}", other.display()))?;
        let a = compare(&p, &theirs).with_context(|| format!("comparing with {}", other.display()))?;
        println!("{}", serde_json::to_string_pretty(&a)?);
        // A NaN difference fails too.
        if a.max_abs_logit_diff.is_nan() || a.max_abs_logit_diff > args.tolerance {
            bail!(
                "{} and {} differ by {:.3e} in a logit, over the tolerance {:.1e}",
                p.backend,
                theirs.backend,
                a.max_abs_logit_diff,
                args.tolerance
            );
        }
    }
    Ok(())
}

/// The parity numbers of `model` on `ids` (at least 8, laid out as the `--help` says).
pub fn measure(model: &dyn CausalLm, name: &str, ids: &[u32], decode: usize) -> Result<Parity> {
    let vocab = model.config().vocab_size;
    if ids.len() < 8 {
        bail!("--ids needs at least 8 ids for the GReaTer layout, got {}", ids.len());
    }
    if let Some(bad) = ids.iter().find(|&&t| t as usize >= vocab) {
        bail!("id {bad} is outside the model's vocabulary of {vocab}");
    }
    let n = ids.len();
    let seq =
        TrainSequence::join([&ids[..1], &ids[1..3], &ids[3..5], &ids[5..n - 2], &ids[n - 2..n - 1], &ids[n - 1..]]);
    let opts = GradOptions::default();
    let candidates: Vec<u32> = (0..vocab as u32).collect();
    let g = token_gradients(model, &[GradExample { seq: &seq, position: 0 }], &candidates, &opts)?;
    let ex = &g.examples[0];
    let greedy =
        generate(model, &[ids.to_vec()], &GenerateOptions { max_new_tokens: decode, stop_ids: Vec::new() }, |_, _| {})?;
    Ok(Parity {
        backend: greater_models::device::backend_name().to_string(),
        model: name.to_string(),
        ids: ids.to_vec(),
        control: [1, 3],
        answer: [n - 1, n],
        position: 0,
        answer_temperature: opts.answer_temperature,
        control_weight: opts.control_weight,
        logits: logits(model, ids),
        loss: ex.loss_total,
        grad: ex.grad_total.clone(),
        generated: greedy[0].ids.clone(),
    })
}

/// Logits of every position of `ids`, row-major `[len · vocab]`.
fn logits(model: &dyn CausalLm, ids: &[u32]) -> Vec<f32> {
    let data = TensorData::new(ids.iter().map(|&t| t as i64).collect::<Vec<_>>(), [1, ids.len()]);
    let t = Tensor::<2, Int>::from_data(data, model.device());
    let hidden = model.forward_hidden(model.embed(t), None, &mut KvCache::uncached(1));
    download(model.lm_head(hidden).reshape([ids.len() * model.config().vocab_size]))
}

/// How `ours` differs from `theirs` (same ids and vocabulary, or an error).
pub fn compare(ours: &Parity, theirs: &Parity) -> Result<Agreement> {
    if ours.ids != theirs.ids || ours.logits.len() != theirs.logits.len() || ours.grad.len() != theirs.grad.len() {
        bail!("the two files are of different ids or vocabularies");
    }
    let vocab = ours.grad.len();
    let max_abs_logit_diff = ours.logits.iter().zip(&theirs.logits).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    let diff = norm(&mut ours.grad.iter().zip(&theirs.grad).map(|(a, b)| a - b));
    let grad_rel_l2 = (diff / norm(&mut theirs.grad.iter().copied()).max(f64::MIN_POSITIVE)) as f32;
    let rows = ours.ids.len();
    let same_top = (0..rows)
        .filter(|&r| top3(&ours.logits[r * vocab..(r + 1) * vocab]) == top3(&theirs.logits[r * vocab..(r + 1) * vocab]))
        .count();
    Ok(Agreement {
        max_abs_logit_diff,
        grad_rel_l2,
        top3_agreement: same_top as f32 / rows as f32,
        loss_diff: (ours.loss - theirs.loss).abs(),
        same_generation: ours.generated == theirs.generated,
    })
}

/// The ids of the three largest values, largest first (lower id first on ties).
fn top3(row: &[f32]) -> [usize; 3] {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    [idx[0], idx[1], idx[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parity(logits: Vec<f32>, grad: Vec<f32>) -> Parity {
        Parity {
            backend: "flex".into(),
            model: "m".into(),
            ids: vec![0, 1],
            control: [1, 3],
            answer: [7, 8],
            position: 0,
            answer_temperature: 0.2,
            control_weight: 0.2,
            logits,
            loss: 1.0,
            grad,
            generated: vec![1, 2],
        }
    }

    #[test]
    fn compare_measures_each_difference() {
        let a = parity(vec![0.0, 1.0, 2.0, 3.0, 3.0, 2.0, 1.0, 0.0], vec![3.0, 4.0, 0.0, 0.0]);
        let mut b = a.clone();
        assert_eq!(compare(&a, &b).unwrap().max_abs_logit_diff, 0.0);
        b.logits[0] = 1.5; // row 0's top-3 becomes [3, 2, 0]: one of two rows disagrees
        b.grad = vec![3.0, 4.0, 0.0, 5.0];
        b.generated = vec![1, 3];
        let d = compare(&b, &a).unwrap();
        assert_eq!(d.max_abs_logit_diff, 1.5);
        assert!((d.grad_rel_l2 - 1.0).abs() < 1e-6, "{d:?}");
        assert_eq!(d.top3_agreement, 0.5);
        assert!(!d.same_generation);
        b.ids = vec![0, 2];
        assert!(compare(&a, &b).is_err());
    }

    #[test]
    fn top3_breaks_ties_by_the_lower_id() {
        assert_eq!(top3(&[1.0, 5.0, 5.0, 0.0, 2.0]), [1, 2, 4]);
    }
}
