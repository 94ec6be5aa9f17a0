//! `cargo xtask <command>`: developer workflows as code (matklad's xtask pattern).
//!
//! xtask depends on no workspace crate; it runs `cargo` and the `greater` binary.
//!
//! - `ci`: what `.ci/run` runs: `cargo fmt --check`, clippy with `-D warnings`, build everything
//!   once, fetch the models the tests need, run all tests, tidy.
//! - `tidy`: file-length and crate-layering checks (also run as a test).
//! - `fetch-data [--from DIR]`: put the BBH/GSM8K/FOLIO data where `GREATER_DATA` points.
//! - `bench models|grad|bbh|compare|step|peers [ARGS]`: end-to-end benchmarks through `greater bench`, reports in `target/bench/`.
//! - `fuzz [--target T] [--inputs N] [ARGS]`: the stable-Rust fuzz driver (`greater-fuzz`) over every parser.
//! - `gpu-bundle [--cuda]`: stripped GPU builds of `greater` in `target/gpu-bundle/` (≤ 64 MiB each).

mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args.split_first().map(|(c, r)| (c.as_str(), r)).unwrap_or(("help", &[]));
    match cmd {
        "ci" => ci(rest),
        "tidy" => tidy_report(),
        "fetch-data" => fetch_data(rest),
        "bench" => bench(rest),
        "check-gpu" => check_gpu(),
        "fuzz" => fuzz(rest),
        "gpu-bundle" => gpu_bundle(rest),
        _ => {
            println!("{}", HELP);
            Ok(())
        }
    }
}

