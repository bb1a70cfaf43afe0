//! Train / validation / test splits of a [`Dataset`], written to `splits.json` and reloadable.
//!
//! * **Official** splits are used when every labelled sample carries one (ISIC 2018, ISIC 2017, MedMNIST). If the
//!   data set defines no validation split and `val > 0`, the validation set is carved out of the official training
//!   set by the seeded procedure below (fraction `val / (train + val)` of it), so model selection never looks at
//!   the test set. When only some labelled samples carry an official split, the official splits are ignored.
//! * **Seeded** splits otherwise (APTOS 2019, HAM10000, ImageFolder, CSV): stratified by label and grouped (all
//!   samples of a lesion or patient land in one split; a group is stratified by its majority label, ties going to
//!   the lower class index). Within each class, groups are shuffled with [`Rng`] and dealt out greedily: first one
//!   group to each split with a non-zero fraction, then each group to the split furthest below its target sample
//!   count (`fraction x samples of the class`; ties in the order train, val, test). With ungrouped data this hits
//!   every class's target to within one sample per split.
//!
//! Default fractions: train 0.6, val 0.1, test 0.3. METHOD.md §12 #10 settles on a 7:3 train:test split (the
//! FG-SSL convention for APTOS and the ISIC 2018 re-split); the validation set used for model selection (§12 #13)
//! is taken out of the 70% training side, so the test side keeps its 30%.
//!
//! The result depends only on the seed, the fractions and the samples' (id, label, group): not on the order of the
//! samples in the data set (groups are visited in sorted order of their key). Index lists come back sorted by
//! sample id. Unlabelled samples are in no split (the SSL stage may use them besides `train`).
//!
//! Errors: duplicate ids, no labelled sample, a class with no labelled sample, a class with too few samples or
//! groups to appear in every split (named), an empty split, a class missing from an official split.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde_json::{json, Value};

use super::{Dataset, Split};
use crate::error::{Error, Result};
use crate::rng::{fnv1a64, Rng};

/// The file name a run folder keeps its splits in.
pub const SPLITS_FILE: &str = "splits.json";

const SPLITS_VERSION: u64 = 1;

/// How to split when the data set has no official split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitConfig {
    pub seed: u64,
    pub train: f64,
    pub val: f64,
    pub test: f64,
}

impl Default for SplitConfig {
    /// Seed 18 (the reference's `random_state`), train 0.6 / val 0.1 / test 0.3 (see the module docs).
    fn default() -> Self {
        SplitConfig { seed: 18, train: 0.6, val: 0.1, test: 0.3 }
    }
}

impl SplitConfig {
    fn validate(&self) -> Result<()> {
        let f = [self.train, self.val, self.test];
        if f.iter().any(|x| !x.is_finite() || *x < 0.0) || self.train <= 0.0 || self.test <= 0.0 {
            return Err(Error::Invalid(format!(
                "split fractions must be finite, train and test > 0 and val >= 0; got train {}, val {}, test {}",
                self.train, self.val, self.test
            )));
        }
        if ((self.train + self.val + self.test) - 1.0).abs() > 1e-6 {
            return Err(Error::Invalid(format!(
                "split fractions must sum to 1; got train {} + val {} + test {} = {}",
                self.train,
                self.val,
                self.test,
                self.train + self.val + self.test
            )));
        }
        Ok(())
    }
}

/// Where a set of splits came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitOrigin {
    /// The data set's own train/val/test.
    Official,
    /// The data set's own train and test; val carved out of train with the seed.
    OfficialWithSeededVal,
    /// Seeded, stratified, grouped.
    Seeded,
    /// Read from a `splits.json` given by the user (its recorded origin is kept in the file).
    Loaded,
}

impl SplitOrigin {
    fn name(self) -> &'static str {
        match self {
            SplitOrigin::Official => "official",
            SplitOrigin::OfficialWithSeededVal => "official+seeded-val",
            SplitOrigin::Seeded => "seeded",
            SplitOrigin::Loaded => "loaded",
        }
    }
}

/// Indices into [`Dataset::samples`], each list sorted by sample id.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
    pub origin: SplitOrigin,
    /// The seed and fractions used (recorded as given even for official splits).
    pub config: SplitConfig,
}

