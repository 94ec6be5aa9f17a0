//! Test support for every crate of the workspace (a dev-dependency only; plain std, no burn).
//!
//! One place for what integration tests need and used to copy into each file:
//! - where cached models, golden data and datasets live ([`cache_dir`], [`golden_root`],
//!   [`data_root`]);
//! - the skip rule: a test whose model or data is absent says so and passes, unless
//!   `GREATER_REQUIRE_MODELS=1` ([`models_required`]), which makes it fail ([`unavailable`]);
//! - one family of `assert_close` helpers that report the worst index and both values;
//! - a counting allocator for limit tests ([`alloc`]).

pub mod alloc;

use std::path::PathBuf;

/// The environment variable that turns a skipped real-model test into a failure.
pub const REQUIRE_MODELS_VAR: &str = "GREATER_REQUIRE_MODELS";

/// Whether missing models and golden data fail the test: `GREATER_REQUIRE_MODELS=1` exactly
/// (`0`, empty or unset mean "skip with a note").
pub fn models_required() -> bool {
    required_value(std::env::var(REQUIRE_MODELS_VAR).ok().as_deref())
}

/// Say that `what` is unavailable: a panic when models are required, else a note on stderr.
/// Callers return early (skip) after it.
pub fn unavailable(what: &str) {
    assert!(!models_required(), "{REQUIRE_MODELS_VAR}=1 but {what}");
    eprintln!("note: {what}; skipping");
}

/// `path` when it exists; else [`unavailable`] (`"<path> is missing"`) and `None`.
pub fn existing(path: PathBuf) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    unavailable(&format!("{} is missing", path.display()));
    None
}

/// `$GREATER_CACHE`, or else `<user cache dir>/greater` (where `greater models fetch` writes).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("GREATER_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("greater")))
        .unwrap_or_else(|| PathBuf::from(".cache/greater"))
}

/// Where the cached GGUF of registry model `name` lives (whether or not it exists).
pub fn cached_model(name: &str) -> PathBuf {
    cache_dir().join("models").join(format!("{name}.gguf"))
}

/// `$GREATER_GOLDEN`, or else `shared/golden` next to the repository.
pub fn golden_root() -> PathBuf {
    std::env::var_os("GREATER_GOLDEN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden"))
}

/// `$GREATER_DATA`, or else `shared/datasets` next to the repository.
pub fn data_root() -> PathBuf {
    std::env::var_os("GREATER_DATA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"))
}

/// Assert `|got - want| <= tol` everywhere, reporting the worst index and both values.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    if let Some(msg) = close_failure(what, got, want, tol, |_| 1.0) {
        panic!("{msg}");
    }
}

/// Assert `|got - want| <= tol · |want|` everywhere (relative), reporting the worst index.
#[track_caller]
pub fn assert_close_rel(what: &str, got: &[f32], want: &[f64], tol: f64) {
    if let Some(msg) = close_failure(what, got, want, tol, |w| w.abs().max(1e-12)) {
        panic!("{msg}");
    }
}

/// [`assert_close`] for two f32 slices (e.g. two paths of our own code).
#[track_caller]
pub fn assert_close_f32(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let want: Vec<f64> = want.iter().map(|&w| f64::from(w)).collect();
    assert_close(what, got, &want, f64::from(tol));
}

/// The failure message of a comparison, or `None` when every element is within `tol · scale`.
/// A NaN anywhere counts as the worst difference.
fn close_failure(what: &str, got: &[f32], want: &[f64], tol: f64, scale: impl Fn(f64) -> f64) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("{what}: length {} != {}", got.len(), want.len()));
    }
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (f64::from(g) - w).abs() / scale(w);
        let d = if d.is_nan() { f64::INFINITY } else { d };
        if worst.is_none_or(|(_, m)| d > m) {
            worst = Some((i, d));
        }
    }
    let (i, d) = worst?;
    (d > tol).then(|| format!("{what}: max diff {d:.3e} > {tol:.1e} at {i}: got {} want {}", got[i], want[i]))
}

fn required_value(v: Option<&str>) -> bool {
    v == Some("1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_means_required() {
        assert!(required_value(Some("1")));
        for v in [None, Some(""), Some("0"), Some("yes")] {
            assert!(!required_value(v), "{v:?}");
        }
    }

    #[test]
    fn close_failure_names_the_worst_index_and_both_values() {
        assert_eq!(close_failure("x", &[1.0, 2.0], &[1.0, 2.0005], 1e-3, |_| 1.0), None);
        let msg = close_failure("x", &[1.0, 2.0, 3.0], &[1.0, 2.5, 3.1], 1e-3, |_| 1.0).unwrap();
        assert!(msg.starts_with("x: max diff 5.000e-1 > 1.0e-3 at 1: got 2 want 2.5"), "{msg}");
        let nan = close_failure("y", &[f32::NAN, 1.0], &[0.0, 1.0], 1.0, |_| 1.0).unwrap();
        assert!(nan.contains("at 0: got NaN"), "{nan}");
        assert!(close_failure("z", &[1.0], &[], 1.0, |_| 1.0).unwrap().contains("length 1 != 0"));
    }

    #[test]
    fn relative_tolerance_scales_with_the_reference() {
        // 1% off at 100 is within 2%; 1 off at 1 is not.
        assert_eq!(close_failure("r", &[101.0], &[100.0], 0.02, |w| w.abs().max(1e-12)), None);
        assert!(close_failure("r", &[2.0], &[1.0], 0.02, |w| w.abs().max(1e-12)).is_some());
    }
}