const HELP: &str = "\
usage: cargo xtask <command>

  ci                     fmt --check, clippy -D warnings, build once, fetch the models the tests
                         need (all three with GREATER_REQUIRE_MODELS=1, else SmolLM2), run the
                         whole test suite, tidy (what .ci/run runs; honours GREATER_DATA,
                         GREATER_CACHE, GREATER_MODELS)
  tidy                   check file lengths and crate layering
  fetch-data [--from D]  copy the datasets (bbh/, gsm8k/, folio/) from D into $GREATER_DATA
                         (default D: ../shared/datasets)
  check-gpu              `cargo check` the cuda and wgpu builds (no GPU needed)
  fuzz [--target T] [--inputs N] [--seed S]
                         mutated and generated inputs to every parser (GGUF, dequantisers,
                         safetensors, config.json, tokenizer.json, chat templates, task files,
                         tasks.toml); fails on a panic, a hang (> 5 s) or an allocation over the
                         cap. `cargo xtask fuzz --help` lists every flag, `--list` the targets
  gpu-bundle [--cuda]    build the stripped wgpu binary (and with --cuda the CUDA one, which
                         needs cubecl's LLVM download) into target/gpu-bundle/, ready to carry to
                         the device machine with scripts/gpu-check.sh; fails over 64 MiB
  bench models           prefill/decode throughput, GEMM GFLOP/s and copy bandwidth
  bench grad             forward+backward time of the token gradient
  bench bbh [FLAGS]      optimize + eval per task, one table (see `greater bench bbh --help`)
  bench compare          every model's bbh report in target/bench, side by side
  bench peers [FLAGS]    bench models next to HF transformers and llama.cpp, with ratios
                         (see `greater bench peers --help`; GREATER_PEER_PYTHON, GREATER_LLAMA_BIN)";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// The `greater` binary built by the test profile (the same artifacts as the tests).
fn greater_bin() -> PathBuf {
    root().join("target/release/greater")
}

/// The lint gates of `ci`, cheapest first, so a formatting slip fails in seconds.
const LINT_COMMANDS: &[&[&str]] =
    &[&["fmt", "--all", "--check"], &["clippy", "--release", "--workspace", "--all-targets", "--", "-D", "warnings"]];

fn ci(extra: &[String]) -> Result<()> {
    for args in LINT_COMMANDS {
        run(cargo().args(*args))?;
    }
    // One cargo command line for everything, so burn is compiled exactly once (clippy's check
    // artifacts are separate from the test build's).
    run(cargo().args(["test", "--release", "--workspace", "--no-run"]))?;
    for m in ci_models(std::env::var("GREATER_MODELS").ok(), models_required()) {
        run(Command::new(greater_bin()).args(["models", "fetch", &m]))?;
    }
    run(cargo().args(["test", "--release", "--workspace"]).args(extra))?;
    tidy_report()
}

/// Every registry model some test reads. With `GREATER_REQUIRE_MODELS=1` a missing one fails its
/// tests, so `ci` fetches them all; `greater-models/tests/hub_registry.rs` keeps this list equal to
/// the registry (xtask depends on no workspace crate, so it cannot ask the registry itself).
const TEST_MODELS: &[&str] = &["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"];

/// The default model, all `ci` fetches when models are optional (their tests skip instead).
const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

/// Whether `GREATER_REQUIRE_MODELS=1`, the same rule as `greater-testkit` (exactly `1`).
fn models_required() -> bool {
    std::env::var("GREATER_REQUIRE_MODELS").is_ok_and(|v| v == "1")
}

/// The models `ci` fetches: the comma-separated `GREATER_MODELS` when set, else every test model
/// when they are required, else the default model alone.
fn ci_models(listed: Option<String>, required: bool) -> Vec<String> {
    match listed {
        Some(list) => list.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect(),
        None if required => TEST_MODELS.iter().map(|m| m.to_string()).collect(),
        None => vec![DEFAULT_MODEL.to_string()],
    }
}

/// Run tidy and print its problems; an error when there are any.
fn tidy_report() -> Result<()> {
    let problems = tidy::check(&root())?;
    if problems.is_empty() {
        println!("tidy: ok");
        return Ok(());
    }
    problems.iter().for_each(|p| eprintln!("tidy: {p}"));
    bail!("{} tidy problem(s)", problems.len())
}

fn fetch_data(args: &[String]) -> Result<()> {
    let from = match args {
        [flag, dir] if flag == "--from" => PathBuf::from(dir),
        [] => root().join("../shared/datasets"),
        _ => bail!("usage: cargo xtask fetch-data [--from DIR]"),
    };
    let to = std::env::var_os("GREATER_DATA").map(PathBuf::from).unwrap_or_else(|| root().join("target/data"));
    if !from.join("bbh").is_dir() {
        bail!(
            "{} has no bbh/ folder; point --from at a folder holding bbh/*.json, gsm8k/*.jsonl and folio/*.jsonl",
            from.display()
        );
    }
    if from.canonicalize().ok() == to.canonicalize().ok() {
        println!("data already at {}", to.display());
        return Ok(());
    }
    let mut n = 0;
    for sub in ["bbh", "gsm8k", "folio"] {
        let src = from.join(sub);
        if !src.is_dir() {
            eprintln!("warning: {} missing; skipped", src.display());
            continue;
        }
        std::fs::create_dir_all(to.join(sub))?;
        for entry in std::fs::read_dir(&src)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), to.join(sub).join(entry.file_name()))
                    .with_context(|| format!("copying {}", entry.path().display()))?;
                n += 1;
            }
        }
    }
    println!("copied {n} files into {}; set GREATER_DATA={}", to.display(), to.display());
    Ok(())
}

fn bench(args: &[String]) -> Result<()> {
    run(cargo().args(["test", "--release", "--workspace", "--no-run"]))?;
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    run(Command::new(greater_bin()).arg("bench").args(args).arg("--out").arg(&out))
}

/// `greater-fuzz` with the given flags (release build; work folder `target/fuzz`).
fn fuzz(args: &[String]) -> Result<()> {
    let mut c = cargo();
    c.args(["run", "--release", "-q", "-p", "greater-fuzz", "--"]);
    if !args.iter().any(|a| a == "--work") {
        c.arg("--work").arg(root().join("target/fuzz"));
    }
    run(c.args(args))
}

