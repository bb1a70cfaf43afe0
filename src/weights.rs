//! Weights on disk: reading and writing safetensors state dicts, and loading them into parameter arenas.
//!
//! A state dict is read whole into host memory ([`StateDict`]): floating-point tensors (F32, F16, BF16, F64)
//! become f32, integer tensors (I64, I32, and the smaller integer and bool types) become i64. Keys are normalised
//! so that checkpoints saved from wrapped models load into the bare torchvision names: leading `state_dict.`,
//! `module.` (DataParallel), `backbone.`, `encoder.` and `model.` are stripped, repeatedly.
//!
//! Loading into an arena ([`load_table`], [`load_counters`]) is strict about shapes (a mismatch is an
//! [`Error::ShapeMismatch`] naming the file, the key and both shapes: this is how a file for another architecture
//! shows up) and lenient about presence: keys the model has but the file lacks are listed in
//! [`LoadReport::missing`], keys the file has but nobody consumed in [`LoadReport::unexpected`]. The caller decides
//! which of those are fatal.
//!
//! Batch-norm `num_batches_tracked` counters are reported separately: a counter absent from the file is left at its
//! current value and listed in [`LoadReport::missing_counters`], never in `missing` (files written by PyTorch < 0.4.1
//! have no counters, and they do not change the forward pass).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

/// Host values of one tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl HostData {
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::I64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `"F32"` or `"I64"`, as safetensors spells them.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            HostData::F32(_) => "F32",
            HostData::I64(_) => "I64",
        }
    }
}

/// A tensor in host memory, in PyTorch's contiguous order.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
}

impl HostTensor {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Self {
        HostTensor { shape: shape.to_vec(), data: HostData::F32(data) }
    }
    pub fn i64(shape: &[usize], data: Vec<i64>) -> Self {
        HostTensor { shape: shape.to_vec(), data: HostData::I64(data) }
    }
    /// An i64 scalar of shape `[]`, as PyTorch stores `num_batches_tracked`.
    pub fn scalar_i64(v: i64) -> Self {
        HostTensor { shape: vec![], data: HostData::I64(vec![v]) }
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Where a state-dict entry came from: its key in the file before normalisation, and its dtype there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub name: String,
    pub dtype: String,
}

/// The tensors of one safetensors file, under normalised keys.
#[derive(Clone, Debug)]
pub struct StateDict {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, HostTensor>,
    /// The file's `__metadata__` (empty when it has none).
    pub metadata: BTreeMap<String, String>,
    /// Per normalised key: the key and dtype as stored in the file.
    pub origin: BTreeMap<String, Origin>,
}

impl StateDict {
    pub fn get(&self, key: &str) -> Option<&HostTensor> {
        self.tensors.get(key)
    }
    pub fn len(&self) -> usize {
        self.tensors.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
    fn err(&self, reason: impl Into<String>) -> Error {
        Error::Weights { path: self.path.clone(), reason: reason.into() }
    }
}

/// Prefixes stripped (repeatedly) from the front of every key.
pub const STRIPPED_PREFIXES: [&str; 5] = ["state_dict.", "module.", "backbone.", "encoder.", "model."];

/// The key a tensor is matched under: `module.backbone.layer1.0.conv1.weight` -> `layer1.0.conv1.weight`.
pub fn normalize_key(key: &str) -> &str {
    let mut k = key;
    'outer: loop {
        for p in STRIPPED_PREFIXES {
            if let Some(rest) = k.strip_prefix(p) {
                if !rest.is_empty() {
                    k = rest;
                    continue 'outer;
                }
            }
        }
        return k;
    }
}

fn dtype_name(d: Dtype) -> String {
    format!("{d:?}")
}

/// Converts the little-endian bytes of one tensor to host values.
fn convert(view: &TensorView<'_>) -> std::result::Result<HostData, String> {
    let b = view.data();
    fn le<const K: usize, T>(b: &[u8], f: impl Fn([u8; K]) -> T) -> Vec<T> {
        b.chunks_exact(K).map(|c| f(c.try_into().expect("chunks_exact yields K bytes"))).collect()
    }
    Ok(match view.dtype() {
        Dtype::F32 => HostData::F32(le(b, f32::from_le_bytes)),
        Dtype::F64 => HostData::F32(le(b, |c| f64::from_le_bytes(c) as f32)),
        Dtype::F16 => HostData::F32(le(b, |c| half::f16::from_le_bytes(c).to_f32())),
        Dtype::BF16 => HostData::F32(le(b, |c| half::bf16::from_le_bytes(c).to_f32())),
        Dtype::I64 => HostData::I64(le(b, i64::from_le_bytes)),
        Dtype::I32 => HostData::I64(le(b, |c| i32::from_le_bytes(c) as i64)),
        Dtype::I16 => HostData::I64(le(b, |c| i16::from_le_bytes(c) as i64)),
        Dtype::I8 => HostData::I64(b.iter().map(|&v| v as i8 as i64).collect()),
        Dtype::U32 => HostData::I64(le(b, |c| u32::from_le_bytes(c) as i64)),
        Dtype::U16 => HostData::I64(le(b, |c| u16::from_le_bytes(c) as i64)),
        Dtype::U8 | Dtype::BOOL => HostData::I64(b.iter().map(|&v| v as i64).collect()),
        other => return Err(format!("dtype {other:?} is not supported (use F32, F16, BF16, F64 or an integer type)")),
    })
}

/// Reads a safetensors file into host memory under normalised keys.
pub fn read_state_dict(path: &Path) -> Result<StateDict> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_state_dict(path, &bytes)
}

