//! `greater sweep`: independent optimisation jobs over tasks × models × seeds, each one run folder
//! keyed by its config's hash, run here with N workers or handed to Slurm or Ray. No scheduler of
//! our own: every job is one `greater optimize` process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use greater_opt::manifest::text_hash;
use greater_opt::optimize::OptimizeConfig;

/// Flags of `greater sweep`.
#[derive(Debug, Args)]
#[command(after_help = "\
DIR/sweep.json lists the jobs; DIR/jobs/<name>.toml is each job's config and DIR/runs/<name> its
run folder, where <name> ends in the first 12 hex digits of the config's SHA-256, so a changed
setting makes a new job and an unchanged one finds its folder again. A finished job (report.json
present) is skipped; an interrupted one is resumed. DIR/commands.txt holds one command per job.

  greater sweep --tasks bbh/navigate,bbh/date_understanding --models qwen2.5-coder-0.5b-instruct \\
      --seeds 0,1,2 --config base.toml --out sweeps/a --workers 2
  greater sweep ... --emit slurm   # sbatch sweeps/a/sweep.slurm  (a job array over commands.txt)
  greater sweep ... --emit ray     # python sweeps/a/sweep_ray.py (one Ray task per command)")]
pub struct SweepArgs {
    /// Tasks, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub tasks: Vec<String>,
    /// Models, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub models: Vec<String>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub seeds: Vec<u64>,
    /// Base config for every job (TOML, as `greater optimize --config`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The sweep folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Jobs run at once on this machine.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Write a Slurm job-array script or a Ray job script instead of running.
    #[arg(long, value_parser = ["slurm", "ray"])]
    pub emit: Option<String>,
}

/// One job of the sweep.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Job {
    /// `<task>-<model>-s<seed>-<hash>`.
    pub name: String,
    /// Its config file.
    pub config: PathBuf,
    /// Its run folder.
    pub dir: PathBuf,
}

impl Job {
    /// `runs/<name>.log` (not `with_extension`: names hold dots, e.g. `qwen2.5`).
    fn log(&self) -> PathBuf {
        self.dir.with_file_name(format!("{}.log", self.name))
    }

    fn finished(&self) -> bool {
        self.dir.join("report.json").exists()
    }

    /// The command that runs (or resumes) it.
    fn args(&self) -> Vec<String> {
        let d = self.dir.display().to_string();
        if self.dir.join("state.json").exists() {
            vec!["optimize".into(), "--resume".into(), d]
        } else {
            vec!["optimize".into(), "--config".into(), self.config.display().to_string(), "--out".into(), d]
        }
    }
}

fn slug(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    s.trim_matches('_').to_string()
}

/// Lay the jobs out: their configs written, the sweep manifest and the command list.
pub fn plan(args: &SweepArgs) -> Result<Vec<Job>> {
    let base = match &args.config {
        Some(f) => OptimizeConfig::from_toml_file(f).with_context(|| format!("reading {}", f.display()))?,
        None => OptimizeConfig::default(),
    };
    let jobs_dir = args.out.join("jobs");
    std::fs::create_dir_all(&jobs_dir).with_context(|| format!("creating {}", jobs_dir.display()))?;
    let mut jobs = Vec::new();
    for task in &args.tasks {
        for model in &args.models {
            for &seed in &args.seeds {
                let cfg = OptimizeConfig { task: task.clone(), model: model.clone(), seed, ..base.clone() };
                cfg.validate().with_context(|| format!("the job {task} × {model} × seed {seed}"))?;
                let text = cfg.to_toml();
                let model_name = Path::new(model).file_name().map_or(model.clone(), |n| n.to_string_lossy().into());
                let name = format!("{}-{}-s{seed}-{}", slug(task), slug(&model_name), text_hash(&text));
                let config = jobs_dir.join(format!("{name}.toml"));
                std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
                jobs.push(Job { dir: args.out.join("runs").join(&name), config, name });
            }
        }
    }
    let manifest = args.out.join("sweep.json");
    std::fs::write(&manifest, serde_json::to_string_pretty(&jobs)? + "\n")
        .with_context(|| format!("writing {}", manifest.display()))?;
    let exe = std::env::current_exe().context("finding the greater binary")?;
    let lines: Vec<String> = jobs.iter().map(|j| shell_line(&exe, &j.args(), &j.log())).collect();
    let commands = args.out.join("commands.txt");
    std::fs::write(&commands, lines.join("\n") + "\n").with_context(|| format!("writing {}", commands.display()))?;
    Ok(jobs)
}