/// `cargo check` the GPU backends. cubecl's CUDA backend pulls an LLVM bundle whose build script
/// downloads LLVM; `DOCS_RS=1` makes that script skip the download, which is enough to type-check
/// (not to link) on a machine without internet access.
fn check_gpu() -> Result<()> {
    let dir = root().join("target/check-gpu");
    for feature in ["cuda", "wgpu"] {
        let features = format!("greater-cli/{feature}");
        let mut c = cargo();
        c.args(["check", "-p", "greater-cli", "--no-default-features", "--features", &features]);
        c.env("CARGO_TARGET_DIR", &dir).env("DOCS_RS", "1");
        run(&mut c)?;
    }
    Ok(())
}

/// The most one device call can carry (the device tool's limit), for the whole bundle.
const BUNDLE_LIMIT: u64 = 64 << 20;

/// Build `greater` for each GPU backend in its own target folder (so the CPU build is not
/// disturbed), stripped and without debug info, and copy it to `target/gpu-bundle/greater-<backend>`.
fn gpu_bundle(args: &[String]) -> Result<()> {
    let backends: &[&str] = match args {
        [] => &["wgpu"],
        [flag] if flag == "--cuda" => &["wgpu", "cuda"],
        _ => bail!("usage: cargo xtask gpu-bundle [--cuda]"),
    };
    let out = root().join("target/gpu-bundle");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for backend in backends {
        let dir = root().join(format!("target/gpu-{backend}"));
        let features = format!("greater-cli/{backend}");
        let mut c = cargo();
        c.args(["build", "--release", "-p", "greater-cli", "--no-default-features", "--features", &features]);
        c.env("CARGO_TARGET_DIR", &dir)
            .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
            .env("CARGO_PROFILE_RELEASE_STRIP", "symbols");
        run(&mut c)?;
        let bin = out.join(format!("greater-{backend}"));
        std::fs::copy(dir.join("release/greater"), &bin).with_context(|| format!("copying to {}", bin.display()))?;
        let size = std::fs::metadata(&bin)?.len();
        check_bundle_size(&bin, size)?;
        println!("{} ({:.1} MiB)", bin.display(), size as f64 / (1 << 20) as f64);
    }
    Ok(())
}

/// An error naming the file when `size` passes [`BUNDLE_LIMIT`].
fn check_bundle_size(path: &Path, size: u64) -> Result<()> {
    if size > BUNDLE_LIMIT {
        bail!(
            "{} is {:.1} MiB, over the {} MiB a device call can carry; strip it further or leave a backend out",
            path.display(),
            size as f64 / (1 << 20) as f64,
            BUNDLE_LIMIT >> 20
        );
    }
    Ok(())
}

#[cfg(test)]
mod bundle_tests {
    #[test]
    fn bundles_over_64_mib_are_refused_by_name() {
        let p = std::path::Path::new("target/gpu-bundle/greater-wgpu");
        assert!(super::check_bundle_size(p, 64 << 20).is_ok());
        let err = super::check_bundle_size(p, (64 << 20) + 1).unwrap_err().to_string();
        assert!(err.contains("greater-wgpu") && err.contains("over the 64 MiB"), "{err}");
    }
}

#[cfg(test)]
mod ci_model_tests {
    use super::{DEFAULT_MODEL, TEST_MODELS, ci_models};

    #[test]
    fn required_models_mean_every_test_model_is_fetched() {
        assert_eq!(ci_models(None, true), TEST_MODELS);
        assert_eq!(ci_models(None, false), [DEFAULT_MODEL]);
    }

    #[test]
    fn a_listed_set_wins_over_the_defaults() {
        assert_eq!(
            ci_models(Some(" gemma3-270m, ,smollm2-135m-instruct".into()), true),
            ["gemma3-270m", "smollm2-135m-instruct"]
        );
    }
}