/// [`read_state_dict`] on bytes already in memory; `path` only names the source in errors.
pub fn parse_state_dict(path: &Path, bytes: &[u8]) -> Result<StateDict> {
    let werr = |reason: String| Error::Weights { path: path.to_path_buf(), reason };
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| werr(format!("not a valid safetensors file ({e}); is it truncated, or saved with torch.save instead of safetensors?")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| werr(format!("not a valid safetensors file ({e})")))?;
    let metadata: BTreeMap<String, String> =
        meta.metadata().as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();

    let mut sd = StateDict { path: path.to_path_buf(), tensors: BTreeMap::new(), metadata, origin: BTreeMap::new() };
    let mut names: Vec<(String, TensorView<'_>)> = st.tensors();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in names {
        let key = normalize_key(&name).to_string();
        if let Some(prev) = sd.origin.get(&key) {
            return Err(sd.err(format!("keys '{}' and '{}' both become '{key}' once the wrapper prefixes are stripped", prev.name, name)));
        }
        let data = convert(&view).map_err(|r| sd.err(format!("tensor '{name}': {r}")))?;
        let shape = view.shape().to_vec();
        if data.len() != shape.iter().product::<usize>() {
            return Err(sd.err(format!("tensor '{name}': shape {shape:?} does not match its {} stored values", data.len())));
        }
        sd.origin.insert(key.clone(), Origin { name: name.clone(), dtype: dtype_name(view.dtype()) });
        sd.tensors.insert(key, HostTensor { shape, data });
    }
    Ok(sd)
}

/// Serialises tensors (F32 and I64) to safetensors bytes.
pub fn serialize_safetensors(tensors: &[(String, HostTensor)], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::Invalid(format!("cannot write safetensors: {reason}"));
    let mut seen = std::collections::BTreeSet::new();
    let mut bufs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if !seen.insert(name.as_str()) {
            return Err(bad(format!("tensor name '{name}' appears twice")));
        }
        if t.numel() != t.data.len() {
            return Err(bad(format!("tensor '{name}' has shape {:?} but {} values", t.shape, t.data.len())));
        }
        let (dtype, bytes) = match &t.data {
            HostData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            HostData::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        };
        bufs.push((name.clone(), dtype, t.shape.clone(), bytes));
    }
    let mut views = Vec::with_capacity(bufs.len());
    for (name, dtype, shape, bytes) in &bufs {
        let v = TensorView::new(*dtype, shape.clone(), bytes).map_err(|e| bad(format!("tensor '{name}': {e}")))?;
        views.push((name.as_str(), v));
    }
    let info: Option<HashMap<String, String>> =
        if metadata.is_empty() { None } else { Some(metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect()) };
    safetensors::tensor::serialize(views, info).map_err(|e| bad(e.to_string()))
}

