//! `greater bench compare`: the `bbh-<model>.json` reports of several models as one Markdown
//! table, each task's rows next to each other.

use std::path::PathBuf;

use crate::report::{BenchReport, comparison};
use anyhow::{Context, Result, bail};

/// Arguments of `greater bench compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Reports written by `greater bench bbh`, in the column order wanted. Default: every
    /// `bbh-*.json` in `--out`, by name.
    pub reports: Vec<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: crate::Common,
}

/// Print the table; warn when the reports were made with different settings.
pub fn run(args: &CompareArgs) -> Result<()> {
    let files = if args.reports.is_empty() { found(&args.common.out)? } else { args.reports.clone() };
    if files.is_empty() {
        bail!("no reports given and no bbh-*.json in {}; run `greater bench bbh` first", args.common.out.display());
    }
    let mut reports = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let r: BenchReport = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a report written by `greater bench bbh`", f.display()))?;
        reports.push(r);
    }
    print!("{}", comparison(&reports));
    for (f, r) in files.iter().zip(&reports) {
        println!("\n{}: {} ({})", r.model, r.args, f.display());
    }
    if reports.windows(2).any(|w| settings_of(&w[0].args) != settings_of(&w[1].args)) {
        eprintln!("warning: the reports were made with different settings; the rows are not like for like");
    }
    Ok(())
}

/// `dir/bbh-*.json`, sorted by name.
fn found(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut v = Vec::new();
    for e in entries {
        let p = e.with_context(|| format!("listing {}", dir.display()))?.path();
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with("bbh-") && name.ends_with(".json") {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// The settings that make rows comparable, as `(key, value)` pairs, read from a report's `args`:
/// `steps=5 train=10 ...` as written now, or the `BbhArgs { steps: 5, ... }` debug text that
/// earlier versions wrote.
fn settings_of(args: &str) -> Vec<(&'static str, String)> {
    crate::bbh::SETTING_KEYS
        .iter()
        .map(|&k| {
            let value = [format!("{k}="), format!("{k}: ")].iter().find_map(|pat| {
                let at = args
                    .match_indices(pat.as_str())
                    .find(|(i, _)| *i == 0 || !args[..*i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))?;
                let rest = &args[at.0 + pat.len()..];
                Some(rest.split([' ', ',', '}']).next().unwrap_or("").to_string())
            });
            (k, value.unwrap_or_default())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::settings_of;

    #[test]
    fn settings_read_from_both_formats() {
        let now = "steps=5 train=10 max_reasoning_tokens=128 eval_limit=20 top_prompts=2 seed=0 batch_size=10";
        let before = "BbhArgs { model: \"m\", tasks: [\"bbh/x\"], steps: 5, train: 10, max_reasoning_tokens: 128, \
                      eval_limit: 20, top_prompts: 2, seed: 0, batch_size: 10, common: Common { out: \"/t\" } }";
        assert_eq!(settings_of(now), settings_of(before));
        assert_eq!(settings_of(now)[0], ("steps", "5".to_string()));
        assert_eq!(settings_of(now)[1], ("train", "10".to_string()));
        assert_ne!(settings_of(now), settings_of(&now.replace("eval_limit=20", "eval_limit=50")));
    }
}
