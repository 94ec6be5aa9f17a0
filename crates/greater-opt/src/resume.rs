//! Resume policy: which settings a continued run may change, and when a finished run is
//! reopened. The CLI only turns flags into a config; every rule of continuing a run lives here.
//!
//! A run's state (its prompt, its examples, its random draws) follows from the model, the task,
//! the training set, the seed and every search setting, so those are fixed for the life of a run.
//! What may change is how far it goes and how it is computed: [`CHANGEABLE_ON_RESUME`].
//! Everything else is fixed by default, so a setting added to `OptimizeConfig` later is fixed
//! until someone decides otherwise here.

use std::path::Path;

use crate::OptError;
use crate::optimize::{OptimizeConfig, RunState, load_config, state};

/// The `OptimizeConfig` keys a resumed run may change: more (or fewer) steps, the reasoning cap,
/// the batch size, the final evaluation, the selection speed-ups and gradient checkpointing (which
/// change no decision) and the memory budget.
/// Any other difference is refused.
pub const CHANGEABLE_ON_RESUME: [&str; 14] = [
    "steps",
    "max_reasoning_tokens",
    "batch_size",
    "eval_limit",
    "final_eval",
    "one_pass",
    "draft",
    "draft_chunk",
    "draft_ngram",
    "prune",
    "continuous_batching",
    "prefix_cache",
    "gradient_checkpointing",
    "max_memory",
];

/// One refused difference between a run's config and the config asked for on resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedChange {
    /// The config key.
    pub key: String,
    /// Its value in the run, as TOML.
    pub was: String,
    /// The value asked for, as TOML (`<absent>` when the key is missing).
    pub now: String,
}

/// Every difference between `old` (the run's config) and `new` that is not in
/// [`CHANGEABLE_ON_RESUME`], in key order.
pub fn fixed_changes(old: &OptimizeConfig, new: &OptimizeConfig) -> Vec<FixedChange> {
    let table = |c: &OptimizeConfig| -> toml::Table { toml::from_str(&c.to_toml()).unwrap_or_default() };
    let (old, new) = (table(old), table(new));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&toml::Value>| v.map_or_else(|| "<absent>".to_owned(), ToString::to_string);
    keys.into_iter()
        .filter(|k| !CHANGEABLE_ON_RESUME.contains(&k.as_str()) && old.get(*k) != new.get(*k))
        .map(|k| FixedChange { key: k.clone(), was: show(old.get(k)), now: show(new.get(k)) })
        .collect()
}

/// [`fixed_changes`] as an error naming the run folder and every refused key.
pub fn check_resumable(dir: &Path, old: &OptimizeConfig, new: &OptimizeConfig) -> Result<(), OptError> {
    let changes = fixed_changes(old, new);
    if changes.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = changes.iter().map(|c| format!("`{}` (was {}, asked {})", c.key, c.was, c.now)).collect();
    Err(OptError::Invalid(format!(
        "{}: {} cannot change on resume; only {} may",
        dir.display(),
        list.join(", "),
        CHANGEABLE_ON_RESUME.join(", ")
    )))
}

/// Whether a finished run continues under `cfg`: it stopped because it ran out of steps (not
/// because its best score fell below `loss_threshold`) and `cfg` asks for more steps.
pub fn reopens(s: &RunState, cfg: &OptimizeConfig) -> bool {
    let reached_threshold = s.best.as_ref().is_some_and(|b| b.score < cfg.loss_threshold);
    s.finished && s.step < cfg.steps && !reached_threshold
}

/// What earlier sessions of a resumed run did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Previous {
    /// Steps already taken.
    pub steps: usize,
    /// Seconds those steps took.
    pub seconds: f64,
}