/// Writes bytes to `path` atomically: to `<path>.tmp` first, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Writes F32 / I64 tensors to a safetensors file that `safetensors.torch.load_file` reads; atomic (see
/// [`write_atomic`]). `num_batches_tracked` counters go in as [`HostTensor::scalar_i64`].
pub fn write_safetensors(path: &Path, tensors: &[(String, HostTensor)], metadata: &BTreeMap<String, String>) -> Result<()> {
    let bytes = serialize_safetensors(tensors, metadata).map_err(|e| match e {
        Error::Invalid(r) => Error::Weights { path: path.to_path_buf(), reason: r },
        e => e,
    })?;
    write_atomic(path, &bytes)
}

/// What loading a state dict into a model did.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Keys copied into an arena (parameters, running statistics, counters).
    pub loaded: Vec<String>,
    /// Keys the model has and the file lacks (counters excluded).
    pub missing: Vec<String>,
    /// `num_batches_tracked` counters the file lacks; they kept their previous value.
    pub missing_counters: Vec<String>,
    /// Keys in the file that nothing consumed (filled by [`LoadReport::finish`]).
    pub unexpected: Vec<String>,
}

impl LoadReport {
    /// Fills `unexpected` with the keys of `sd` that were not loaded.
    pub fn finish(&mut self, sd: &StateDict) {
        let loaded: std::collections::HashSet<&str> = self.loaded.iter().map(String::as_str).collect();
        self.unexpected = sd.tensors.keys().filter(|k| !loaded.contains(k.as_str())).cloned().collect();
    }
}

/// `a, b, c, ... and 12 more`.
pub fn abbreviate(names: &[String], max: usize) -> String {
    let mut s = names.iter().take(max).map(String::as_str).collect::<Vec<_>>().join(", ");
    if names.len() > max {
        s.push_str(&format!(", ... and {} more", names.len() - max));
    }
    s
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loaded {} tensors, {} missing, {} unexpected", self.loaded.len(), self.missing.len(), self.unexpected.len())?;
        if !self.missing_counters.is_empty() {
            write!(f, ", {} num_batches_tracked counters absent (left unchanged)", self.missing_counters.len())?;
        }
        if !self.missing.is_empty() {
            write!(f, "\n  missing: {}", abbreviate(&self.missing, 8))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "\n  unexpected: {}", abbreviate(&self.unexpected, 8))?;
        }
        Ok(())
    }
}

/// Shapes equal, treating a scalar `[]` and a one-element `[1]` as the same.
pub fn shapes_match(a: &[usize], b: &[usize]) -> bool {
    let scalar = |s: &[usize]| s.is_empty() || s == [1];
    a == b || (scalar(a) && scalar(b))
}

