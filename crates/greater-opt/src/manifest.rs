//! `manifest.json` of a run folder: what a run was made from, so it can be checked and replayed.
//!
//! It names the greater version and git commit, the backend, the model file and every data file
//! with their SHA-256, the exact examples of each split (an id per example: the first 16 hex
//! digits of the SHA-256 of its input and target), the resolved config with its seed, and when
//! the run started and finished. [`verify`] re-hashes the files; `greater replay` re-runs the
//! config and compares decisions.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::OptError;
use crate::optimize::OptimizeConfig;
use greater_tasks::{Example, Task};

/// The file name inside a run folder.
pub const FILE: &str = "manifest.json";

/// A file and its content hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileHash {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

impl FileHash {
    /// Hash `path` (streamed: the file is never held in memory whole).
    pub fn of(path: &Path) -> Result<Self, OptError> {
        let io = |e| OptError::io(path, e);
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
        }
        Ok(Self { path: path.to_path_buf(), bytes, sha256: hex(&hasher.finalize()) })
    }
}

/// The ids of the examples of each split.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitIds {
    /// Train split, in order.
    pub train: Vec<String>,
    /// Dev split, in order.
    pub dev: Vec<String>,
    /// Test split, in order.
    pub test: Vec<String>,
}

impl SplitIds {
    /// The ids of every split of `task`.
    pub fn of(task: &Task) -> Self {
        let ids = |xs: &[Example]| xs.iter().map(example_id).collect();
        Self { train: ids(&task.train), dev: ids(&task.dev), test: ids(&task.test) }
    }
}

/// What a run was made from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// `greater` version.
    pub greater_version: String,
    /// Git commit the binary was built from (`unknown` outside a checkout).
    pub git_commit: String,
    /// burn backend.
    pub backend: String,
    /// The machine: CPU model and worker threads (and the backend's device).
    #[serde(default)]
    pub device: String,
    /// The model: its file, or the files of its folder (weights, config, tokenizer); none for a
    /// model built in memory.
    pub model: Vec<FileHash>,
    /// The task's data files (none for a generated task), and a custom task's spec file.
    pub data: Vec<FileHash>,
    /// The examples of each split.
    pub examples: SplitIds,
    /// The resolved config (its `seed` is every random choice's).
    pub config: OptimizeConfig,
    /// Unix seconds and UTC stamp of the start.
    pub started_unix: u64,
    /// `YYYYMMDD-HHMMSS`, UTC.
    pub started_utc: String,
    /// When the run finished (after its report was written); `None` while it runs.
    pub finished_unix: Option<u64>,
    /// `YYYYMMDD-HHMMSS`, UTC.
    pub finished_utc: Option<String>,
}

/// A file whose hash no longer matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// It is gone or unreadable.
    Missing(PathBuf, String),
    /// Its content changed.
    Changed(PathBuf),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(p, why) => write!(f, "{}: cannot be read ({why})", p.display()),
            Self::Changed(p) => write!(f, "{}: its SHA-256 differs from the manifest's", p.display()),
        }
    }
}

/// Re-hash every file of `manifest`; the files that no longer match.
pub fn verify(manifest: &Manifest) -> Vec<Mismatch> {
    manifest
        .model
        .iter()
        .chain(&manifest.data)
        .filter_map(|want| match FileHash::of(&want.path) {
            Err(e) => Some(Mismatch::Missing(want.path.clone(), e.to_string())),
            Ok(got) if got.sha256 != want.sha256 => Some(Mismatch::Changed(want.path.clone())),
            Ok(_) => None,
        })
        .collect()
}

/// Write `manifest` into run folder `dir`.
pub fn write(dir: &Path, manifest: &Manifest) -> Result<(), OptError> {
    let path = dir.join(FILE);
    let text = serde_json::to_string_pretty(manifest).expect("manifests serialise");
    std::fs::create_dir_all(dir).map_err(|e| OptError::io(dir, e))?;
    crate::optimize::state::write_atomic(&path, (text + "\n").as_bytes())
}

/// Read the manifest of run folder `dir`.
pub fn read(dir: &Path) -> Result<Manifest, OptError> {
    let path = dir.join(FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| OptError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| OptError::BadFile { path, reason: e.to_string() })
}

/// The id of an example: 16 hex digits of the SHA-256 of its input, a unit separator, its target.
pub fn example_id(example: &Example) -> String {
    let mut h = Sha256::new();
    h.update(example.input.as_bytes());
    h.update([0x1f]);
    h.update(example.raw_target.as_bytes());
    hex(&h.finalize()[..8])
}

/// `YYYYMMDD-HHMMSS` of a Unix time, in UTC (civil-from-days, proleptic Gregorian calendar).
pub fn utc_stamp(unix: u64) -> String {
    let (days, rem) = ((unix / 86_400) as i64, unix % 86_400);
    // Howard Hinnant's algorithm: shift the epoch to 0000-03-01 so leap days fall at year end.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// 12 hex digits of the SHA-256 of `text` (a config's key in a sweep).
pub fn text_hash(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..6])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_hashes_are_sha256_and_verify_names_changed_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        std::fs::write(&a, "abc").unwrap();
        std::fs::write(&b, "x").unwrap();
        let h = FileHash::of(&a).unwrap();
        // The published SHA-256 test vector of "abc".
        assert_eq!(h.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(h.bytes, 3);
        let manifest = Manifest {
            greater_version: "0".into(),
            git_commit: "unknown".into(),
            backend: "flex".into(),
            device: "test".into(),
            model: vec![h],
            data: vec![FileHash::of(&b).unwrap()],
            examples: SplitIds::default(),
            config: OptimizeConfig::default(),
            started_unix: 86_400,
            started_utc: utc_stamp(86_400),
            finished_unix: None,
            finished_utc: None,
        };
        assert!(verify(&manifest).is_empty());
        write(dir.path(), &manifest).unwrap();
        assert_eq!(read(dir.path()).unwrap(), manifest);
        std::fs::write(&a, "abd").unwrap();
        std::fs::remove_file(&b).unwrap();
        let bad = verify(&manifest);
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0], Mismatch::Changed(a));
        assert!(matches!(&bad[1], Mismatch::Missing(p, _) if *p == b));
    }

    #[test]
    fn example_ids_tell_inputs_and_targets_apart_and_stamps_are_utc() {
        let ex = |input: &str, target: &str| Example {
            input: input.into(),
            target: target.into(),
            raw_target: target.into(),
            choices: Vec::new(),
        };
        let id = example_id(&ex("q", "a"));
        assert_eq!(id.len(), 16);
        assert_eq!(id, example_id(&ex("q", "a")));
        assert_ne!(id, example_id(&ex("qa", "")));
        assert_ne!(id, example_id(&ex("q", "b")));
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400 + 3661), "20000229-010101");
    }
}
