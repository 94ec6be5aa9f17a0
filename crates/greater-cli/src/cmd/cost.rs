//! `greater optimize --dry-run`: the expected cost of a run, printed before it starts.

use std::path::Path;

use anyhow::{Context as _, Result};
use greater_opt::NoObserver;
use greater_opt::cost::{self, CostEstimate};
use greater_opt::memory::human;
use greater_opt::optimize::{OptimizeConfig, Run};

use super::{load_model, load_task_with};

/// Probe this machine on the model, print the estimate, and fail when the run will not fit
/// (context, `max_hours`, `max_memory`).
pub fn dry_run(cfg: &OptimizeConfig, dir: &Path, max_hours: Option<f64>) -> Result<()> {
    cfg.validate().context("checking the configuration")?;
    let task = load_task_with(&cfg.task, &cfg.custom_options())?;
    let loaded = load_model(&cfg.model)?;
    let run = Run { loaded: &loaded, task: &task, cfg, dir: dir.to_path_buf(), observer: &NoObserver };
    let prepared = run.prepare().context("laying out the train examples")?;
    let control = &prepared.initial;
    let prompt = prepared.layouts.iter().map(|l| l.generation_prompt(control).len()).max().unwrap_or(1);
    let tail = prepared.layouts.iter().map(|l| l.extractor.len() + l.answer.len()).max().unwrap_or(1);
    let grad_tokens = prompt + cfg.max_reasoning_tokens + tail;
    eprintln!("probing this machine on {} (about 10 s)", cfg.model);
    let tp = cost::probe(&loaded.model, cfg.batch_size.min(prepared.layouts.len()), prompt, grad_tokens, 10.0);
    let bound = run.cost_estimate(&prepared, &tp, None);
    eprintln!("generating the initial prompt's reasoning for the {} training examples", prepared.layouts.len());
    let (mean, secs) = run.initial_reasoning_length(&prepared)?;
    let est = run.cost_estimate(&prepared, &tp, Some(mean));
    let mem = run.memory_estimate(&prepared);
    print(&est, &tp, cfg, mean, secs);
    println!("upper bound (every chain at the cap): {}", duration(bound.seconds));
    println!(
        "peak memory: {} (weights {}, generation {}, gradient {})",
        human(mem.peak),
        human(mem.weights),
        human(mem.generation),
        human(mem.gradient)
    );
    greater_opt::memory::check_budget(&mem, cfg.max_memory)?;
    cost::check(&bound, None)?;
    cost::check(&est, max_hours)?;
    Ok(())
}

fn print(est: &CostEstimate, tp: &cost::Throughput, cfg: &OptimizeConfig, mean: f64, secs: f64) {
    println!(
        "throughput here: prefill {:.0} tok/s, decode {:.1} tok/s, gradient {:.0} tok/s (probe {:.1} s)",
        tp.prefill, tp.decode, tp.gradient, tp.probe_s
    );
    println!(
        "expected for {} step(s) on the plain path, chains of {mean:.0} tokens (the initial prompt's mean, \
         generated in {secs:.1} s; cap {}):",
        cfg.steps, cfg.max_reasoning_tokens
    );
    println!(
        "{:<17} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "phase", "prefill tok", "decode tok", "grad tok", "TFLOP", "time"
    );
    for p in &est.phases {
        println!(
            "{:<17} {:>12} {:>12} {:>12} {:>10.2} {:>10}",
            p.name,
            p.prefill_tokens,
            p.decode_tokens,
            p.gradient_tokens,
            p.flops / 1e12,
            duration(p.seconds)
        );
    }
    println!("total: {}", duration(est.seconds));
    println!("longest sequence: {} of the model's {} tokens of context", est.longest_sequence, est.context);
}

fn duration(s: f64) -> String {
    match s {
        s if s < 10.0 => format!("{s:.2} s"),
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.1} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}
