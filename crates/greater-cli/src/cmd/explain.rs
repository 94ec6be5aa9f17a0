//! `greater explain DIR --step N`: why a step changed the prompt as it did.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use greater_opt::optimize::StepEvent;

/// Flags of `greater explain`.
#[derive(Debug, Args)]
#[command(after_help = "\
For the step it prints the change, the candidates by summed gradient (lower is better) with
the selection scores of those that were re-scored, and every training example with its part
in the change: delta = g[chosen] - g[current] of its own loss gradient (the first-order change
of its loss from the swap; negative: it pushed for the chosen token), its teacher-forced
result and its loss, and the CE of each answer token. With the datasets at hand (GREATER_DATA)
the question is shown too.")]
pub struct ExplainArgs {
    /// A run folder.
    pub dir: PathBuf,
    /// The step (1-based, as the report numbers them).
    #[arg(long)]
    pub step: usize,
}

/// Run `greater explain`.
pub fn run(args: ExplainArgs) -> Result<()> {
    let path = args.dir.join("events.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let events: Vec<StepEvent> = text
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}: line {}", path.display(), i + 1)))
        .collect::<Result<_>>()?;
    let Some(e) = args.step.checked_sub(1).and_then(|i| events.get(i)) else {
        bail!("{} has steps 1 to {}; there is no step {}", path.display(), events.len(), args.step);
    };
    // The questions, when the task loads (the config names it); the explanation stands without.
    let questions: Vec<String> = greater_opt::optimize::load_config(&args.dir)
        .ok()
        .and_then(|cfg| super::load_task_with(&cfg.task, &cfg.custom_options()).ok().map(|t| (t, cfg.train)))
        .map(|(t, n)| t.train.iter().take(n).map(|x| x.input.replace('\n', " ")).collect())
        .unwrap_or_default();
    println!("step {} (position {}): chose {:?}, score {:.4}", e.step + 1, e.position, e.chosen_text, e.score);
    println!("prompt after: {:?}", e.prompt_text);
    println!("\ncandidates by summed gradient (lower is better):");
    let mut order: Vec<usize> = (0..e.candidates.len()).collect();
    order.sort_by(|&a, &b| e.gradient[a].total_cmp(&e.gradient[b]).then(a.cmp(&b)));
    for k in order {
        let scored = e.selection.iter().find(|s| s.token == e.candidates[k]);
        let score =
            scored.map_or(String::new(), |s| format!("  score {:.4} (mistakes {:.2})", s.score, s.mistake_rate));
        let mark = if e.candidates[k] == e.chosen { "→" } else { " " };
        println!("{mark} {:>16} {:>10.4}{score}", format!("{:?}", e.candidate_text[k]), e.gradient[k]);
    }
    if e.attribution.is_empty() {
        println!("\n(this run's events carry no per-example attribution: it was made by an older greater)");
        return Ok(());
    }
    println!("\ntraining examples by their part in the change (most negative delta first):");
    let mut by: Vec<usize> = (0..e.attribution.len()).collect();
    by.sort_by(|&a, &b| e.attribution[a].delta.total_cmp(&e.attribution[b].delta).then(a.cmp(&b)));
    for i in by {
        let a = &e.attribution[i];
        let tokens: Vec<String> = a.answer_token_nll.iter().map(|x| format!("{x:.2}")).collect();
        let q = questions.get(i).map_or(String::new(), |q| format!("  {}", q.chars().take(60).collect::<String>()));
        println!(
            "  #{i:<3} delta {:+9.4}  {}  loss {:7.3}  answer tokens [{}]{q}",
            a.delta,
            if a.teacher_forced_mistake { "mistake" } else { "right  " },
            a.loss,
            tokens.join(", ")
        );
    }
    Ok(())
}
