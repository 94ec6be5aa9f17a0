//! Batched greedy generation over many prompts, sorted by length so that padding stays small.

use greater_models::arch::CausalLm;
use greater_models::engine::{self, EngineOptions, EngineStats, Finished, Flow, Job};
use greater_models::generate::{GenerateOptions, generate};

use crate::{Observer, OptError};

/// Generate greedily for every prompt, `batch_size` at a time, and return the new ids of each
/// (stop token removed), in input order. Rows finish independently; a batch is sorted by prompt
/// length first. The observer advances by one per finished prompt.
pub fn generate_all(
    model: &dyn CausalLm,
    prompts: &[Vec<u32>],
    max_new_tokens: usize,
    stop_ids: &[u32],
    batch_size: usize,
    observer: &dyn Observer,
) -> Result<Vec<Vec<u32>>, OptError> {
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| (prompts[i].len(), i));
    let mut out = vec![Vec::new(); prompts.len()];
    let opts = GenerateOptions { max_new_tokens, stop_ids: stop_ids.to_vec() };
    for chunk in order.chunks(batch_size.max(1)) {
        if observer.should_stop() {
            return Err(OptError::Invalid("stopped by the user".into()));
        }
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
        let gens = generate(model, &batch, &opts, |_, _| {})?;
        for (&i, g) in chunk.iter().zip(gens) {
            out[i] = g.ids;
        }
        observer.advance(chunk.len());
    }
    Ok(out)
}

/// One engine job per prompt, example `i`'s reasoning drafted from `drafts[i]` (when given).
pub fn reasoning_jobs(prompts: &[Vec<u32>], drafts: &[Vec<u32>]) -> Vec<Job> {
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| Job { prompt: p.clone(), draft: drafts.get(i).cloned().unwrap_or_default(), ..Job::default() })
        .collect()
}

/// Run `jobs` through the engine (continuously batched, drafted when `opts` verify drafts),
/// returning every finished job in input order and the engine's counts. The observer advances by
/// one per finished job; its stop request ends the run with the error `stopped` makes.
pub fn generate_with_engine(
    model: &dyn CausalLm,
    jobs: &[Job],
    opts: &EngineOptions,
    observer: &dyn Observer,
    stopped: &dyn Fn() -> OptError,
) -> Result<(Vec<Finished>, EngineStats), OptError> {
    let mut on_done = |_: usize, _: &Finished| {
        observer.advance(1);
        if observer.should_stop() { Flow::Stop } else { Flow::Continue }
    };
    let (out, stats) = engine::run(model, jobs, opts, &mut on_done)?;
    let done = out.into_iter().map(|f| f.ok_or_else(stopped)).collect::<Result<_, _>>()?;
    Ok((done, stats))
}
