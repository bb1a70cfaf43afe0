//! Shared helpers for the PyTorch parity tests: fixture loading, the counter-based weight generator that
//! `scripts/make_fixtures.py` uses (so the big models' weights never have to be stored), gradient-summary helpers
//! and a scale-relative comparison. Each test file that uses them declares `mod common;`.
//!
//! The fixture schema and the weight formula are documented in the docstring of `scripts/make_fixtures.py`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fgssl::rng::{counter_u64, counter_uniform, fnv1a64};
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;

// ---- fixture files ---------------------------------------------------------------------------------------------

/// The data of one stored tensor, in its stored element type.
#[derive(Clone, Debug)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub shape: Vec<usize>,
    pub data: Data,
}

/// A loaded safetensors fixture: every tensor, plus the `__metadata__` strings.
pub struct Fixture {
    pub path: PathBuf,
    pub tensors: HashMap<String, Entry>,
    pub metadata: HashMap<String, String>,
}

/// `tests/fixtures/<file>` in this crate.
pub fn fixture_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join(file)
}

/// Loads a whole safetensors file (f32, f64 and i64 tensors; anything else panics).
pub fn load_fixture(path: impl AsRef<Path>) -> Fixture {
    let path = path.as_ref().to_path_buf();
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e} (regenerate with scripts/make_fixtures.py)", path.display()));
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap_or_else(|e| panic!("{}: bad safetensors header: {e}", path.display()));
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: bad safetensors file: {e}", path.display()));
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => Data::F32(raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
            Dtype::F64 => Data::F64(raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()),
            Dtype::I64 => Data::I64(raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()),
            other => panic!("{}: tensor {name} has unsupported dtype {other:?}", path.display()),
        };
        tensors.insert(name, Entry { shape: view.shape().to_vec(), data });
    }
    Fixture { path, tensors, metadata }
}

impl Fixture {
    fn entry(&self, key: &str) -> &Entry {
        self.tensors.get(key).unwrap_or_else(|| panic!("{}: no tensor {key:?}", self.path.display()))
    }
    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }
    pub fn shape(&self, key: &str) -> &[usize] {
        &self.entry(key).shape
    }
    /// An f32 tensor's data (panics if the tensor is stored with another dtype).
    pub fn f32(&self, key: &str) -> &[f32] {
        match &self.entry(key).data {
            Data::F32(v) => v,
            d => panic!("{}: tensor {key:?} is not f32 ({})", self.path.display(), dtype_name(d)),
        }
    }
    /// An i64 tensor's data (panics if the tensor is stored with another dtype).
    pub fn i64(&self, key: &str) -> &[i64] {
        match &self.entry(key).data {
            Data::I64(v) => v,
            d => panic!("{}: tensor {key:?} is not i64 ({})", self.path.display(), dtype_name(d)),
        }
    }
    /// Any tensor converted to f32.
    pub fn f32_vec(&self, key: &str) -> Vec<f32> {
        match &self.entry(key).data {
            Data::F32(v) => v.clone(),
            Data::F64(v) => v.iter().map(|&x| x as f32).collect(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    /// An integer tensor (geometry, indices) as usizes.
    pub fn usizes(&self, key: &str) -> Vec<usize> {
        self.i64(key).iter().map(|&v| usize::try_from(v).unwrap_or_else(|_| panic!("{key}: negative value {v}"))).collect()
    }
    /// An integer tensor (labels) as u32s.
    pub fn u32s(&self, key: &str) -> Vec<u32> {
        self.i64(key).iter().map(|&v| u32::try_from(v).unwrap_or_else(|_| panic!("{key}: value {v} out of u32 range"))).collect()
    }
    /// The single value of a one-element tensor.
    pub fn scalar(&self, key: &str) -> f32 {
        let v = self.f32_vec(key);
        assert_eq!(v.len(), 1, "{key}: expected one element, got {}", v.len());
        v[0]
    }
    /// Sorted distinct `<case>` names of the keys `<prefix>.<case>.<suffix>` (e.g. `cases("conv2d", "geom")`).
    pub fn cases(&self, prefix: &str, suffix: &str) -> Vec<String> {
        let head = format!("{prefix}.");
        let tail = format!(".{suffix}");
        let mut v: Vec<String> =
            self.tensors.keys().filter_map(|k| k.strip_prefix(&head).and_then(|r| r.strip_suffix(&tail)).map(str::to_string)).collect();
        v.sort();
        v.dedup();
        v
    }
    /// Sorted keys starting with `prefix`.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut v: Vec<String> = self.tensors.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        v.sort();
        v
    }
    /// The `state_dict` metadata of a model fixture: `(name, shape)` of every entry in torchvision's order
    /// (parameters and buffers; `num_batches_tracked` has shape `[]`).
    pub fn state_dict(&self) -> Vec<(String, Vec<usize>)> {
        let s = self.metadata.get("state_dict").unwrap_or_else(|| panic!("{}: no state_dict metadata", self.path.display()));
        let v: serde_json::Value = serde_json::from_str(s).expect("state_dict metadata is JSON");
        v.as_array()
            .expect("state_dict is a list")
            .iter()
            .map(|e| {
                let name = e[0].as_str().expect("name").to_string();
                let shape = e[1].as_array().expect("shape").iter().map(|d| d.as_u64().expect("dim") as usize).collect();
                (name, shape)
            })
            .collect()
    }
    /// PyTorch's own float32 error on `key` against the float64 reference (`torch_f32_rel_err` metadata of the
    /// model fixtures, in the `assert_close` metric): what a correct f32 engine can be expected to reach.
    pub fn torch_f32_err(&self, key: &str) -> Option<f64> {
        let s = self.metadata.get("torch_f32_rel_err")?;
        let v: serde_json::Value = serde_json::from_str(s).expect("torch_f32_rel_err metadata is JSON");
        v.get(key).and_then(|e| e.as_f64())
    }
    /// `fc_in_features` of a model fixture (512 for ResNet-18, 2048 for ResNet-50).
    pub fn fc_in_features(&self) -> usize {
        self.metadata.get("fc_in_features").and_then(|s| s.parse().ok()).expect("fc_in_features metadata")
    }
}

fn dtype_name(d: &Data) -> &'static str {
    match d {
        Data::F32(_) => "f32",
        Data::F64(_) => "f64",
        Data::I64(_) => "i64",
    }
}

