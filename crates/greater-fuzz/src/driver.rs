//! The driver: picks seeds, mutates or generates inputs, writes each to disk, runs it behind
//! `catch_unwind` under a per-input allocation cap, and a watchdog that ends the process when
//! one input runs past the time limit. Findings (panics) are saved under `crashes/`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::mutate::{Rng, mutate_bytes, mutate_json};
use crate::targets::{Ctx, Style, Target};
use crate::{alloc, seeds};

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Inputs per target.
    pub inputs: usize,
    /// RNG seed.
    pub seed: u64,
    /// Work folder (per-target input files, `crashes/`).
    pub work: PathBuf,
    /// Also seed from real files (model cache, `GREATER_DATA`).
    pub real_seeds: bool,
    /// Live bytes an input may add.
    pub alloc_cap: usize,
    /// Longest time one input may take.
    pub time_limit: Duration,
    /// Longest input.
    pub max_len: usize,
    /// Print the rejection messages of the first this many inputs.
    pub show_errors: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            inputs: 1000,
            seed: 1,
            work: std::env::temp_dir().join("greater-fuzz"),
            real_seeds: true,
            alloc_cap: 1 << 30,
            time_limit: Duration::from_secs(5),
            max_len: 16 << 20,
            show_errors: 0,
        }
    }
}

/// A panic: where its input was saved and what it said.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The saved input.
    pub input: PathBuf,
    /// The panic message.
    pub message: String,
}

/// What one target's run did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Target name.
    pub target: String,
    /// Inputs run.
    pub inputs: usize,
    /// Accepted.
    pub accepted: usize,
    /// Rejected with an error.
    pub rejected: usize,
    /// Panics.
    pub panics: Vec<Finding>,
    /// Longest input time.
    pub slowest: Duration,
    /// Largest per-input allocation peak above the baseline, in bytes.
    pub peak_bytes: usize,
    /// Seeds used.
    pub seeds: usize,
}

/// When the running input started (ms since `EPOCH`; 0: none running).
static STARTED: AtomicU64 = AtomicU64::new(0);
static LIMIT_MS: AtomicU64 = AtomicU64::new(5000);
static RUNNING: Mutex<Option<PathBuf>> = Mutex::new(None);
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// CPU seconds this process has used (Linux `/proc/self/stat`; `None` elsewhere).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Starts the watchdog and the quiet panic hook (once per process).
///
/// A hang is an input that uses more than the limit in CPU time (so a loaded machine or
/// `nice -n 19` does not make slow inputs look hung), or ten times the limit in wall time.
fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        now_ms();
        std::panic::set_hook(Box::new(|info| {
            let at = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{msg}{at}"));
        }));
        std::thread::spawn(|| {
            let mut watched = (0u64, 0.0f64);
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let started = STARTED.load(Ordering::Relaxed);
                if started == 0 {
                    continue;
                }
                let cpu = cpu_seconds().unwrap_or(0.0);
                if watched.0 != started {
                    watched = (started, cpu);
                }
                let limit = LIMIT_MS.load(Ordering::Relaxed);
                let cpu_ms = ((cpu - watched.1) * 1e3) as u64;
                let wall_ms = now_ms().saturating_sub(started);
                if cpu_ms > limit || wall_ms > 10 * limit {
                    let input = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    eprintln!(
                        "greater-fuzz: HANG: an input ran {cpu_ms} ms of CPU ({wall_ms} ms wall), over the {limit} ms \
                         limit; it is {}",
                        input.map_or("?".into(), |p| p.display().to_string())
                    );
                    std::process::exit(3);
                }
            }
        });
    });
}

/// Builds a target's context (its folder and the small tokenizer templates need).
pub fn context(target: &Target, work: &Path) -> anyhow::Result<Ctx> {
    let dir = work.join(target.name);
    let input = dir.join(target.file);
    std::fs::create_dir_all(input.parent().unwrap_or(&dir))?;
    let tok_path = work.join("template-tokenizer.json");
    std::fs::write(&tok_path, &seeds::tokenizers()[0])?;
    let tokenizer = greater_models::tokenizer::Tokenizer::from_file(&tok_path, None)?;
    Ok(Ctx { dir, input, tokenizer })
}

