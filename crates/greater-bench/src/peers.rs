//! `greater bench peers`: the workloads of `greater bench models` through greater and through
//! two peers on the same machine, one after another in one run, with greater's ratio to each:
//!
//! - HF transformers (torch, f32, CPU): the script `peers_hf.py`, run by the Python of a venv that
//!   has `torch`, `transformers` and `gguf` (`--python` or `GREATER_PEER_PYTHON`);
//! - llama.cpp on the GGUF as shipped (quantised): `llama-bench` for the prefill and
//!   `llama-batched-bench` for decoding, from the folder `--llama-bin` or `GREATER_LLAMA_BIN`
//!   names (llama.cpp's `build/bin`).
//!
//! Workloads: prefill of one 512-token prompt; greedy decode of 128 new tokens after a 32-token
//! prompt at batch 1 and 8, stop tokens off; the same thread count everywhere. A peer that is
//! not installed is reported as missing, with the reason, and its ratios are left out. Install
//! steps: benches/README.md. Not part of CI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Common, machine, write_json};

/// Prompt length of the prefill measurement.
pub const PREFILL_TOKENS: usize = 512;
/// Prompt length before decoding.
pub const PROMPT_TOKENS: usize = 32;
/// New tokens per decode run.
pub const NEW_TOKENS: usize = 128;
/// Decode batch sizes.
pub const BATCHES: [usize; 2] = [1, 8];

/// The goals of the CPU-throughput issue: (workload, peer, least ratio greater/peer).
pub const GOALS: &[(Workload, PeerKind, f64)] = &[
    (Workload::Prefill, PeerKind::Hf, 1.0),
    (Workload::Decode(8), PeerKind::Hf, 1.5),
    (Workload::Decode(8), PeerKind::Llama, 0.6),
    (Workload::Decode(1), PeerKind::Llama, 0.5),
];

const HF_SCRIPT: &str = include_str!("peers_hf.py");

/// `greater bench peers`.
#[derive(Debug, clap::Args)]
pub struct PeersArgs {
    /// A registry name or a GGUF path; repeat for several.
    #[arg(long = "model", value_name = "NAME", default_values_t = ["smollm2-135m-instruct".to_string(), "qwen2.5-coder-0.5b-instruct".to_string()])]
    pub models: Vec<String>,
    #[command(flatten)]
    pub common: Common,
    /// Timed runs of each measurement, after one warm-up (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Python with torch, transformers and gguf (a venv's `bin/python`).
    #[arg(long, env = "GREATER_PEER_PYTHON", default_value = "python3")]
    pub python: String,
    /// Folder holding `llama-bench` and `llama-batched-bench` (llama.cpp's `build/bin`).
    #[arg(long, env = "GREATER_LLAMA_BIN", value_name = "DIR")]
    pub llama_bin: Option<PathBuf>,
    /// Take greater's figures from this `models.json` instead of running `greater bench models`.
    #[arg(long, value_name = "FILE")]
    pub greater_report: Option<PathBuf>,
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Workload {
    /// Tokens/s of one 512-token prompt.
    Prefill,
    /// Tokens/s of greedy decoding at this batch size.
    Decode(usize),
}

/// Which peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PeerKind {
    /// HF transformers.
    Hf,
    /// llama.cpp.
    Llama,
}

/// Tokens/s of each workload that was measured.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Figures {
    /// Prefill tokens/s.
    pub prefill_tok_s: Option<f64>,
    /// Decode tokens/s by batch size.
    pub decode_tok_s: BTreeMap<usize, f64>,
}

impl Figures {
    /// The figure of `w`, if measured.
    pub fn get(&self, w: Workload) -> Option<f64> {
        match w {
            Workload::Prefill => self.prefill_tok_s,
            Workload::Decode(b) => self.decode_tok_s.get(&b).copied(),
        }
    }
}

/// One peer on one model: its figures, or why there are none.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Peer {
    /// What was measured.
    pub figures: Option<Figures>,
    /// Why nothing (or not everything) was measured.
    pub missing: Option<String>,
}

impl Peer {
    fn missing(why: String) -> Self {
        Self { figures: None, missing: Some(why) }
    }
}

