//! `greater report DIR`: rebuild report.html from report.json, and the summary every run prints.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use greater_opt::report::{Report, regenerate_html};

use super::eval::read_report;
use super::fmt_accuracy_short;

/// Flags of `greater report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run folder written by `greater optimize` (it holds report.json).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Run `greater report`.
pub fn run(args: ReportArgs) -> Result<()> {
    let report = read_report(&args.dir)?;
    regenerate_html(&args.dir).with_context(|| format!("writing the report in {}", args.dir.display()))?;
    print_report(&report);
    println!("report: {}", args.dir.join("report.html").display());
    Ok(())
}

/// Prompts, scores, the accuracy table and the paired test difference of a run.
pub fn print_report(r: &Report) {
    println!("task {} on {}, {} step{}", r.task, r.model, r.steps_run, if r.steps_run == 1 { "" } else { "s" });
    println!("initial prompt: {:?}", r.initial_prompt);
    println!("final prompt:   {:?}", r.final_prompt);
    if let Some(s) = r.best_train_score {
        println!("best train score: {s:.3} (mistake rate + w · prompt NLL; lower is better)");
    }
    let rows = [("initial", &r.accuracy_initial), ("final", &r.accuracy_final)];
    if rows.iter().any(|(_, a)| a.train.is_some() || a.dev.is_some() || a.test.is_some()) {
        println!("{:<8} {:<26} {:<26} test", "accuracy", "train", "dev");
        for (name, a) in rows {
            println!(
                "{name:<8} {:<26} {:<26} {}",
                fmt_accuracy_short(a.train.as_ref()),
                fmt_accuracy_short(a.dev.as_ref()),
                fmt_accuracy_short(a.test.as_ref())
            );
        }
    } else {
        println!("no final evaluation (run without --no-final-eval to measure accuracy)");
    }
    if let Some(d) = &r.test_difference {
        println!(
            "test difference (final − initial): {:+.1} points; exact McNemar p = {:.4} ({} lost, {} gained)",
            100.0 * d.difference,
            d.p_value,
            d.b,
            d.c
        );
    }
    let s = &r.seconds;
    println!(
        "seconds: {:.0} total (generation {:.0}, proposal {:.0}, gradient {:.0}, selection {:.0}, evaluation {:.0})",
        s.total, s.generation, s.proposal, s.gradient, s.selection, s.evaluation
    );
}
