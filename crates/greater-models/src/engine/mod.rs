//! Greedy generation for many jobs at once, with the accelerations selection needs and not one
//! changed token:
//!
//! - **one pass**: a job's prompt log-probabilities come from the prefill that generation runs
//!   anyway, and a teacher-forced tail (extractor + answer) is fed through the job's own cache
//!   after its reasoning, so scoring needs no second forward over the whole sequence;
//! - **drafted verification**: a job may bring a draft (another chain of reasoning for the same
//!   example); up to `chunk` draft tokens are checked in one forward, the longest prefix equal to
//!   the greedy argmax is kept together with the model's first own token, the rest becomes holes
//!   in the cache ([`KvCache::reject_from`]), and a lost draft re-synchronises by n-gram lookup
//!   ([`Drafter`]). Every kept token is the argmax of the model at its position;
//! - **continuous batching**: a finished row is replaced from the queue at once, so the batch
//!   stays full instead of draining;
//! - **answers from the cache**: after the tail, a job's greedy answer and its labels'
//!   log-probabilities are read from its own cache (the rows of a batch's worth of finished jobs
//!   decoded together), so an answer needs no second prefill of prompt · reasoning · extractor.
//!
//! Hand-written because no crate does KV-cached speculative decoding over burn tensors.

mod answer;
mod draft;
mod host;
mod prefix;
mod reads;
mod verify;

use std::collections::VecDeque;
use std::ops::Range;

pub use answer::label_logprobs;
pub use draft::Drafter;
pub use prefix::{Prefix, prefill_prefixes};
pub(crate) use reads::Reads;
use reads::prefill;
use verify::{forward_rows, width};

use crate::arch::CausalLm;
use crate::cache::KvCache;
use crate::generate::GenerateError;

/// One sequence to continue.
#[derive(Debug, Clone, Default)]
pub struct Job {
    /// The prompt ids (non-empty).
    pub prompt: Vec<u32>,
    /// A guess of the continuation, verified token by token; empty: none.
    pub draft: Vec<u32>,
    /// Prompt positions whose −log p is returned (each read from the position before; starts ≥ 1).
    pub scored: Range<usize>,
    /// Ids fed teacher-forced after the generated ones; the argmax and −log p at each is returned.
    pub tail: Vec<u32>,
    /// The cached state of the prompt's first tokens ([`prefill_prefixes`]), shared by every
    /// prompt that starts with them: only the rest is prefilled. All jobs of a run have one or
    /// none.
    pub prefix: Option<std::sync::Arc<Prefix>>,
    /// Jobs of one group can be dropped together ([`Flow::DropGroup`]).
    pub group: usize,
}

/// What a finished job gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// New ids, without the stop token.
    pub ids: Vec<u32>,
    /// The stop token that ended it, if one did.
    pub stop: Option<u32>,
    /// −log p of each [`Job::scored`] prompt token.
    pub prompt_nll: Vec<f32>,
    /// The argmax at each tail token's position, given everything before it.
    pub tail_argmax: Vec<u32>,
    /// −log p of each tail token at [`EngineOptions::tail_temperature`].
    pub tail_nll: Vec<f32>,
    /// The greedy continuation after the tail, without its stop token (at most
    /// [`EngineOptions::answer_tokens`]; empty when that is 0).
    pub answer: Vec<u32>,
    /// The log-probability of each of [`EngineOptions::labels`] after the tail.
    pub label_logprob: Vec<f64>,
}

/// How drafts are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DraftOptions {
    /// Draft tokens checked per forward.
    pub chunk: usize,
    /// Tokens looked up to re-synchronise a lost draft (0: never).
    pub ngram: usize,
}

/// How to run the jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// The most new tokens per job.
    pub max_new_tokens: usize,
    /// Ids that end a job's generation.
    pub stop_ids: Vec<u32>,
    /// Rows per forward.
    pub batch_size: usize,
    /// Verify drafts (`None`: ignore them and decode token by token).
    pub draft: Option<DraftOptions>,
    /// Refill a finished row at once (otherwise the batch drains before the next is admitted).
    pub continuous: bool,
    /// Temperature of [`Finished::tail_nll`].
    pub tail_temperature: f32,
    /// The most greedy answer tokens decoded after each job's tail (0: no answer).
    pub answer_tokens: usize,
    /// Token sequences whose log-probability after each job's tail is returned.
    pub labels: Vec<Vec<u32>>,
}