// ---- generated model weights (twin of scripts/make_fixtures.py) -------------------------------------------------

/// How a state_dict entry of a torchvision ResNet is generated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FixtureKind {
    /// 4-d conv weight; fan_in = I * kh * kw.
    Conv {
        fan_in: usize,
    },
    /// `fc.weight` or `fc.bias`; fan_in = in_features.
    Linear {
        fan_in: usize,
    },
    BnWeight,
    BnBias,
    RunningMean,
    RunningVar,
    /// `num_batches_tracked`: the integer 7 (not an f32 tensor).
    BatchesTracked,
}

/// Classifies a torchvision ResNet state_dict entry. Linear biases do not carry their fan-in in their shape:
/// `fc_in_features` supplies it (512 for ResNet-18, 2048 for ResNet-50; [`Fixture::fc_in_features`]).
pub fn fixture_kind(name: &str, shape: &[usize], fc_in_features: usize) -> FixtureKind {
    let (owner, leaf) = name.rsplit_once('.').unwrap_or(("", name));
    if leaf == "num_batches_tracked" {
        return FixtureKind::BatchesTracked;
    }
    if owner == "fc" && (leaf == "weight" || leaf == "bias") {
        if leaf == "weight" {
            assert_eq!(shape.len(), 2, "{name}: fc.weight must be 2-d");
            assert_eq!(shape[1], fc_in_features, "{name}: fc.weight shape {shape:?} disagrees with fc_in_features");
        }
        return FixtureKind::Linear { fan_in: fc_in_features };
    }
    if shape.len() == 4 {
        return FixtureKind::Conv { fan_in: shape[1] * shape[2] * shape[3] };
    }
    // Batch-norm modules of torchvision ResNets: bn1, layerL.B.bnK, layerL.B.downsample.1.
    let last = owner.rsplit('.').next().unwrap_or(owner);
    let is_bn = last.starts_with("bn") || owner.ends_with("downsample.1");
    assert!(is_bn && shape.len() == 1, "no fixture rule for {name} {shape:?}");
    match leaf {
        "weight" => FixtureKind::BnWeight,
        "bias" => FixtureKind::BnBias,
        "running_mean" => FixtureKind::RunningMean,
        "running_var" => FixtureKind::RunningVar,
        _ => panic!("no fixture rule for {name} {shape:?}"),
    }
}

/// The generated value of element `i` (C-order) of a tensor of the given kind. Computed in f64 in exactly the
/// order of the Python script, then rounded to f32, so both sides agree bit for bit.
pub fn fixture_value_kind(name: &str, kind: FixtureKind, i: usize) -> f32 {
    let u = counter_uniform(fnv1a64(name.as_bytes()), i as u64);
    let v = match kind {
        FixtureKind::Conv { fan_in } => (2.0 * u - 1.0) * 3f64.sqrt() * (2.0 / fan_in as f64).sqrt(),
        FixtureKind::Linear { fan_in } => (2.0 * u - 1.0) / (fan_in as f64).sqrt(),
        FixtureKind::BnWeight => 0.5 + u,
        FixtureKind::BnBias => 0.4 * (2.0 * u - 1.0),
        FixtureKind::RunningMean => 0.3 * (2.0 * u - 1.0),
        FixtureKind::RunningVar => 0.5 + u,
        FixtureKind::BatchesTracked => 7.0,
    };
    v as f32
}