/// `'exe' 'arg'… > 'log' 2>&1`, single-quoted for a POSIX shell.
fn shell_line(exe: &Path, args: &[String], log: &Path) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut parts = vec![q(&exe.display().to_string())];
    parts.extend(args.iter().map(|a| q(a)));
    format!("{} > {} 2>&1", parts.join(" "), q(&log.display().to_string()))
}

/// Run `greater sweep`.
pub fn run(args: SweepArgs) -> Result<()> {
    let jobs = plan(&args)?;
    match args.emit.as_deref() {
        Some("slurm") => return emit(&args.out, "sweep.slurm", &slurm(&args.out, jobs.len())),
        Some("ray") => return emit(&args.out, "sweep_ray.py", &ray(&args.out)),
        _ => {}
    }
    let todo: Vec<&Job> = jobs.iter().filter(|j| !j.finished()).collect();
    println!(
        "{} jobs: {} finished (skipped), {} to run with {} worker(s)",
        jobs.len(),
        jobs.len() - todo.len(),
        todo.len(),
        args.workers
    );
    let exe = std::env::current_exe().context("finding the greater binary")?;
    let mut running: Vec<(&Job, Child)> = Vec::new();
    let mut failed = Vec::new();
    let mut queue = todo.into_iter();
    loop {
        while running.len() < args.workers.max(1) {
            let Some(job) = queue.next() else { break };
            std::fs::create_dir_all(job.dir.parent().expect("runs/<name>")).context("creating the runs folder")?;
            let log = std::fs::File::create(job.log()).context("creating the job log")?;
            let child = Command::new(&exe)
                .args(job.args())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting job {}", job.name))?;
            println!("started {}", job.name);
            running.push((job, child));
        }
        if running.is_empty() {
            break;
        }
        // Wait for the oldest; the others go on meanwhile.
        let (job, mut child) = running.remove(0);
        let status = child.wait().with_context(|| format!("waiting for job {}", job.name))?;
        if status.success() {
            println!("finished {}", job.name);
        } else {
            println!("FAILED {} ({status}); see {}", job.name, job.log().display());
            failed.push(job.name.clone());
        }
    }
    if !failed.is_empty() {
        bail!("{} of the jobs failed: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

fn emit(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// A Slurm job array: task `i` runs line `i + 1` of commands.txt.
fn slurm(dir: &Path, n: usize) -> String {
    let commands = dir.join("commands.txt");
    format!(
        "#!/bin/bash\n\
         # One greater optimize per array task; finished jobs are skipped by re-running `greater sweep`.\n\
         #SBATCH --job-name=greater-sweep\n\
         #SBATCH --array=0-{}\n\
         #SBATCH --output={}/slurm-%A_%a.out\n\
         set -euo pipefail\n\
         line=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" '{}')\n\
         eval \"$line\"\n",
        n.saturating_sub(1),
        dir.display(),
        commands.display()
    )
}

/// A Ray job script: one remote task per line of commands.txt.
fn ray(dir: &Path) -> String {
    format!(
        "# One Ray task per greater optimize command; submit with `ray job submit -- python {}`.\n\
         import subprocess\n\nimport ray\n\n\n\
         @ray.remote(num_cpus=1)\n\
         def run(line):\n    return subprocess.run(line, shell=True).returncode\n\n\n\
         if __name__ == \"__main__\":\n    ray.init()\n\
         \x20   with open({:?}) as f:\n        lines = [l.strip() for l in f if l.strip()]\n\
         \x20   codes = ray.get([run.remote(l) for l in lines])\n\
         \x20   print(f\"{{codes.count(0)}} of {{len(codes)}} jobs succeeded\")\n\
         \x20   raise SystemExit(0 if all(c == 0 for c in codes) else 1)\n",
        dir.join("sweep_ray.py").display(),
        dir.join("commands.txt").display().to_string()
    )
}
