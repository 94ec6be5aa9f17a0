//! `greater-fuzz`: run the fuzz targets (see the library docs); `cargo xtask fuzz` calls this.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use greater_fuzz::{Options, TARGETS, Target, alloc::CapAlloc, run_target, target};

#[global_allocator]
static ALLOC: CapAlloc = CapAlloc;

const HELP: &str = "\
greater-fuzz: feed mutated and generated inputs to every parser of greater

USAGE: greater-fuzz [OPTIONS]

OPTIONS:
  --target T        run only target T (repeatable; default: all; see --list)
  --inputs N        inputs per target (default 1000)
  --seed S          RNG seed (default 1); the same seed replays the same inputs
  --work DIR        work folder: current inputs and crashes/ (default $TMPDIR/greater-fuzz)
  --no-real-seeds   only the synthetic seeds (skip the model cache and $GREATER_DATA)
  --alloc-cap-mb M  live memory one input may add, MiB (default 1024); more aborts the run
  --time-limit-s S  longest time one input may take (default 5); longer is a hang
  --show-errors N    print why each of the first N inputs was rejected
  --replay FILE     run one saved input through the (single) --target and say what happened
  --list            list the targets and exit

A panic is saved to <work>/crashes/<target>-<hash>.bin and makes the exit status 1. A hang or
an over-cap allocation ends the process at once; the input that caused it is the target's file
in <work>/<target>/.";

fn main() -> Result<()> {
    let Some(Args { opts, names, replay }) = parse_args()? else { return Ok(()) };
    let targets = if names.is_empty() {
        TARGETS.iter().collect::<Vec<_>>()
    } else {
        names
            .iter()
            .map(|n| {
                let known: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
                target(n).with_context(|| format!("unknown target `{n}`; targets: {}", known.join(", ")))
            })
            .collect::<Result<_>>()?
    };
    if let Some(file) = replay {
        let [t] = targets[..] else { bail!("--replay needs exactly one --target") };
        let input = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let (result, took) = greater_fuzz::driver::replay(t, &opts, &input)?;
        println!("{}: {result:?} in {:.1} ms", t.name, took.as_secs_f64() * 1e3);
        return Ok(());
    }
    if run_all(&targets, &opts)? > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// What the command line asks for.
struct Args {
    opts: Options,
    /// Target names (all when empty).
    names: Vec<String>,
    /// An input file to run once through the single target.
    replay: Option<std::path::PathBuf>,
}

/// The command line; `None` when it asked only for the help or the target list (printed here).
fn parse_args() -> Result<Option<Args>> {
    let mut opts = Options::default();
    let mut names: Vec<String> = Vec::new();
    let mut replay: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().with_context(|| format!("{arg} needs {what}"));
        match arg.as_str() {
            "--target" => names.extend(value("a target name")?.split(',').map(String::from)),
            "--inputs" => opts.inputs = value("a number")?.parse().context("--inputs")?,
            "--seed" => opts.seed = value("a number")?.parse().context("--seed")?,
            "--work" => opts.work = value("a folder")?.into(),
            "--no-real-seeds" => opts.real_seeds = false,
            "--replay" => replay = Some(value("a file")?.into()),
            "--show-errors" => opts.show_errors = value("a number")?.parse().context("--show-errors")?,
            "--alloc-cap-mb" => opts.alloc_cap = value("MiB")?.parse::<usize>().context("--alloc-cap-mb")? << 20,
            "--time-limit-s" => {
                opts.time_limit = Duration::from_secs_f64(value("seconds")?.parse().context("--time-limit-s")?)
            }
            "--list" => {
                for t in &TARGETS {
                    println!("{:<12} {}", t.name, t.about);
                }
                return Ok(None);
            }
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(None);
            }
            other => bail!("unknown argument `{other}`\n\n{HELP}"),
        }
    }
    Ok(Some(Args { opts, names, replay }))
}

/// Fuzz every target in turn, a table row each; the number of panics.
fn run_all(targets: &[&Target], opts: &Options) -> Result<usize> {
    println!("work folder: {}", opts.work.display());
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>7} {:>6} {:>10} {:>10} {:>8}",
        "target", "inputs", "accepted", "rejected", "panics", "seeds", "slowest_ms", "peak_MiB", "secs"
    );
    let mut panics = 0;
    let mut total = 0;
    for t in targets {
        let start = Instant::now();
        let s = run_target(t, opts)?;
        panics += s.panics.len();
        total += s.inputs;
        println!(
            "{:<12} {:>9} {:>9} {:>9} {:>7} {:>6} {:>10.1} {:>10.1} {:>8.1}",
            s.target,
            s.inputs,
            s.accepted,
            s.rejected,
            s.panics.len(),
            s.seeds,
            s.slowest.as_secs_f64() * 1e3,
            s.peak_bytes as f64 / (1 << 20) as f64,
            start.elapsed().as_secs_f64()
        );
        for f in &s.panics {
            println!("  panic: {} ({})", f.message, f.input.display());
        }
    }
    println!("total: {total} inputs, {panics} panics");
    Ok(panics)
}