/// Before resuming the run in `dir` with `cfg`: refuse fixed changes, record the new config,
/// and reopen a finished run that [`reopens`]. Reopening drops the saved final evaluations
/// (`evals/`), which belong to the old top prompts.
pub fn prepare(dir: &Path, cfg: &OptimizeConfig) -> Result<Previous, OptError> {
    let old = load_config(dir)?;
    check_resumable(dir, &old, cfg)?;
    if old != *cfg {
        state::write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    }
    if !dir.join("state.json").exists() {
        return Ok(Previous::default());
    }
    let mut s = state::load(dir)?;
    if reopens(&s, cfg) {
        s.finished = false;
        state::save(dir, &s)?;
        let evals = dir.join("evals");
        if evals.exists() {
            std::fs::remove_dir_all(&evals).map_err(|e| OptError::io(&evals, e))?;
        }
    }
    let seconds = s.history.iter().map(|h| h.seconds.total()).sum();
    Ok(Previous { steps: s.step, seconds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::ScoredPrompt;

    fn finished_at(step: usize, best: f32) -> RunState {
        let mut s = RunState::new(vec![1, 2, 3]);
        s.step = step;
        s.finished = true;
        s.best = Some(ScoredPrompt { score: best, ids: vec![1], text: "x".into(), step: 0 });
        s
    }

    #[test]
    fn only_the_listed_settings_may_change() {
        let old = OptimizeConfig::default();
        let mut new = old.clone();
        new.steps += 5;
        new.max_reasoning_tokens = 64;
        new.batch_size = 3;
        new.eval_limit = 7;
        new.final_eval = !new.final_eval;
        assert_eq!(fixed_changes(&old, &new), []);
        new.seed = old.seed + 1;
        new.model = "other-model".into();
        let keys: Vec<String> = fixed_changes(&old, &new).into_iter().map(|c| c.key).collect();
        assert_eq!(keys, ["model", "seed"]);
        // A search setting no flag exposes is fixed too: the default is "fixed".
        let mut thr = old.clone();
        thr.loss_threshold = 0.5;
        assert_eq!(fixed_changes(&old, &thr)[0].key, "loss_threshold");
    }

    #[test]
    fn the_error_names_the_folder_the_key_and_both_values() {
        let old = OptimizeConfig::default();
        let new = OptimizeConfig { seed: old.seed + 3, ..old.clone() };
        let err = check_resumable(Path::new("runs/x"), &old, &new).unwrap_err().to_string();
        let want = format!("runs/x: `seed` (was {}, asked {}) cannot change on resume", old.seed, old.seed + 3);
        assert!(err.starts_with(&want), "{err}");
    }

    #[test]
    fn a_finished_run_reopens_only_for_more_steps_below_the_threshold() {
        let cfg = OptimizeConfig { steps: 10, loss_threshold: 0.1, ..OptimizeConfig::default() };
        assert!(reopens(&finished_at(5, 0.5), &cfg), "ran out of steps, more asked");
        assert!(!reopens(&finished_at(10, 0.5), &cfg), "no more steps asked");
        assert!(!reopens(&finished_at(5, 0.05), &cfg), "stopped early: the threshold was reached");
        let mut running = finished_at(5, 0.5);
        running.finished = false;
        assert!(!reopens(&running, &cfg), "an unfinished run needs no reopening");
    }

    #[test]
    fn prepare_reopens_drops_stale_evaluations_and_records_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let old = OptimizeConfig { steps: 5, ..OptimizeConfig::default() };
        state::write_atomic(&dir.path().join("config.toml"), old.to_toml().as_bytes()).unwrap();
        state::save(dir.path(), &finished_at(5, 0.5)).unwrap();
        std::fs::create_dir(dir.path().join("evals")).unwrap();
        let more = OptimizeConfig { steps: 8, ..old.clone() };
        let prev = prepare(dir.path(), &more).unwrap();
        assert_eq!(prev.steps, 5);
        assert!(!state::load(dir.path()).unwrap().finished);
        assert!(!dir.path().join("evals").exists());
        assert_eq!(load_config(dir.path()).unwrap().steps, 8);
        // A fixed change is refused before anything is written.
        let other = OptimizeConfig { seed: 99, ..more.clone() };
        assert!(prepare(dir.path(), &other).is_err());
        assert_eq!(load_config(dir.path()).unwrap().seed, more.seed);
    }
}