/// One model's row group.
#[derive(Debug, serde::Serialize)]
pub struct ModelPeers {
    /// The name given.
    pub name: String,
    /// The file measured.
    pub path: PathBuf,
    /// greater's figures (from `bench models`).
    pub greater: Figures,
    /// Prefill over the GEMM rate of the model's largest matmul (from `bench models`).
    pub prefill_fraction_of_gemm: Option<f64>,
    /// Batch-1 decode bound from streaming the f32 weights once (from `bench models`).
    pub decode_floor_b1: Option<f64>,
    /// HF transformers.
    pub hf: Peer,
    /// llama.cpp.
    pub llama: Peer,
}

/// The report, written to `peers.json`.
#[derive(Debug, serde::Serialize)]
pub struct PeersReport {
    /// Threads given to every side.
    pub threads: usize,
    /// `/proc/loadavg` at start.
    pub load_start: Option<[f64; 3]>,
    /// `/proc/loadavg` at the end.
    pub load_end: Option<[f64; 3]>,
    /// One entry per model.
    pub models: Vec<ModelPeers>,
}

/// Run greater, then each peer, per model; print the table and write `peers.json`.
pub fn run(args: &PeersArgs) -> Result<()> {
    let threads = machine::threads().rayon;
    let load_start = machine::load_average();
    let greater = match &args.greater_report {
        Some(p) => read_json(p)?,
        None => run_greater(args, threads)?,
    };
    let hf_ready = hf_available(&args.python);
    let mut models = Vec::new();
    for name in &args.models {
        let path = super::resolve_model(name)?;
        let g = greater_figures(&greater, name)
            .with_context(|| format!("greater's report has no model `{name}`; rerun without --greater-report"))?;
        eprintln!("{name}: HF transformers");
        let hf = match &hf_ready {
            Ok(()) => run_hf(args, &path, threads),
            Err(why) => Peer::missing(why.clone()),
        };
        eprintln!("{name}: llama.cpp");
        let llama = run_llama(args.llama_bin.as_deref(), &path, threads, args.runs);
        models.push(ModelPeers {
            name: name.clone(),
            path,
            greater: g.0,
            prefill_fraction_of_gemm: g.1,
            decode_floor_b1: g.2,
            hf,
            llama,
        });
    }
    let report = PeersReport { threads, load_start, load_end: machine::load_average(), models };
    print!("{}", render(&report));
    let path = write_json(&args.common.out, "peers.json", &report)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// `greater bench models` on the same models and threads, as a child process.
fn run_greater(args: &PeersArgs, threads: usize) -> Result<Value> {
    let dir = args.common.out.join("peers-greater");
    let exe = std::env::current_exe().context("locating the greater binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "models", "--no-breakdown", "--batch", "1,8"])
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--runs")
        .arg(args.runs.to_string())
        .arg("--out")
        .arg(&dir);
    for m in &args.models {
        cmd.arg("--model").arg(m);
    }
    eprintln!("greater: bench models");
    let status = cmd.status().context("starting `greater bench models`")?;
    if !status.success() {
        bail!("`greater bench models` failed ({status})");
    }
    read_json(&dir.join("models.json"))
}

/// greater's figures of `name` in a `models.json`: figures, prefill fraction of GEMM, b1 floor.
pub fn greater_figures(report: &Value, name: &str) -> Option<(Figures, Option<f64>, Option<f64>)> {
    let m = report["models"].as_array()?.iter().find(|m| m["name"] == name)?;
    let mut f = Figures { prefill_tok_s: m["prefill"]["tokens_per_s"].as_f64(), ..Figures::default() };
    for d in m["decode"].as_array().into_iter().flatten() {
        if let (Some(b), Some(t)) = (d["batch"].as_u64(), d["tokens_per_s"].as_f64()) {
            f.decode_tok_s.insert(b as usize, t);
        }
    }
    Some((f, m["prefill"]["fraction_of_gemm"].as_f64(), m["decode_floor_b1"].as_f64()))
}

/// `Ok` when `python` imports torch, transformers and gguf; else the reason.
fn hf_available(python: &str) -> std::result::Result<(), String> {
    let out = Command::new(python).args(["-c", "import torch, transformers, gguf"]).output();
    match out {
        Err(e) => Err(format!("no `{python}` ({e}); set --python or GREATER_PEER_PYTHON to a venv's python")),
        Ok(o) if !o.status.success() => Err(format!(
            "`{python}` cannot import torch, transformers and gguf ({}); install them in a venv (benches/README.md) \
             and pass its python with --python or GREATER_PEER_PYTHON",
            last_line(&String::from_utf8_lossy(&o.stderr))
        )),
        Ok(_) => Ok(()),
    }
}

fn run_hf(args: &PeersArgs, model: &Path, threads: usize) -> Peer {
    if model.extension().is_none_or(|e| e != "gguf") {
        return Peer::missing(format!("the HF script loads GGUF files; {} is not one", model.display()));
    }
    let script = args.common.out.join("peers_hf.py");
    if let Err(e) = std::fs::write(&script, HF_SCRIPT) {
        return Peer::missing(format!("writing {}: {e}", script.display()));
    }
    let batches = BATCHES.map(|b| b.to_string()).join(",");
    let out = Command::new(&args.python)
        .arg(&script)
        .arg("--gguf")
        .arg(model)
        .args(["--threads", &threads.to_string(), "--runs", &args.runs.to_string()])
        .args(["--prefill-tokens", &PREFILL_TOKENS.to_string(), "--prompt-tokens", &PROMPT_TOKENS.to_string()])
        .args(["--new-tokens", &NEW_TOKENS.to_string(), "--batches", &batches])
        .output();
    match out {
        Err(e) => Peer::missing(format!("starting {}: {e}", args.python)),
        Ok(o) if !o.status.success() => Peer::missing(format!(
            "the HF script failed ({}): {}",
            o.status,
            last_line(&String::from_utf8_lossy(&o.stderr))
        )),
        Ok(o) => match parse_hf(&String::from_utf8_lossy(&o.stdout)) {
            Some(f) => Peer { figures: Some(f), missing: None },
            None => Peer::missing("the HF script printed no report".into()),
        },
    }
}

/// The figures on the last line of the HF script's stdout.
pub fn parse_hf(stdout: &str) -> Option<Figures> {
    let v: Value = serde_json::from_str(stdout.lines().rev().find(|l| !l.trim().is_empty())?).ok()?;
    let mut f = Figures { prefill_tok_s: v["prefill_tok_s"].as_f64(), ..Figures::default() };
    for (b, t) in v["decode"].as_object()? {
        f.decode_tok_s.insert(b.parse().ok()?, t.as_f64()?);
    }
    Some(f)
}

fn run_llama(bin: Option<&Path>, model: &Path, threads: usize, runs: usize) -> Peer {
    let Some(dir) = bin else {
        return Peer::missing(
            "no llama.cpp: pass --llama-bin or set GREATER_LLAMA_BIN to the folder with llama-bench and \
             llama-batched-bench (benches/README.md)"
                .into(),
        );
    };
    let (bench, batched) = (dir.join("llama-bench"), dir.join("llama-batched-bench"));
    for b in [&bench, &batched] {
        if !b.is_file() {
            return Peer::missing(format!("no {} (build targets llama-bench and llama-batched-bench)", b.display()));
        }
    }
    if model.extension().is_none_or(|e| e != "gguf") {
        return Peer::missing(format!("llama.cpp reads GGUF files; {} is not one", model.display()));
    }
    let t = threads.to_string();
    let mut notes = Vec::new();
    let mut f = Figures::default();
    let prefill = Command::new(&bench)
        .arg("-m")
        .arg(model)
        .args(["-t", &t, "-p", &PREFILL_TOKENS.to_string(), "-n", "0", "-r", &runs.max(1).to_string(), "-o", "json"])
        .output();
    match prefill.map(|o| parse_llama_bench(&String::from_utf8_lossy(&o.stdout), PREFILL_TOKENS)) {
        Ok(Some(v)) => f.prefill_tok_s = Some(v),
        Ok(None) => notes.push("llama-bench printed no pp512 result".to_string()),
        Err(e) => notes.push(format!("starting llama-bench: {e}")),
    }
    let npl = BATCHES.map(|b| b.to_string()).join(",");
    let ctx = (BATCHES.iter().max().copied().unwrap_or(1) * (PROMPT_TOKENS + NEW_TOKENS)).max(512);
    let decode = Command::new(&batched)
        .arg("-m")
        .arg(model)
        .args(["-t", &t, "-c", &ctx.to_string(), "-npp", &PROMPT_TOKENS.to_string()])
        .args(["-ntg", &NEW_TOKENS.to_string(), "-npl", &npl])
        .output();
    match decode.map(|o| parse_batched_bench(&String::from_utf8_lossy(&o.stdout))) {
        Ok(d) if !d.is_empty() => f.decode_tok_s = d,
        Ok(_) => notes.push("llama-batched-bench printed no table".to_string()),
        Err(e) => notes.push(format!("starting llama-batched-bench: {e}")),
    }
    Peer { figures: Some(f), missing: (!notes.is_empty()).then(|| notes.join("; ")) }
}

/// Prompt tokens/s of the `pp{prompt}` test in `llama-bench -o json` output.
pub fn parse_llama_bench(json: &str, prompt: usize) -> Option<f64> {
    let v: Value = serde_json::from_str(json.trim()).ok()?;
    v.as_array()?
        .iter()
        .find(|t| t["n_prompt"].as_u64() == Some(prompt as u64) && t["n_gen"].as_u64() == Some(0))
        .and_then(|t| t["avg_ts"].as_f64())
}

/// Generation tokens/s (`S_TG t/s`) by batch (`B`) from `llama-batched-bench`'s table.
pub fn parse_batched_bench(text: &str) -> BTreeMap<usize, f64> {
    let mut out = BTreeMap::new();
    let mut cols: Option<(usize, usize)> = None;
    for line in text.lines().filter(|l| l.trim_start().starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let (Some(b), Some(s)) = (cells.iter().position(|c| *c == "B"), cells.iter().position(|c| *c == "S_TG t/s"))
        {
            cols = Some((b, s));
            continue;
        }
        if let Some((b, s)) = cols
            && let (Some(Ok(batch)), Some(Ok(rate))) =
                (cells.get(b).map(|c| c.parse::<usize>()), cells.get(s).map(|c| c.parse::<f64>()))
        {
            out.insert(batch, rate);
        }
    }
    out
}

fn last_line(s: &str) -> String {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string()
}

/// `a / b` as `0.00×`, or `-` when either is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".into(),
    }
}

