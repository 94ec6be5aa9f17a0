//! The run manifest from the binary's side: what it was built from, where the model and data
//! files are; and `greater verify DIR` and `greater replay DIR`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use greater_opt::manifest::{self, FileHash, Manifest, SplitIds, utc_stamp};
use greater_opt::optimize::{OptimizeConfig, StepEvent};
use greater_tasks::{Source, Task};

/// The commit this binary was built from (set by build.rs; `unknown` outside a git checkout).
const GIT_COMMIT: &str = env!("GREATER_GIT_COMMIT");

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The task's data files: its data file(s) under the data root, a custom file and its spec.
fn data_files(task: &Task, cfg: &OptimizeConfig) -> Vec<PathBuf> {
    let root = super::data_root().unwrap_or_default();
    match &task.spec.source {
        Source::Bbh { file } => vec![root.join(file)],
        Source::Gsm8k { train_file, test_file } | Source::Folio { train_file, test_file, .. } => {
            vec![root.join(train_file), root.join(test_file)]
        }
        Source::Custom { file } => {
            let spec = cfg.task_spec.clone().unwrap_or_else(|| file.with_extension("toml"));
            std::iter::once(file.clone()).chain(spec.is_file().then_some(spec)).collect()
        }
        _ => Vec::new(),
    }
}

/// The files of a model: the file itself, or a folder's weights, config and tokenizer files.
fn model_files(model: &Path) -> Result<Vec<PathBuf>> {
    if !model.is_dir() {
        return Ok(model.is_file().then(|| model.to_path_buf()).into_iter().collect());
    }
    let keep = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        name.ends_with(".safetensors") || name.ends_with(".json") || name.ends_with(".gguf")
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(model)
        .with_context(|| format!("listing {}", model.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && keep(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Worker threads of the CPU pool (`RAYON_NUM_THREADS`, else every core).
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Write `manifest.json` for a new run; on resume, keep the first one and warn about any file
/// that changed since.
pub fn start(dir: &Path, cfg: &OptimizeConfig, task: &Task, model: &Path, resume: bool) -> Result<()> {
    let big: u64 = model_files(model)?.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    if big > 1 << 30 {
        eprintln!("hashing {:.1} GB of model files for {}", big as f64 / 1e9, dir.join(manifest::FILE).display());
    }
    if resume && dir.join(manifest::FILE).exists() {
        let old = manifest::read(dir)?;
        for m in manifest::verify(&old) {
            eprintln!("warning: resuming with other inputs than the run started with: {m}");
        }
        return Ok(());
    }
    let model = model_files(model)?.iter().map(|p| FileHash::of(p)).collect::<Result<_, _>>()?;
    let data = data_files(task, cfg).iter().map(|p| FileHash::of(p)).collect::<Result<_, _>>()?;
    let started = now();
    let m = Manifest {
        greater_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: GIT_COMMIT.into(),
        backend: greater_models::device::backend_name().into(),
        device: format!(
            "{}, {} threads, {:?}",
            greater_bench::machine::cpu_name().unwrap_or_else(|| "unknown CPU".into()),
            rayon_threads(),
            greater_models::default_device()
        ),
        model,
        data,
        examples: SplitIds::of(task),
        config: cfg.clone(),
        started_unix: started,
        started_utc: utc_stamp(started),
        finished_unix: None,
        finished_utc: None,
    };
    manifest::write(dir, &m).with_context(|| format!("writing the manifest in {}", dir.display()))
}

/// Stamp the end of the run into its manifest (and the config it ended with).
pub fn finish(dir: &Path, cfg: &OptimizeConfig) -> Result<()> {
    let Ok(mut m) = manifest::read(dir) else { return Ok(()) };
    let end = now();
    (m.finished_unix, m.finished_utc, m.config) = (Some(end), Some(utc_stamp(end)), cfg.clone());
    manifest::write(dir, &m).with_context(|| format!("writing the manifest in {}", dir.display()))
}

/// Flags of `greater verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A run folder (with manifest.json).
    pub dir: PathBuf,
}

/// Run `greater verify`: re-hash the model and data files of a run.
pub fn verify(args: VerifyArgs) -> Result<()> {
    let m = manifest::read(&args.dir)?;
    let files: Vec<&FileHash> = m.model.iter().chain(&m.data).collect();
    let bad = manifest::verify(&m);
    for f in &files {
        let state = if bad.iter().any(|b| b.to_string().starts_with(&f.path.display().to_string())) {
            "MISMATCH"
        } else {
            "ok"
        };
        println!("{state:8} {} ({} bytes, sha256 {})", f.path.display(), f.bytes, &f.sha256[..16]);
    }
    println!(
        "run of greater {} ({}), {} train / {} dev / {} test examples, started {} UTC",
        m.greater_version,
        m.git_commit,
        m.examples.train.len(),
        m.examples.dev.len(),
        m.examples.test.len(),
        m.started_utc
    );
    if !bad.is_empty() {
        let list: Vec<String> = bad.iter().map(ToString::to_string).collect();
        bail!("{} of {} files differ from the manifest:\n  {}", bad.len(), files.len(), list.join("\n  "));
    }
    Ok(())
}

/// Flags of `greater replay`.
#[derive(Debug, Args)]
#[command(after_help = "\
The run is made again from its manifest's config (same model, task, seed and settings) into a
new folder, then every step's decision is compared: the candidates, the chosen token, its score
(to 1e-5) and the prompt. Exit status 1 when any differs. A replay on another backend or
machine can differ in a near-tie of float rounding; the first differing step is named.")]
pub struct ReplayArgs {
    /// The run folder to replay (with manifest.json, or at least config.toml).
    pub dir: PathBuf,
    /// Where the replay goes [default: DIR-replay].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run `greater replay`.
pub fn replay(args: ReplayArgs) -> Result<()> {
    let cfg = match manifest::read(&args.dir) {
        Ok(m) => {
            for bad in manifest::verify(&m) {
                eprintln!("warning: {bad}");
            }
            m.config
        }
        Err(_) => greater_opt::optimize::load_config(&args.dir)?,
    };
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("{}-replay", args.dir.display())));
    if out.join("state.json").exists() {
        bail!("{} already holds a run; choose another --out", out.display());
    }
    super::optimize::execute(cfg, out.clone(), false)?;
    let (old, new) = (events(&args.dir)?, events(&out)?);
    match first_difference(&old, &new) {
        None => {
            println!("replay in {}: all {} steps make the same decisions", out.display(), old.len());
            Ok(())
        }
        Some(why) => bail!("replay in {} differs from {}: {why}", out.display(), args.dir.display()),
    }
}

fn events(dir: &Path) -> Result<Vec<StepEvent>> {
    let path = dir.join("events.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}: line {}", path.display(), i + 1)))
        .collect()
}

/// Where two runs' decisions first differ, if they do.
pub fn first_difference(a: &[StepEvent], b: &[StepEvent]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} steps against {}", a.len(), b.len()));
    }
    a.iter().zip(b).find_map(|(x, y)| {
        let why = if x.candidates != y.candidates {
            "the candidates"
        } else if x.chosen != y.chosen {
            "the chosen token"
        } else if (x.score - y.score).abs() > 1e-5 {
            "the winner's score"
        } else if x.prompt_ids != y.prompt_ids {
            "the prompt"
        } else {
            return None;
        };
        Some(format!("step {}: {why} ({:?} → {:?})", x.step, x.chosen_text, y.chosen_text))
    })
}
