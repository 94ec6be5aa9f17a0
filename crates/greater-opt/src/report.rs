//! `report.json` and a self-contained `report.html` (inline SVG, no network).

use std::fmt::Write as _;
use std::path::Path;

use greater_tasks::{Accuracy, PairedComparison};

use crate::OptError;
use crate::eval::EvalResult;
use crate::optimize::OptimizeConfig;
use crate::optimize::state::{StepSummary, write_atomic};

/// Accuracy of one prompt per split (absent when not evaluated).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Accuracies {
    /// On the train examples used.
    pub train: Option<Accuracy>,
    /// On dev.
    pub dev: Option<Accuracy>,
    /// On test.
    pub test: Option<Accuracy>,
}

/// One of the top prompts, with its dev accuracy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DevCandidate {
    /// Prompt text.
    pub text: String,
    /// Prompt ids.
    pub ids: Vec<u32>,
    /// Training selection score.
    pub train_score: f32,
    /// Dev accuracy.
    pub dev_accuracy: f64,
}

/// Wall-clock seconds by phase.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Seconds {
    /// The whole run, as measured by the caller.
    pub total: f64,
    /// Reasoning generation with the current prompt.
    pub generation: f64,
    /// Candidate proposal.
    pub proposal: f64,
    /// Token gradients.
    pub gradient: f64,
    /// Candidate re-scoring (includes its regeneration).
    pub selection: f64,
    /// Final evaluations.
    pub evaluation: f64,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Task name.
    pub task: String,
    /// Model name or path.
    pub model: String,
    /// The initial prompt.
    pub initial_prompt: String,
    /// Its ids.
    pub initial_prompt_ids: Vec<u32>,
    /// The final prompt (best on dev among the top prompts).
    pub final_prompt: String,
    /// Its ids.
    pub final_prompt_ids: Vec<u32>,
    /// Best training selection score.
    pub best_train_score: Option<f32>,
    /// Steps completed.
    pub steps_run: usize,
    /// Accuracies of the initial prompt.
    pub accuracy_initial: Accuracies,
    /// Accuracies of the final prompt.
    pub accuracy_final: Accuracies,
    /// Paired test comparison (initial vs final).
    pub test_difference: Option<PairedComparison>,
    /// The dev selection.
    pub dev_candidates: Vec<DevCandidate>,
    /// Seconds by phase.
    pub seconds: Seconds,
    /// Per step.
    pub history: Vec<StepSummary>,
    /// The resolved configuration.
    pub config: OptimizeConfig,
}

/// Write `report.json` and `report.html` into `dir`.
pub fn write(dir: &Path, report: &Report) -> Result<(), OptError> {
    let json = serde_json::to_vec_pretty(report).expect("report serialises");
    write_atomic(&dir.join("report.json"), &json)?;
    regenerate_html(dir)
}

/// Rebuild `report.html` from `report.json` and the saved evaluations in `dir`.
pub fn regenerate_html(dir: &Path) -> Result<(), OptError> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| OptError::io(&path, e))?;
    let report: Report =
        serde_json::from_str(&text).map_err(|e| OptError::BadFile { path: path.clone(), reason: e.to_string() })?;
    let read = |name: &str| -> Option<EvalResult> {
        let p = dir.join("evals").join(name);
        std::fs::read_to_string(p).ok().and_then(|t| serde_json::from_str(&t).ok())
    };
    let html = render_html(&report, read("initial-test.json").as_ref(), read("final-test.json").as_ref());
    write_atomic(&dir.join("report.html"), html.as_bytes())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn pct(a: &Option<Accuracy>) -> String {
    a.as_ref().map_or("–".into(), |a| {
        format!("{:.1}% [{:.1}, {:.1}] (n={})", 100.0 * a.accuracy, 100.0 * a.ci_low, 100.0 * a.ci_high, a.total)
    })
}

/// A line plot of `ys` against step, as inline SVG.
fn svg_line(title: &str, ys: &[f32]) -> String {
    let (w, h, pad) = (560.0f32, 180.0f32, 30.0f32);
    let mut s =
        format!("<figure><figcaption>{}</figcaption><svg width=\"{w}\" height=\"{h}\" role=\"img\">", esc(title));
    if ys.is_empty() {
        return s + "</svg></figure>";
    }
    let lo = ys.iter().cloned().fold(f32::INFINITY, f32::min);
    let hi = ys.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f32 / (ys.len().max(2) - 1) as f32;
    let y = |v: f32| h - pad - (h - 2.0 * pad) * (v - lo) / span;
    let pts: Vec<String> = ys.iter().enumerate().map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v))).collect();
    let _ = write!(
        s,
        "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/><polyline fill=\"none\" stroke=\"#2a6\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"2\" y=\"{}\" font-size=\"10\">{hi:.3}</text><text x=\"2\" y=\"{}\" font-size=\"10\">{lo:.3}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\">step {}</text></svg></figure>",
        h - pad,
        w - pad,
        h - pad,
        pts.join(" "),
        pad,
        h - pad,
        w - pad - 40.0,
        h - 8.0,
        ys.len()
    );
    s
}

