//! Helpers for tests that run the `fgssl` binary: temporary folders and failure checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fgssl-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the built binary with `args`.
pub fn fgssl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fgssl")).args(args).output().expect("the fgssl binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails unless the command failed (with exit status `code`, when given), printed an `error: ` line mentioning
/// `needle`, and did not panic.
pub fn assert_clean_failure(o: &Output, code: Option<i32>, needle: &str) {
    let err = stderr(o);
    match code {
        Some(code) => assert_eq!(o.status.code(), Some(code), "exit status; stderr:\n{err}"),
        None => assert!(!o.status.success(), "expected failure, got success; stderr:\n{err}"),
    }
    assert!(!err.contains("panicked"), "the binary panicked:\n{err}");
    assert!(err.contains("error: "), "no 'error: ' line:\n{err}");
    assert!(err.contains(needle), "stderr does not mention '{needle}':\n{err}");
}

/// The tiny synthetic data set of the workflow tests: 2 classes x 12 images of 32x32, made in `dir/synth`.
pub fn tiny_synth(dir: &TempDir) -> String {
    let data = dir.join("synth");
    let o = fgssl(&["synth", "--out", data.to_str().unwrap(), "--classes", "2", "--per-class", "12", "--size", "32"]);
    assert!(o.status.success(), "synth failed: {}", stderr(&o));
    data.to_string_lossy().into_owned()
}

/// The tiny FG-SSL model on the CPU that the workflow tests train: ResNet-18 with 16/24-wide heads, grids 8-4-2.
pub const TINY: &[&str] = &["--arch", "resnet18", "--embed-dim", "16", "--pooled-dim", "24", "--device", "cpu", "--grids", "8,4,2"];