impl Splits {
    pub fn get(&self, split: Split) -> &[usize] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }

    /// Writes `splits.json` (format, class names, origin, seed, fractions, per-class counts and the sample ids of
    /// each split) atomically to `path`.
    pub fn write(&self, path: &Path, dataset: &Dataset) -> Result<()> {
        let ids = |idx: &[usize]| idx.iter().map(|&i| dataset.samples[i].id.clone()).collect::<Vec<_>>();
        let counts = |idx: &[usize]| {
            let mut c = vec![0usize; dataset.class_names.len()];
            for &i in idx {
                if let Some(l) = dataset.samples[i].label {
                    c[l] += 1;
                }
            }
            c
        };
        let v = json!({
            "version": SPLITS_VERSION,
            "format": dataset.format,
            "class_names": dataset.class_names,
            "origin": self.origin.name(),
            "seed": self.config.seed,
            "fractions": { "train": self.config.train, "val": self.config.val, "test": self.config.test },
            "counts_per_class": { "train": counts(&self.train), "val": counts(&self.val), "test": counts(&self.test) },
            "train": ids(&self.train),
            "val": ids(&self.val),
            "test": ids(&self.test),
        });
        let mut text = serde_json::to_string_pretty(&v).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        text.push('\n');
        crate::weights::write_atomic(path, text.as_bytes())
    }

    /// Reads a `splits.json` written by [`Splits::write`] and maps its ids onto `dataset`. Errors name the file and:
    /// a different data set format or class list, ids the data set does not have (the first five and the count), an
    /// id listed twice, an unlabelled sample, an empty train or test split.
    pub fn load(path: &Path, dataset: &Dataset) -> Result<Splits> {
        let bad = |reason: String| Error::Invalid(format!("{}: {reason}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not a splits file: {e}")))?;
        let version = v["version"].as_u64().ok_or_else(|| bad("missing 'version'".into()))?;
        if version != SPLITS_VERSION {
            return Err(bad(format!("splits file version {version}, this build reads version {SPLITS_VERSION}")));
        }
        let format = v["format"].as_str().unwrap_or("");
        if format != dataset.format {
            return Err(bad(format!("written for data set format '{format}', but the data set is '{}'", dataset.format)));
        }
        let names: Vec<&str> = v["class_names"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if names != dataset.class_names.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(bad(format!("class names {names:?} differ from the data set's {:?}", dataset.class_names)));
        }
        let f = &v["fractions"];
        let config = SplitConfig {
            seed: v["seed"].as_u64().unwrap_or(0),
            train: f["train"].as_f64().unwrap_or(0.0),
            val: f["val"].as_f64().unwrap_or(0.0),
            test: f["test"].as_f64().unwrap_or(0.0),
        };
        let by_id: HashMap<&str, usize> = dataset.samples.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
        let mut seen = HashSet::new();
        let mut unknown = Vec::new();
        let mut lists: [Vec<usize>; 3] = Default::default();
        for (k, name) in ["train", "val", "test"].iter().enumerate() {
            let arr = v[*name].as_array().ok_or_else(|| bad(format!("missing list '{name}'")))?;
            for id in arr {
                let id = id.as_str().ok_or_else(|| bad(format!("'{name}' holds a non-string id {id}")))?;
                match by_id.get(id) {
                    None => unknown.push(id),
                    Some(&i) => {
                        if !seen.insert(i) {
                            return Err(bad(format!("sample '{id}' is listed twice")));
                        }
                        if dataset.samples[i].label.is_none() {
                            return Err(bad(format!("sample '{id}' (in '{name}') has no label in the data set")));
                        }
                        lists[k].push(i);
                    }
                }
            }
        }
        if !unknown.is_empty() {
            let first: Vec<&str> = unknown.iter().take(5).copied().collect();
            return Err(bad(format!("{} id(s) not in the data set at {}, first: {}", unknown.len(), dataset.root.display(), first.join(", "))));
        }
        let [mut train, mut val, mut test] = lists;
        for (name, l) in [("train", &train), ("test", &test)] {
            if l.is_empty() {
                return Err(bad(format!("the {name} split is empty")));
            }
        }
        for l in [&mut train, &mut val, &mut test] {
            l.sort_by(|&a, &b| dataset.samples[a].id.cmp(&dataset.samples[b].id));
        }
        Ok(Splits { train, val, test, origin: SplitOrigin::Loaded, config })
    }
}