/// Copies every entry of `table` found in `sd` into `host` (the arena, in table order); entries not in the file
/// are listed in `report.missing` and left untouched. A shape mismatch or an integer tensor where floats are
/// expected is an error naming the file and the key.
pub fn load_table(sd: &StateDict, table: &crate::params::Table, host: &mut [f32], report: &mut LoadReport) -> Result<()> {
    if host.len() != table.len {
        return Err(Error::Invalid(format!("load_table: arena has {} values, the table needs {}", host.len(), table.len)));
    }
    for e in &table.entries {
        let Some(t) = sd.tensors.get(&e.name) else {
            report.missing.push(e.name.clone());
            continue;
        };
        if !shapes_match(&t.shape, &e.shape) {
            return Err(Error::ShapeMismatch { path: sd.path.clone(), key: e.name.clone(), expected: e.shape.clone(), found: t.shape.clone() });
        }
        match &t.data {
            HostData::F32(v) => host[e.range.clone()].copy_from_slice(v),
            HostData::I64(_) => {
                let dtype = sd.origin.get(&e.name).map(|o| o.dtype.as_str()).unwrap_or("I64");
                return Err(sd.err(format!("tensor '{}' has integer dtype {dtype}, but the model expects floating-point values", e.name)));
            }
        }
        report.loaded.push(e.name.clone());
    }
    Ok(())
}