/// Runs one saved input (a reproducer) through `target`; returns the result and the time taken.
pub fn replay(target: &Target, opts: &Options, input: &[u8]) -> anyhow::Result<(Result<(), String>, Duration)> {
    let ctx = context(target, &opts.work)?;
    std::fs::write(&ctx.input, input)?;
    let t = Instant::now();
    let r = (target.run)(&ctx, input);
    Ok((r, t.elapsed()))
}

/// Runs `target` for `opts.inputs` inputs.
pub fn run_target(target: &Target, opts: &Options) -> anyhow::Result<Stats> {
    install();
    LIMIT_MS.store(opts.time_limit.as_millis() as u64, Ordering::Relaxed);
    let ctx = context(target, &opts.work)?;
    let crashes = opts.work.join("crashes");
    let corpus = (target.seeds)(opts.real_seeds);
    anyhow::ensure!(!corpus.is_empty(), "target {} has no seeds", target.name);
    let mut rng = Rng::new(opts.seed ^ fxhash(target.name));
    let mut stats = Stats { target: target.name.into(), seeds: corpus.len(), ..Default::default() };
    for i in 0..opts.inputs {
        let input = next_input(target, &corpus, &mut rng, i, opts.max_len);
        std::fs::write(&ctx.input, &input)?;
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(ctx.input.clone());
        let base = alloc::set_budget(opts.alloc_cap);
        let t = Instant::now();
        STARTED.store(now_ms(), Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(&ctx, &input)));
        STARTED.store(0, Ordering::Relaxed);
        let elapsed = t.elapsed();
        alloc::clear_budget();
        stats.peak_bytes = stats.peak_bytes.max(alloc::peak().saturating_sub(base));
        stats.slowest = stats.slowest.max(elapsed);
        stats.inputs += 1;
        match outcome {
            Ok(Ok(())) => stats.accepted += 1,
            Ok(Err(e)) => {
                stats.rejected += 1;
                if i < opts.show_errors {
                    eprintln!("{} input {i}: rejected: {e}", target.name);
                }
            }
            Err(_) => {
                let message = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
                std::fs::create_dir_all(&crashes)?;
                let saved = crashes.join(format!("{}-{:016x}.bin", target.name, fxhash_bytes(&input)));
                std::fs::write(&saved, &input)?;
                eprintln!(
                    "greater-fuzz: PANIC in {} (input {i}, saved to {}): {message}",
                    target.name,
                    saved.display()
                );
                stats.panics.push(Finding { input: saved, message });
            }
        }
    }
    Ok(stats)
}

/// The `i`-th input: every seed once first, then mutations (and generated inputs).
fn next_input(target: &Target, corpus: &[Vec<u8>], rng: &mut Rng, i: usize, max_len: usize) -> Vec<u8> {
    if i < corpus.len() {
        return corpus[i].clone();
    }
    if let Some(generate) = target.generate
        && rng.one_in(3)
    {
        return generate(rng);
    }
    let seed = rng.pick(corpus);
    let other = rng.pick(corpus);
    let structured = match target.style {
        Style::Json if rng.one_in(2) => mutate_json(rng, seed),
        Style::JsonLines if rng.one_in(2) => mutate_line(rng, seed),
        Style::Safetensors if rng.one_in(2) => mutate_safetensors_header(rng, seed),
        _ => None,
    };
    structured.unwrap_or_else(|| {
        let mut data = seed.clone();
        mutate_bytes(rng, &mut data, other, max_len);
        data
    })
}

/// One line of a JSONL text mutated as JSON.
fn mutate_line(rng: &mut Rng, text: &[u8]) -> Option<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let i = rng.below(lines.len());
    lines[i] = mutate_json(rng, &lines[i])?;
    Some(lines.join(&b'\n'))
}

/// The JSON header of a safetensors file mutated as JSON (the length prefix rewritten to fit).
fn mutate_safetensors_header(rng: &mut Rng, file: &[u8]) -> Option<Vec<u8>> {
    let len = u64::from_le_bytes(file.get(..8)?.try_into().ok()?) as usize;
    let header = file.get(8..8usize.checked_add(len)?)?;
    let new = mutate_json(rng, header)?;
    let mut out = (new.len() as u64).to_le_bytes().to_vec();
    out.extend(new);
    out.extend(&file[8 + len..]);
    Some(out)
}

fn fxhash(s: &str) -> u64 {
    fxhash_bytes(s.as_bytes())
}

fn fxhash_bytes(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x0100_0000_01b3))
}