/// Splits `dataset` (see the module docs for the rules).
pub fn make_splits(dataset: &Dataset, cfg: &SplitConfig) -> Result<Splits> {
    cfg.validate()?;
    let samples = &dataset.samples;
    let mut ids = HashSet::with_capacity(samples.len());
    for s in samples {
        if !ids.insert(s.id.as_str()) {
            return Err(Error::Invalid(format!("data set at {}: duplicate sample id '{}'", dataset.root.display(), s.id)));
        }
        if let Some(l) = s.label {
            if l >= dataset.class_names.len() {
                return Err(Error::Invalid(format!("sample '{}': label {l} out of range for {} classes", s.id, dataset.class_names.len())));
            }
        }
    }
    let labelled: Vec<usize> = (0..samples.len()).filter(|&i| samples[i].label.is_some()).collect();
    if labelled.is_empty() {
        return Err(Error::Invalid(format!("data set at {}: no labelled samples to split", dataset.root.display())));
    }
    let mut per_class = vec![0usize; dataset.class_names.len()];
    for &i in &labelled {
        per_class[samples[i].label.unwrap()] += 1;
    }
    if let Some(c) = per_class.iter().position(|&n| n == 0) {
        return Err(Error::Invalid(format!("data set at {}: class '{}' has no labelled samples", dataset.root.display(), dataset.class_names[c])));
    }

    let official = labelled.iter().all(|&i| samples[i].official_split.is_some());
    let (mut train, mut val, mut test, origin);
    if official {
        let pick = |s: Split| labelled.iter().copied().filter(|&i| samples[i].official_split == Some(s)).collect::<Vec<_>>();
        (train, val, test) = (pick(Split::Train), pick(Split::Val), pick(Split::Test));
        origin = if val.is_empty() && cfg.val > 0.0 {
            let sub = SplitConfig { seed: cfg.seed, train: cfg.train / (cfg.train + cfg.val), val: cfg.val / (cfg.train + cfg.val), test: 0.0 };
            let [t, v, _] = seeded(dataset, &train, &sub)?;
            (train, val) = (t, v);
            SplitOrigin::OfficialWithSeededVal
        } else {
            SplitOrigin::Official
        };
    } else {
        [train, val, test] = seeded(dataset, &labelled, cfg)?;
        origin = SplitOrigin::Seeded;
    }

    let names = ["train", "val", "test"];
    for (k, l) in [&train, &val, &test].into_iter().enumerate() {
        // val may be empty only when no val was asked for (official splits without one, val fraction 0).
        if l.is_empty() && (k != 1 || cfg.val > 0.0) {
            return Err(Error::Invalid(format!("data set at {}: the {} split is empty", dataset.root.display(), names[k])));
        }
        // Every class must be present in every non-empty split (an empty class breaks per-class metrics).
        if !l.is_empty() {
            let mut have = vec![false; dataset.class_names.len()];
            for &i in l {
                have[samples[i].label.unwrap()] = true;
            }
            if let Some(c) = have.iter().position(|h| !h) {
                return Err(Error::Invalid(format!(
                    "data set at {}: class '{}' has no sample in the {} split",
                    dataset.root.display(),
                    dataset.class_names[c],
                    names[k]
                )));
            }
        }
    }
    for l in [&mut train, &mut val, &mut test] {
        l.sort_by(|&a, &b| samples[a].id.cmp(&samples[b].id));
    }
    Ok(Splits { train, val, test, origin, config: *cfg })
}