/// Loads integer counters (`num_batches_tracked`), one per name; `names` are full keys such as
/// `layer1.0.bn1.num_batches_tracked`. A counter absent from the file keeps its value in `out` and is listed in
/// `report.missing_counters`. The stored tensor must hold one value (shape `[]` or `[1]`); integer or float.
pub fn load_counters(sd: &StateDict, names: &[String], out: &mut [i64], report: &mut LoadReport) -> Result<()> {
    if names.len() != out.len() {
        return Err(Error::Invalid(format!("load_counters: {} names but {} slots", names.len(), out.len())));
    }
    for (name, slot) in names.iter().zip(out.iter_mut()) {
        let Some(t) = sd.tensors.get(name) else {
            report.missing_counters.push(name.clone());
            continue;
        };
        if !shapes_match(&t.shape, &[]) {
            return Err(Error::ShapeMismatch { path: sd.path.clone(), key: name.clone(), expected: vec![], found: t.shape.clone() });
        }
        *slot = match &t.data {
            HostData::I64(v) => v[0],
            HostData::F32(v) => v[0] as i64,
        };
        report.loaded.push(name.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Init, Table};

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fgssl-weights-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("w.safetensors")
    }

    /// Builds a raw safetensors file with arbitrary dtypes (the writer only emits F32/I64).
    fn raw_file(entries: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let views: Vec<(&str, TensorView<'_>)> = entries.iter().map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap())).collect();
        safetensors::tensor::serialize(views, None).unwrap()
    }

    #[test]
    fn roundtrip_with_i64_scalar_and_metadata() {
        let path = tmp("roundtrip");
        let tensors = vec![
            ("conv1.weight".to_string(), HostTensor::f32(&[2, 1, 1, 2], vec![1.0, -2.5, 3.25, f32::MIN_POSITIVE])),
            ("bn1.num_batches_tracked".to_string(), HostTensor::scalar_i64(123_456_789_012)),
            ("bn1.running_mean".to_string(), HostTensor::f32(&[2], vec![0.1, 0.2])),
        ];
        let mut meta = BTreeMap::new();
        meta.insert("arch".to_string(), "resnet18".to_string());
        write_safetensors(&path, &tensors, &meta).unwrap();
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        assert!(!PathBuf::from(tmp_name).exists(), "temporary file must be renamed away");

        let sd = read_state_dict(&path).unwrap();
        assert_eq!(sd.len(), 3);
        for (name, t) in &tensors {
            assert_eq!(sd.get(name).unwrap(), t, "{name}");
        }
        assert_eq!(sd.get("bn1.num_batches_tracked").unwrap().shape, Vec::<usize>::new());
        assert_eq!(sd.origin["bn1.num_batches_tracked"].dtype, "I64");
        assert_eq!(sd.metadata.get("arch").map(String::as_str), Some("resnet18"));
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }

    #[test]
    fn duplicate_names_rejected_on_write() {
        let t = HostTensor::f32(&[1], vec![0.0]);
        let err = serialize_safetensors(&[("a".into(), t.clone()), ("a".into(), t)], &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("'a'"), "{err}");
    }

    #[test]
    fn prefixes_are_stripped_repeatedly() {
        assert_eq!(normalize_key("module.backbone.layer1.0.conv1.weight"), "layer1.0.conv1.weight");
        assert_eq!(normalize_key("state_dict.model.encoder.fc.bias"), "fc.bias");
        assert_eq!(normalize_key("conv1.weight"), "conv1.weight");
        assert_eq!(normalize_key("head.module.x"), "head.module.x");
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let bytes = raw_file(&[
            ("state_dict.module.conv1.weight", Dtype::F32, vec![1], f32s(&[1.0])),
            ("backbone.fc.bias", Dtype::F32, vec![1], f32s(&[2.0])),
        ]);
        let sd = parse_state_dict(Path::new("x.safetensors"), &bytes).unwrap();
        assert_eq!(sd.tensors.keys().collect::<Vec<_>>(), ["conv1.weight", "fc.bias"]);
        assert_eq!(sd.origin["conv1.weight"].name, "state_dict.module.conv1.weight");
    }

    #[test]
    fn colliding_keys_are_an_error_naming_both() {
        let one = 1.0f32.to_le_bytes().to_vec();
        let bytes = raw_file(&[("module.conv1.weight", Dtype::F32, vec![1], one.clone()), ("conv1.weight", Dtype::F32, vec![1], one)]);
        let err = parse_state_dict(Path::new("dup.safetensors"), &bytes).unwrap_err().to_string();
        assert!(err.contains("dup.safetensors") && err.contains("'module.conv1.weight'") && err.contains("'conv1.weight'"), "{err}");
    }

    #[test]
    fn half_precision_and_integers_are_converted() {
        let vals = [1.0f32, -0.5, 3.140625, 65504.0];
        let bf: Vec<u8> = vals.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect();
        let hf: Vec<u8> = vals.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
        let df: Vec<u8> = vals.iter().flat_map(|&v| (v as f64).to_le_bytes()).collect();
        let i32s: Vec<u8> = [7i32, -3].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = raw_file(&[
            ("a", Dtype::BF16, vec![2, 2], bf),
            ("b", Dtype::F16, vec![4], hf),
            ("c", Dtype::F64, vec![4], df),
            ("d", Dtype::I32, vec![2], i32s),
        ]);
        let sd = parse_state_dict(Path::new("h.safetensors"), &bytes).unwrap();
        let bf_expect: Vec<f32> = vals.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect();
        assert_eq!(sd.get("a").unwrap(), &HostTensor::f32(&[2, 2], bf_expect));
        assert_eq!(sd.get("b").unwrap(), &HostTensor::f32(&[4], vals.to_vec()));
        assert_eq!(sd.get("c").unwrap(), &HostTensor::f32(&[4], vals.to_vec()));
        assert_eq!(sd.get("d").unwrap(), &HostTensor::i64(&[2], vec![7, -3]));
        assert_eq!(sd.origin["a"].dtype, "BF16");
    }

    fn small_table() -> Table {
        let mut t = Table::default();
        t.add("conv1.weight", &[2, 1, 1, 1], Init::Const(0.0));
        t.add("bn1.weight", &[2], Init::Const(1.0));
        t.add("bn1.bias", &[2], Init::Const(0.0));
        t
    }

    #[test]
    fn load_table_reports_missing_and_unexpected() {
        let mut tensors = BTreeMap::new();
        tensors.insert("conv1.weight".to_string(), HostTensor::f32(&[2, 1, 1, 1], vec![5.0, 6.0]));
        tensors.insert("bn1.weight".to_string(), HostTensor::f32(&[2], vec![7.0, 8.0]));
        tensors.insert("bn1.num_batches_tracked".to_string(), HostTensor::scalar_i64(42));
        tensors.insert("head.weight".to_string(), HostTensor::f32(&[1], vec![0.0]));
        let sd = StateDict { path: "m.safetensors".into(), tensors, metadata: BTreeMap::new(), origin: BTreeMap::new() };
        let table = small_table();
        let mut host = vec![-1.0; table.len];
        let mut report = LoadReport::default();
        load_table(&sd, &table, &mut host, &mut report).unwrap();
        let mut counters = vec![0, 9];
        load_counters(&sd, &["bn1.num_batches_tracked".into(), "bn2.num_batches_tracked".into()], &mut counters, &mut report).unwrap();
        report.finish(&sd);
        assert_eq!(host, [5.0, 6.0, 7.0, 8.0, -1.0, -1.0]);
        assert_eq!(counters, [42, 9]);
        assert_eq!(report.missing, ["bn1.bias"]);
        assert_eq!(report.missing_counters, ["bn2.num_batches_tracked"]);
        assert_eq!(report.unexpected, ["head.weight"]);
        let text = report.to_string();
        assert!(text.contains("loaded 3 tensors, 1 missing, 1 unexpected") && text.contains("bn1.bias") && text.contains("head.weight"), "{text}");
    }

    #[test]
    fn shape_mismatch_names_file_key_and_shapes() {
        let mut tensors = BTreeMap::new();
        tensors.insert("conv1.weight".to_string(), HostTensor::f32(&[2, 1, 3, 3], vec![0.0; 18]));
        let sd = StateDict { path: "other_arch.safetensors".into(), tensors, metadata: BTreeMap::new(), origin: BTreeMap::new() };
        let table = small_table();
        let mut host = vec![0.0; table.len];
        let err = load_table(&sd, &table, &mut host, &mut LoadReport::default()).unwrap_err();
        assert!(matches!(err, Error::ShapeMismatch { .. }));
        let text = err.to_string();
        assert!(
            text.contains("other_arch.safetensors")
                && text.contains("conv1.weight")
                && text.contains("[2, 1, 3, 3]")
                && text.contains("[2, 1, 1, 1]"),
            "{text}"
        );
    }

    #[test]
    fn scalar_and_one_element_shapes_are_equal() {
        let mut tensors = BTreeMap::new();
        tensors.insert("s".to_string(), HostTensor::f32(&[], vec![3.0]));
        tensors.insert("c".to_string(), HostTensor::i64(&[1], vec![4]));
        let sd = StateDict { path: "s.safetensors".into(), tensors, metadata: BTreeMap::new(), origin: BTreeMap::new() };
        let mut table = Table::default();
        table.add("s", &[1], Init::Const(0.0));
        let mut host = vec![0.0];
        let mut report = LoadReport::default();
        load_table(&sd, &table, &mut host, &mut report).unwrap();
        let mut c = [0i64];
        load_counters(&sd, &["c".into()], &mut c, &mut report).unwrap();
        assert_eq!((host[0], c[0]), (3.0, 4));
    }

    #[test]
    fn truncated_and_garbage_files_are_clear_errors() {
        let path = tmp("truncated");
        write_safetensors(&path, &[("w".into(), HostTensor::f32(&[64], vec![1.0; 64]))], &BTreeMap::new()).unwrap();
        let full = std::fs::read(&path).unwrap();
        for cut in [0, 3, 8, 20, full.len() - 1] {
            std::fs::write(&path, &full[..cut]).unwrap();
            let err = read_state_dict(&path).unwrap_err().to_string();
            assert!(err.contains("w.safetensors") && err.contains("not a valid safetensors file"), "cut {cut}: {err}");
        }
        std::fs::write(&path, b"PK\x03\x04 this is a zip, as torch.save writes").unwrap();
        let err = read_state_dict(&path).unwrap_err().to_string();
        assert!(err.contains("w.safetensors") && err.contains("torch.save"), "{err}");
        let missing = path.with_file_name("nope.safetensors");
        let err = read_state_dict(&missing).unwrap_err().to_string();
        assert!(err.contains("nope.safetensors"), "{err}");
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }
}