impl EngineOptions {
    /// Whether anything is read past the tail.
    fn answers(&self) -> bool {
        self.answer_tokens > 0 || !self.labels.is_empty()
    }
}

/// What the work cost, for the step events and the benchmark tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    /// Jobs finished.
    pub jobs: usize,
    /// Prefill forwards.
    pub prefills: usize,
    /// Decode or verification forwards.
    pub forwards: usize,
    /// Tokens generated (stop tokens not counted).
    pub generated: usize,
    /// Draft tokens fed for verification.
    pub drafted: usize,
    /// Draft tokens that were the greedy choice.
    pub accepted: usize,
    /// Padding tokens fed in verification forwards.
    pub padding: usize,
}

/// What the caller says after each finished job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Leave out the unfinished jobs of this group, go on with the others.
    DropGroup(usize),
    /// Stop now: the jobs not finished yet are left out.
    Stop,
}

/// Run every job; `on_done(job, result)` sees each as it finishes and may stop the run. Returns
/// the results in job order (`None` for jobs a [`Flow::Stop`] left unfinished) and the cost.
pub fn run(
    model: &dyn CausalLm,
    jobs: &[Job],
    opts: &EngineOptions,
    on_done: &mut dyn FnMut(usize, &Finished) -> Flow,
) -> Result<(Vec<Option<Finished>>, EngineStats), GenerateError> {
    check(model, jobs, opts)?;
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| (jobs[i].prompt.len(), i));
    let w_max = 1 + opts.draft.map_or(0, |d| d.chunk);
    let tail_max = jobs.iter().map(|j| j.tail.len()).max().unwrap_or(0);
    let mut engine = Engine {
        model,
        jobs,
        opts,
        on_done,
        queue: order.into(),
        live: Vec::new(),
        cache: KvCache::new(0, 0),
        reserve: opts.max_new_tokens + tail_max + w_max + 1,
        out: vec![None; jobs.len()],
        stats: EngineStats::default(),
        stopped: false,
        dropped: Vec::new(),
        answers: answer::Answers::default(),
    };
    engine.drive();
    Ok((engine.out, engine.stats))
}

fn check(model: &dyn CausalLm, jobs: &[Job], opts: &EngineOptions) -> Result<(), GenerateError> {
    let context = model.config().max_position_embeddings;
    for (index, j) in jobs.iter().enumerate() {
        let prompt = j.prompt.len();
        if prompt == 0 {
            return Err(GenerateError::EmptyPrompt { index });
        }
        if prompt + opts.max_new_tokens > context {
            return Err(GenerateError::ContextOverflow { index, prompt, new: opts.max_new_tokens, context });
        }
        if !j.scored.is_empty() && (j.scored.start == 0 || j.scored.end > prompt) {
            return Err(GenerateError::ScoredRange { index, start: j.scored.start, end: j.scored.end, prompt });
        }
        if j.prefix.as_ref().is_some_and(|p| !p.fits(&j.prompt, &j.scored))
            || j.prefix.is_some() != jobs[0].prefix.is_some()
        {
            return Err(GenerateError::Prefix { index });
        }
    }
    Ok(())
}

/// A row being generated. Its last generated token (`pending`) is chosen but not yet fed.
struct Row {
    job: usize,
    ids: Vec<u32>,
    pending: u32,
    drafter: Option<Drafter>,
    prompt_nll: Vec<f32>,
    /// Draft tokens this row verified, and how many were right.
    drafted: usize,
    accepted: usize,
}

impl Row {
    /// The chance that its next draft token is right: its record so far, from a prior of 0.8.
    fn hit_rate(&self) -> f64 {
        (self.accepted as f64 + 4.0) / (self.drafted as f64 + 5.0)
    }
}

/// A row whose generation ended, waiting for its tail.
struct Ending {
    /// Its row in the cache it ends in.
    row: usize,
    job: usize,
    ids: Vec<u32>,
    stop: Option<u32>,
    /// The last generated token when it is not in the cache yet.
    pending: Option<u32>,
    /// Host logits at the last cached position, when they predict the first tail token.
    first: Option<Vec<f32>>,
    prompt_nll: Vec<f32>,
}