/// The seeded, stratified, grouped split of the samples `pool` (labelled) into [train, val, test].
fn seeded(dataset: &Dataset, pool: &[usize], cfg: &SplitConfig) -> Result<[Vec<usize>; 3]> {
    let samples = &dataset.samples;
    let k = dataset.class_names.len();
    // Group key: the named group, or the sample itself. The tag keeps a group name from colliding with an id.
    let mut groups: BTreeMap<(u8, &str), Vec<usize>> = BTreeMap::new();
    for &i in pool {
        let s = &samples[i];
        let key = match &s.group {
            Some(g) => (0, g.as_str()),
            None => (1, s.id.as_str()),
        };
        groups.entry(key).or_default().push(i);
    }
    // Stratum of each group: its majority label (lowest index on ties).
    let mut strata: Vec<Vec<Vec<usize>>> = vec![Vec::new(); k];
    for members in groups.into_values() {
        let mut votes = vec![0usize; k];
        for &i in &members {
            votes[samples[i].label.unwrap()] += 1;
        }
        let major = (0..k).max_by_key(|&c| (votes[c], std::cmp::Reverse(c))).unwrap();
        strata[major].push(members);
    }
    let fractions = [cfg.train, cfg.val, cfg.test];
    let active: Vec<usize> = (0..3).filter(|&s| fractions[s] > 0.0).collect();
    // Each active split is first dealt one group, the smallest fraction first (it is the hardest to fill).
    let mut first_deal = active.clone();
    first_deal.sort_by(|&a, &b| fractions[a].total_cmp(&fractions[b]).then(a.cmp(&b)));
    let mut out: [Vec<usize>; 3] = Default::default();
    for (c, mut groups) in strata.into_iter().enumerate() {
        if groups.is_empty() {
            continue; // a class that is only ever a group minority; checked by the caller
        }
        let n: usize = groups.iter().map(Vec::len).sum();
        if groups.len() < active.len() {
            let what = if groups.len() == n { format!("{n} sample(s)") } else { format!("{n} sample(s) in {} group(s)", groups.len()) };
            return Err(Error::Invalid(format!(
                "data set at {}: class '{}' has {what}, too few to appear in each of the {} splits (train {}, val {}, \
                 test {}); add samples, merge the class or change the fractions",
                dataset.root.display(),
                dataset.class_names[c],
                active.len(),
                cfg.train,
                cfg.val,
                cfg.test
            )));
        }
        // One stream per class, keyed by the seed and the class name: adding a class does not reshuffle the others.
        let mut rng = Rng::new(cfg.seed ^ fnv1a64(dataset.class_names[c].as_bytes()));
        for j in (1..groups.len()).rev() {
            groups.swap(j, rng.below(j + 1));
        }
        let target: Vec<f64> = fractions.iter().map(|f| f * n as f64).collect();
        let mut count = [0usize; 3];
        for (j, members) in groups.into_iter().enumerate() {
            let s = if j < first_deal.len() {
                first_deal[j]
            } else {
                *active.iter().max_by(|&&a, &&b| (target[a] - count[a] as f64).total_cmp(&(target[b] - count[b] as f64)).then(b.cmp(&a))).unwrap()
            };
            count[s] += members.len();
            out[s].extend(members);
        }
    }
    Ok(out)
}

/// A stratified, seeded subset of the labelled samples in `indices` (e.g. the train split) holding `fraction` of
/// each class, rounded to the nearest count but at least one per class present (`--label-fraction`). Which samples
/// are kept depends only on the seed and the samples' ids: each class's samples are ordered by a seeded hash of
/// their id and the first ones are taken. Returns indices sorted as given.
pub fn label_subset(dataset: &Dataset, indices: &[usize], fraction: f64, seed: u64) -> Result<Vec<usize>> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::Invalid(format!("label fraction must be in (0, 1], got {fraction}")));
    }
    let mut by_class: BTreeMap<usize, Vec<(u64, usize)>> = BTreeMap::new();
    for &i in indices {
        let s = &dataset.samples[i];
        if let Some(label) = s.label {
            let key = fnv1a64(format!("{seed}:{}", s.id).as_bytes());
            by_class.entry(label).or_default().push((key, i));
        }
    }
    let mut keep = HashSet::new();
    for members in by_class.values_mut() {
        members.sort_unstable();
        let take = ((members.len() as f64 * fraction).round() as usize).clamp(1, members.len());
        keep.extend(members[..take].iter().map(|&(_, i)| i));
    }
    Ok(indices.iter().copied().filter(|i| keep.contains(i)).collect())
}