fn rate(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The Markdown table of `report`, then goal verdicts and what is missing.
pub fn render(r: &PeersReport) -> String {
    let mut s = format!("{} threads on every side\n\n", r.threads);
    s += "| model | workload | greater tok/s | HF tok/s | greater/HF | llama.cpp tok/s | greater/llama.cpp |\n";
    s += "|---|---|---|---|---|---|---|\n";
    let workloads: Vec<Workload> =
        std::iter::once(Workload::Prefill).chain(BATCHES.iter().map(|&b| Workload::Decode(b))).collect();
    for m in &r.models {
        let (hf, ll) = (m.hf.figures.as_ref(), m.llama.figures.as_ref());
        for &w in &workloads {
            let label = match w {
                Workload::Prefill => format!("prefill 1x{PREFILL_TOKENS}"),
                Workload::Decode(b) => format!("decode b{b}"),
            };
            let (g, h, l) = (m.greater.get(w), hf.and_then(|f| f.get(w)), ll.and_then(|f| f.get(w)));
            s += &format!(
                "| {} | {label} | {} | {} | {} | {} | {} |\n",
                m.name,
                rate(g),
                rate(h),
                ratio(g, h),
                rate(l),
                ratio(g, l)
            );
        }
    }
    s += "\n";
    for m in &r.models {
        for &(w, peer, least) in GOALS {
            let p = match peer {
                PeerKind::Hf => m.hf.figures.as_ref(),
                PeerKind::Llama => m.llama.figures.as_ref(),
            };
            let verdict = match (m.greater.get(w), p.and_then(|f| f.get(w))) {
                (Some(g), Some(p)) if p > 0.0 => super::verdict(g / p >= least).to_string(),
                _ => "not measured".into(),
            };
            s += &format!("goal {}: {w:?} greater/{peer:?} ≥ {least}: {verdict}\n", m.name);
        }
        if let Some(f) = m.prefill_fraction_of_gemm {
            s += &format!("{}: prefill at {:.0}% of the GEMM rate of its largest matmul\n", m.name, 100.0 * f);
        }
        if let Some(f) = m.decode_floor_b1 {
            s += &format!("{}: batch-1 f32 bandwidth floor {f:.1} tok/s\n", m.name);
        }
        for (peer, p) in [("HF transformers", &m.hf), ("llama.cpp", &m.llama)] {
            if let Some(why) = &p.missing {
                s += &format!("{}: {peer} MISSING: {why}\n", m.name);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCHED: &str = "\
main: n_kv_max = 1280, n_batch = 2048, n_ubatch = 512

|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|
|    32 |    128 |    1 |    160 |    0.061 |   524.59 |    0.735 |   174.15 |    0.796 |   201.01 |
|    32 |    128 |    8 |   1280 |    0.412 |   621.36 |    3.671 |   278.94 |    4.083 |   313.50 |
";

    #[test]
    fn reads_the_generation_rate_of_each_batch() {
        let d = parse_batched_bench(BATCHED);
        assert_eq!(d, BTreeMap::from([(1, 174.15), (8, 278.94)]));
        assert!(parse_batched_bench("no table here\n| a | b |\n").is_empty());
    }

    #[test]
    fn reads_the_prompt_rate_of_llama_bench() {
        let json = r#"[{"n_prompt": 512, "n_gen": 0, "avg_ts": 457.2},
                       {"n_prompt": 0, "n_gen": 128, "avg_ts": 170.0}]"#;
        assert_eq!(parse_llama_bench(json, 512), Some(457.2));
        assert_eq!(parse_llama_bench(json, 256), None);
        assert_eq!(parse_llama_bench("not json", 512), None);
    }

    #[test]
    fn reads_the_last_line_of_the_hf_script() {
        let out = "loading...\n{\"prefill_tok_s\": 495.0, \"decode\": {\"1\": 23.5, \"8\": 124.0}}\n";
        let f = parse_hf(out).expect("a report");
        assert_eq!(f.prefill_tok_s, Some(495.0));
        assert_eq!(f.get(Workload::Decode(8)), Some(124.0));
        assert!(parse_hf("Traceback ...\n").is_none());
    }

    #[test]
    fn reads_greaters_models_report() {
        let v: Value = serde_json::from_str(
            r#"{"models": [{"name": "m", "prefill": {"tokens_per_s": 300.0, "fraction_of_gemm": 0.8},
                "decode": [{"batch": 1, "tokens_per_s": 60.0}, {"batch": 8, "tokens_per_s": 200.0}],
                "decode_floor_b1": 90.0}]}"#,
        )
        .expect("json");
        let (f, frac, floor) = greater_figures(&v, "m").expect("model m");
        assert_eq!(
            (f.prefill_tok_s, f.get(Workload::Decode(1)), frac, floor),
            (Some(300.0), Some(60.0), Some(0.8), Some(90.0))
        );
        assert!(greater_figures(&v, "other").is_none());
    }

    #[test]
    fn missing_peers_are_named_and_their_ratios_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let llama = run_llama(Some(dir.path()), Path::new("m.gguf"), 2, 1);
        assert!(llama.missing.as_deref().is_some_and(|m| m.contains("llama-bench")), "{llama:?}");
        assert!(hf_available("/nonexistent/python").is_err());
        let greater = Figures { prefill_tok_s: Some(300.0), decode_tok_s: BTreeMap::from([(1, 60.0), (8, 200.0)]) };
        let hf = Figures { prefill_tok_s: Some(150.0), decode_tok_s: BTreeMap::from([(8, 100.0)]) };
        let report = PeersReport {
            threads: 2,
            load_start: None,
            load_end: None,
            models: vec![ModelPeers {
                name: "m".into(),
                path: "m.gguf".into(),
                greater,
                prefill_fraction_of_gemm: None,
                decode_floor_b1: None,
                hf: Peer { figures: Some(hf), missing: None },
                llama,
            }],
        };
        let text = render(&report);
        assert!(text.contains("| m | prefill 1x512 | 300.0 | 150.0 | 2.00× | - | - |"), "{text}");
        assert!(text.contains("| m | decode b8 | 200.0 | 100.0 | 2.00× | - | - |"), "{text}");
        assert!(text.contains("Prefill greater/Hf ≥ 1: ok"), "{text}");
        assert!(text.contains("Decode(8) greater/Llama ≥ 0.6: not measured"), "{text}");
        assert!(text.contains("llama.cpp MISSING"), "{text}");
    }
}