struct Engine<'a> {
    model: &'a dyn CausalLm,
    jobs: &'a [Job],
    opts: &'a EngineOptions,
    on_done: &'a mut dyn FnMut(usize, &Finished) -> Flow,
    queue: VecDeque<usize>,
    live: Vec<Row>,
    cache: KvCache,
    /// Slots a row may still need after its prompt: new tokens, tail, one verification chunk.
    reserve: usize,
    out: Vec<Option<Finished>>,
    stats: EngineStats,
    stopped: bool,
    /// Groups whose unfinished jobs are left out.
    dropped: Vec<usize>,
    /// Finished jobs waiting for their answers.
    answers: answer::Answers,
}

/// Where a row stands after its new tokens were walked.
enum Walk {
    /// Still generating; `accepted` draft tokens were right.
    Goes { accepted: usize },
    /// Ended.
    Ends(Ending),
}

impl Engine<'_> {
    fn drive(&mut self) {
        let batch = self.opts.batch_size.max(1);
        while !self.stopped {
            self.drop_groups();
            let room = batch - self.live.len();
            if !self.queue.is_empty() && (self.live.is_empty() || self.opts.continuous && room > 0) {
                let take = room.min(self.queue.len());
                let admitted: Vec<usize> = self.queue.drain(..take).collect();
                self.admit(&admitted);
                continue;
            }
            if self.live.is_empty() {
                break;
            }
            self.verify();
        }
        self.answer();
    }

    /// Remove the queued jobs and live rows of dropped groups.
    fn drop_groups(&mut self) {
        if self.dropped.is_empty() {
            return;
        }
        let (jobs, dropped) = (self.jobs, &self.dropped);
        self.queue.retain(|&j| !dropped.contains(&jobs[j].group));
        let keep: Vec<usize> =
            (0..self.live.len()).filter(|&r| !dropped.contains(&jobs[self.live[r].job].group)).collect();
        if keep.len() < self.live.len() {
            self.cache.retain_rows(&keep);
            let mut index = 0;
            self.live.retain(|_| {
                index += 1;
                keep.binary_search(&(index - 1)).is_ok()
            });
        }
    }

    /// Prefill `admitted` jobs, choose their first tokens and stack them under the live rows.
    fn admit(&mut self, admitted: &[usize]) {
        let prompts: Vec<Vec<u32>> = admitted.iter().map(|&j| self.jobs[j].prompt.clone()).collect();
        let scored: Vec<Range<usize>> = admitted.iter().map(|&j| self.jobs[j].scored.clone()).collect();
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let prefixes: Option<Vec<&Prefix>> = admitted.iter().map(|&j| self.jobs[j].prefix.as_deref()).collect();
        let (cache, nll, last) = match prefixes {
            Some(p) => prefix::prefill_rest(self.model, &p, &prompts, &scored, longest + self.reserve),
            None => {
                let mut cache = KvCache::new(prompts.len(), longest + self.reserve);
                let (nll, last) = prefill(self.model, &prompts, &scored, &mut cache);
                (cache, nll, last)
            }
        };
        let mut cache = cache;
        self.stats.prefills += 1;
        let v = self.model.config().vocab_size;
        let mut endings = Vec::new();
        let mut rows = Vec::new();
        for (r, (&job, nll)) in admitted.iter().zip(nll).enumerate() {
            let logits = &last[r * v..(r + 1) * v];
            let row = Row { job, ids: Vec::new(), pending: 0, drafter: None, prompt_nll: nll, drafted: 0, accepted: 0 };
            match self.first_token(row, r, logits) {
                Ok(row) => rows.push((r, row)),
                Err(e) => endings.push(e),
            }
        }
        self.finish(&cache, endings);
        let keep: Vec<usize> = rows.iter().map(|(r, _)| *r).collect();
        if keep.is_empty() {
            return;
        }
        cache.retain_rows(&keep);
        let capacity = self.cache.len().max(cache.len()) + self.reserve;
        self.cache.append_rows(cache, capacity);
        self.live.extend(rows.into_iter().map(|(_, row)| row));
    }

    /// Choose a new row's first token from its prompt's last logits (row `r` of the prefill).
    fn first_token(&mut self, mut row: Row, r: usize, logits: &[f32]) -> Result<Row, Ending> {
        let end = |row: Row, stop, first| Ending {
            row: r,
            job: row.job,
            ids: Vec::new(),
            stop,
            pending: None,
            first,
            prompt_nll: row.prompt_nll,
        };
        if self.opts.max_new_tokens == 0 {
            return Err(end(row, None, Some(logits.to_vec())));
        }
        let t = host::argmax(logits);
        if self.opts.stop_ids.contains(&t) {
            return Err(end(row, Some(t), Some(logits.to_vec())));
        }
        self.stats.generated += 1;
        row.ids.push(t);
        row.pending = t;
        if self.opts.max_new_tokens == 1 {
            let ids = std::mem::take(&mut row.ids);
            return Err(Ending { pending: Some(t), ids, ..end(row, None, None) });
        }
        if let Some(d) = self.opts.draft {
            let mut drafter = Drafter::new(self.jobs[row.job].draft.clone(), d.ngram);
            drafter.advance(0, t, &row.ids);
            row.drafter = Some(drafter);
        }
        Ok(row)
    }

    /// One forward over every live row: its pending token and up to `chunk` draft tokens.
    fn verify(&mut self) {
        let chunk = self.opts.draft.map_or(0, |d| d.chunk);
        // A row can still emit `max_new - ids` tokens; its verification emits proposal + 1.
        let room = |r: &Row| chunk.min(self.opts.max_new_tokens.saturating_sub(r.ids.len() + 1));
        let mut proposals: Vec<Vec<u32>> =
            self.live.iter().map(|r| r.drafter.as_ref().map_or(Vec::new(), |d| d.propose(room(r)).to_vec())).collect();
        let b = self.live.len();
        let rates: Vec<f64> = self.live.iter().map(Row::hit_rate).collect();
        let w = width(&proposals, &rates);
        proposals.iter_mut().for_each(|p| p.truncate(w - 1));
        // Compaction can squeeze out the slots beyond the longest row (rejected drafts, padding
        // tokens); the left padding of shorter rows stays. Do it when out of room or when those
        // slots are most of the cache.
        let (len, longest) = (self.cache.len(), self.cache.longest_row());
        if len + w > self.cache.capacity() || 2 * (len - longest) > len {
            self.cache.compact(longest + self.reserve);
        }
        let base = self.cache.len();
        let mut ids = Vec::with_capacity(b * w);
        let mut valid = Vec::with_capacity(b);
        for (row, p) in self.live.iter().zip(&proposals) {
            ids.push(row.pending as i64);
            ids.extend(p.iter().map(|&t| t as i64));
            ids.extend(std::iter::repeat_n(0i64, w - 1 - p.len()));
            valid.push((0..w).map(|i| i <= p.len()).collect::<Vec<bool>>());
            self.stats.drafted += p.len();
            self.stats.padding += w - 1 - p.len();
        }
        let counts: Vec<usize> = proposals.iter().map(|p| p.len() + 1).collect();
        let logits = forward_rows(self.model, ids, &valid, &counts, &mut self.cache);
        self.stats.forwards += 1;
        let v = self.model.config().vocab_size;
        let mut endings = Vec::new();
        let mut keep = Vec::with_capacity(b);
        let mut at = 0;
        for (r, p) in proposals.iter().enumerate() {
            let rows = &logits[at * v..(at + p.len() + 1) * v];
            at += p.len() + 1;
            match self.walk(r, base, p, rows) {
                Walk::Goes { accepted } => {
                    self.stats.accepted += accepted;
                    self.live[r].drafted += p.len();
                    self.live[r].accepted += accepted;
                    keep.push(r);
                }
                Walk::Ends(e) => endings.push(e),
            }
        }
        if endings.is_empty() {
            return;
        }
        let cache = self.cache.clone();
        self.finish(&cache, endings);
        self.cache.retain_rows(&keep);
        let mut index = 0;
        self.live.retain(|_| {
            index += 1;
            keep.binary_search(&(index - 1)).is_ok()
        });
    }

    /// Walk row `r`'s fed tokens (pending, then `proposal`) against its greedy choices (`logits`,
    /// one row per fed token); the cache holds them from slot `base`.
    fn walk(&mut self, r: usize, base: usize, proposal: &[u32], logits: &[f32]) -> Walk {
        let v = self.model.config().vocab_size;
        let max_new = self.opts.max_new_tokens;
        let row = &mut self.live[r];
        for i in 0..=proposal.len() {
            let scores = &logits[i * v..(i + 1) * v];
            let g = host::argmax(scores);
            // The fed tokens 0..=i are real; slot base + i + 1 onwards holds unverified drafts.
            let next_slot = base + i + 1;
            if self.opts.stop_ids.contains(&g) {
                self.cache.reject_from(r, next_slot);
                self.stats.accepted += i;
                return Walk::Ends(ending(r, row, Some(g), None, Some(scores.to_vec())));
            }
            row.ids.push(g);
            self.stats.generated += 1;
            if row.ids.len() == max_new {
                self.cache.reject_from(r, next_slot);
                self.stats.accepted += i;
                return Walk::Ends(ending(r, row, None, Some(g), None));
            }
            if proposal.get(i) != Some(&g) {
                self.cache.reject_from(r, next_slot);
                row.pending = g;
                if let Some(d) = row.drafter.as_mut() {
                    d.advance(i, g, &row.ids);
                }
                return Walk::Goes { accepted: i };
            }
        }
        unreachable!("the last fed token has no proposal after it, so the walk ends there")
    }

    /// Feed the tails of `endings` (rows of `cache`) and hand every finished job to the caller —
    /// or, when answers are wanted, to the jobs waiting for them.
    fn finish(&mut self, cache: &KvCache, endings: Vec<Ending>) {
        if endings.is_empty() || self.stopped {
            return;
        }
        let answers = self.opts.answers();
        let tails: Vec<&[u32]> = endings.iter().map(|e| &self.jobs[e.job].tail[..]).collect();
        let room = self.opts.answer_tokens.max(1);
        let (fed, sub) = host::tail_logits(self.model, cache, &endings, &tails, answers, room);
        let t = self.opts.tail_temperature;
        let mut waiting = Vec::new();
        let mut kept = Vec::new();
        for (k, (e, rows)) in endings.into_iter().zip(fed).enumerate() {
            if self.dropped.contains(&self.jobs[e.job].group) {
                continue;
            }
            let tail = &self.jobs[e.job].tail;
            let predicting: Vec<&[f32]> =
                e.first.as_deref().into_iter().chain(rows.iter().map(Vec::as_slice)).collect();
            let (scored, after) = predicting.split_at(tail.len());
            let tail_argmax = scored.iter().map(|r| host::argmax(r)).collect();
            let tail_nll = scored.iter().zip(tail).map(|(r, &tok)| host::nll(r, tok, t)).collect();
            let done = Finished {
                ids: e.ids,
                stop: e.stop,
                prompt_nll: e.prompt_nll,
                tail_argmax,
                tail_nll,
                answer: Vec::new(),
                label_logprob: Vec::new(),
            };
            if answers {
                waiting.push((e.job, done, after[0].to_vec()));
                kept.push(k);
                continue;
            }
            if !self.report(e.job, done) {
                return;
            }
        }
        if let Some(mut sub) = sub {
            sub.retain_rows(&kept);
            self.answers.add(waiting, sub);
            if self.answers.len() >= self.opts.batch_size.max(1) {
                self.answer();
            }
        }
    }

    /// Decode the waiting jobs' answers and hand them to the caller.
    fn answer(&mut self) {
        if self.stopped || self.answers.len() == 0 {
            return;
        }
        let o = self.opts;
        for (job, done) in self.answers.flush(self.model, o.answer_tokens, &o.stop_ids, &o.labels) {
            if self.dropped.contains(&self.jobs[job].group) {
                continue;
            }
            if !self.report(job, done) {
                return;
            }
        }
    }

    /// Hand a finished job to the caller; false once the caller stops the run.
    fn report(&mut self, job: usize, done: Finished) -> bool {
        self.stats.jobs += 1;
        let flow = (self.on_done)(job, &done);
        self.out[job] = Some(done);
        match flow {
            Flow::Continue => {}
            Flow::DropGroup(g) => self.dropped.push(g),
            Flow::Stop => self.stopped = true,
        }
        !self.stopped
    }
}

fn ending(r: usize, row: &mut Row, stop: Option<u32>, pending: Option<u32>, first: Option<Vec<f32>>) -> Ending {
    Ending {
        row: r,
        job: row.job,
        ids: std::mem::take(&mut row.ids),
        stop,
        pending,
        first,
        prompt_nll: std::mem::take(&mut row.prompt_nll),
    }
}