fn render_html(r: &Report, initial: Option<&EvalResult>, fin: Option<&EvalResult>) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>greater report: {task}</title><style>\
         body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}table{{border-collapse:collapse;width:100%}}\
         td,th{{border:1px solid #ccc;padding:4px;font-size:13px;vertical-align:top}}.ok{{background:#e6f5e6}}.bad{{background:#fbe9e9}}\
         code{{background:#f4f4f4}}mark{{background:#ffe08a}}</style></head><body>",
        task = esc(&r.task)
    );
    let _ = write!(h, "<h1>GReaTer: {} on {}</h1>", esc(&r.task), esc(&r.model));
    let _ = write!(
        h,
        "<p>Initial prompt: <code>{}</code><br>Final prompt: <code>{}</code><br>Best train score: {} after {} steps</p>",
        esc(&r.initial_prompt),
        esc(&r.final_prompt),
        r.best_train_score.map_or("–".into(), |s| format!("{s:.3}")),
        r.steps_run
    );
    h += "<h2>Accuracy</h2><table><tr><th>prompt</th><th>train</th><th>dev</th><th>test</th></tr>";
    for (name, a) in [("initial", &r.accuracy_initial), ("final", &r.accuracy_final)] {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            pct(&a.train),
            pct(&a.dev),
            pct(&a.test)
        );
    }
    h += "</table>";
    if let Some(d) = &r.test_difference {
        let _ = write!(
            h,
            "<p>Paired test difference: {:+.1} points (initial right/final wrong: {}, initial wrong/final right: {}), exact McNemar p = {:.3}</p>",
            100.0 * d.difference,
            d.b,
            d.c,
            d.p_value
        );
    }
    let s = &r.seconds;
    let _ = write!(
        h,
        "<p>Seconds: total {:.0}; generation {:.0}, proposal {:.0}, gradient {:.0}, selection {:.0}, evaluation {:.0}</p>",
        s.total, s.generation, s.proposal, s.gradient, s.selection, s.evaluation
    );
    render_evolution(&mut h, r);
    render_dev(&mut h, r);
    if let (Some(a), Some(b)) = (initial, fin) {
        render_test(&mut h, a, b);
    }
    h += "</body></html>";
    h
}

/// The per-step curves and the prompt evolution table.
fn render_evolution(h: &mut String, r: &Report) {
    *h += "<h2>Per step</h2>";
    *h += &svg_line(
        "selection score (mistake rate + w·prompt NLL)",
        &r.history.iter().map(|x| x.score).collect::<Vec<_>>(),
    );
    *h += &svg_line("teacher-forced mistake rate", &r.history.iter().map(|x| x.mistake_rate).collect::<Vec<_>>());
    *h += "<h2>Prompt evolution</h2><table><tr><th>step</th><th>score</th><th>prompt</th>\
          <th title=\"training examples whose gradient pushed hardest for the change (Δ loss, first order); \
          greater explain DIR --step N shows all\">driven by</th></tr>";
    let mut prev = r.initial_prompt.clone();
    for x in &r.history {
        let drivers: Vec<String> = x
            .drivers
            .iter()
            .map(|d| {
                let tokens: Vec<String> = d.answer_token_nll.iter().map(|t| format!("{t:.2}")).collect();
                format!("#{} ({:+.2}; answer-token CE {})", d.example, d.delta, tokens.join(" "))
            })
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
            x.step + 1,
            x.score,
            diff_words(&prev, &x.text),
            esc(&drivers.join(", "))
        );
        prev = x.text.clone();
    }
    *h += "</table>";
}

/// The top prompts' train scores and dev accuracies.
fn render_dev(h: &mut String, r: &Report) {
    if !r.dev_candidates.is_empty() {
        *h += "<h2>Dev selection</h2><table><tr><th>prompt</th><th>train score</th><th>dev accuracy</th></tr>";
        for c in &r.dev_candidates {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{:.3}</td><td>{:.1}%</td></tr>",
                esc(&c.text),
                c.train_score,
                100.0 * c.dev_accuracy
            );
        }
        *h += "</table>";
    }
}

/// Every test example under the initial and the final prompt.
fn render_test(h: &mut String, a: &EvalResult, b: &EvalResult) {
    *h += "<h2>Test examples</h2><table><tr><th>#</th><th>question</th><th>gold</th><th>initial answer</th><th>final answer</th></tr>";
    for (x, y) in a.records.iter().zip(&b.records) {
        let cell = |r: &crate::eval::ExampleRecord| {
            format!(
                "<td class=\"{}\" title=\"{}\">{}</td>",
                if r.correct { "ok" } else { "bad" },
                esc(&r.reasoning),
                esc(&r.raw_answer)
            )
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}</tr>",
            x.index,
            esc(&x.input),
            esc(&x.gold),
            cell(x),
            cell(y)
        );
    }
    *h += "</table>";
}

/// `new` with the words that differ from `old` (by position) highlighted.
fn diff_words(old: &str, new: &str) -> String {
    let o: Vec<&str> = old.split(' ').collect();
    new.split(' ')
        .enumerate()
        .map(|(i, w)| if o.get(i) == Some(&w) { esc(w) } else { format!("<mark>{}</mark>", esc(w)) })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_and_marks_changed_words() {
        assert_eq!(diff_words("a b c", "a x c"), "a <mark>x</mark> c");
        assert_eq!(esc("<b>&"), "&lt;b&gt;&amp;");
        let svg = svg_line("t", &[1.0, 0.5, 0.25]);
        assert!(svg.contains("<polyline") && svg.contains("step 3"));
    }
}