/// The generated value of element `i` of state_dict entry `name`. Works for every entry except `fc.bias`,
/// whose fan-in is not in its shape (use [`fixture_tensor_fc`] or [`fixture_value_kind`] for it).
pub fn fixture_value(name: &str, shape: &[usize], i: usize) -> f32 {
    let fan_in = if name == "fc.weight" {
        shape[1]
    } else if name == "fc.bias" {
        panic!("fixture_value: fc.bias needs the fc fan-in; use fixture_tensor_fc(name, shape, fc_in_features)")
    } else {
        0
    };
    fixture_value_kind(name, fixture_kind(name, shape, fan_in), i)
}

/// The whole generated tensor (C order) of state_dict entry `name` (every entry except `fc.bias`).
pub fn fixture_tensor(name: &str, shape: &[usize]) -> Vec<f32> {
    let numel: usize = shape.iter().product();
    (0..numel).map(|i| fixture_value(name, shape, i)).collect()
}

/// The whole generated tensor of any state_dict entry, given the model's `fc.in_features`.
pub fn fixture_tensor_fc(name: &str, shape: &[usize], fc_in_features: usize) -> Vec<f32> {
    let kind = fixture_kind(name, shape, fc_in_features);
    let numel: usize = shape.iter().product();
    (0..numel).map(|i| fixture_value_kind(name, kind, i)).collect()
}

/// Number of gradient samples stored per parameter in the model fixtures.
pub const GRAD_SAMPLES: usize = 512;

/// Flat indices at which `grad.<name>.val` samples the gradient: all of them when `numel <= 512`, else 512
/// counter-based draws (with possible repeats).
pub fn grad_idx(name: &str, numel: usize) -> Vec<usize> {
    if numel <= GRAD_SAMPLES {
        return (0..numel).collect();
    }
    let key = fnv1a64(format!("grad:{name}").as_bytes());
    (0..GRAD_SAMPLES as u64).map(|j| (counter_u64(key, j) % numel as u64) as usize).collect()
}

/// `Σ_i grad_i * (2 u_i - 1)` with `u_i = counter_uniform(fnv1a64("proj:" + name), i)`, accumulated in f64.
pub fn grad_proj(name: &str, grad: &[f32]) -> f64 {
    let key = fnv1a64(format!("proj:{name}").as_bytes());
    grad.iter().enumerate().map(|(i, &g)| g as f64 * (2.0 * counter_uniform(key, i as u64) - 1.0)).sum()
}

/// L2 norm accumulated in f64.
pub fn l2_norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

// ---- comparison ----------------------------------------------------------------------------------------------

/// Scale-relative error: `max_i |got_i - want_i| / max(max_i |want_i|, tiny)`, and the max absolute error.
pub fn rel_err(got: &[f32], want: &[f32]) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &w| m.max((w as f64).abs())).max(1e-30);
    let max_abs = got.iter().zip(want).fold(0f64, |m, (&g, &w)| {
        let d = (g as f64 - w as f64).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            m.max(d)
        }
    });
    (max_abs / scale, max_abs)
}

/// Asserts `max_i |got_i - want_i| / max(max_i |want_i|, tiny) <= rtol` (error relative to the tensor's scale).
/// On failure prints the max absolute error, that relative error and the first mismatching indices.
/// Returns the relative error so callers can report the margin. With `FGSSL_PARITY_VERBOSE` set in the
/// environment every comparison prints its error (run the tests with `--nocapture` to see them).
// `!(a <= b)` on purpose: a NaN compares false and must fail.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length {} != expected {}", got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &w| m.max((w as f64).abs())).max(1e-30);
    let (rel, max_abs) = rel_err(got, want);
    if std::env::var_os("FGSSL_PARITY_VERBOSE").is_some() {
        println!("{what}: rel err {rel:.2e} (max abs {max_abs:.2e}, scale {scale:.2e}, rtol {rtol:.0e})");
    }
    if !(rel <= rtol) {
        let tol_abs = rtol * scale;
        let bad: Vec<String> = got
            .iter()
            .zip(want)
            .enumerate()
            .filter(|(_, (&g, &w))| !((g as f64 - w as f64).abs() <= tol_abs))
            .take(8)
            .map(|(i, (g, w))| format!("[{i}] got {g:e} want {w:e}"))
            .collect();
        let n_bad = got.iter().zip(want).filter(|(&g, &w)| !((g as f64 - w as f64).abs() <= tol_abs)).count();
        panic!(
            "{what}: max abs err {max_abs:.3e}, relative to scale {scale:.3e}: {rel:.3e} > rtol {rtol:.1e}; \
             {n_bad}/{} elements off, first: {}",
            want.len(),
            bad.join(", ")
        );
    }
    rel
}

/// Asserts two f32 slices are identical bit for bit.
pub fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length {} != expected {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}: element {i}: got {g:e} ({:#010x}) want {w:e} ({:#010x})", g.to_bits(), w.to_bits());
    }
}
