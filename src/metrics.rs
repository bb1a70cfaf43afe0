//! Evaluation metrics for the data sets in the spec's DATA.md §6 (shared/docs), on plain slices, pure CPU.
//!
//! Conventions shared by every function here:
//! - `labels: &[usize]` are true classes in `0..k`; `preds: &[usize]` are predicted classes in `0..k`;
//!   `scores: &[f32]` is row-major `[n, k]` (softmax probabilities or logits; AUC only uses the ranking).
//! - Predictions are the argmax of each score row ([`argmax_predictions`]); the first maximum wins on ties,
//!   like `numpy.argmax`.
//! - Bad input (length mismatch, a label or prediction `>= k`, a NaN score, no samples) is an
//!   [`Error::Invalid`], never a panic.
//! - A ratio whose denominator is 0 in precision / recall / F1 is defined as 0 (scikit-learn's `zero_division=0`).
//! - An undefined AUC (only one label value present) is `None` and is excluded from means, which list the
//!   excluded classes.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{json, Value};

use crate::error::{Error, Result};

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// Checks `k >= 1`, `n >= 1` and every class index `< k`; `what` names the slice in the error.
fn check_classes(values: &[usize], k: usize, what: &str) -> Result<()> {
    if k == 0 {
        return Err(invalid("metrics: k (number of classes) must be at least 1"));
    }
    if values.is_empty() {
        return Err(invalid(format!("metrics: {what} is empty (no samples)")));
    }
    if let Some((i, &v)) = values.iter().enumerate().find(|&(_, &v)| v >= k) {
        return Err(invalid(format!("metrics: {what}[{i}] = {v} is out of range for k = {k} classes")));
    }
    Ok(())
}

fn check_labels_preds(labels: &[usize], preds: &[usize], k: usize) -> Result<()> {
    if labels.len() != preds.len() {
        return Err(invalid(format!("metrics: {} labels but {} predictions", labels.len(), preds.len())));
    }
    check_classes(labels, k, "labels")?;
    check_classes(preds, k, "predictions")
}

/// Checks that `scores` is `[labels.len(), k]` and holds no NaN.
fn check_scores(labels: &[usize], scores: &[f32], k: usize) -> Result<()> {
    check_classes(labels, k, "labels")?;
    if scores.len() != labels.len() * k {
        return Err(invalid(format!(
            "metrics: scores has {} values, expected n * k = {} * {} = {}",
            scores.len(),
            labels.len(),
            k,
            labels.len() * k
        )));
    }
    check_no_nan(scores)
}

fn check_no_nan(scores: &[f32]) -> Result<()> {
    match scores.iter().position(|s| s.is_nan()) {
        Some(i) => Err(invalid(format!("metrics: score {i} is NaN"))),
        None => Ok(()),
    }
}

/// Row-wise softmax (f64 inside) of `[n, k]` logits: the class probabilities that AUC-type metrics and prediction
/// files use (METHOD.md §9: softmax of the summed logits).
pub fn softmax_rows(logits: &[f32], k: usize) -> Vec<f32> {
    let mut p = vec![0.0; logits.len()];
    for (row, out) in logits.chunks(k.max(1)).zip(p.chunks_mut(k.max(1))) {
        let mx = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - mx).exp()).sum();
        for (o, &v) in out.iter_mut().zip(row) {
            *o = ((v as f64 - mx).exp() / s) as f32;
        }
    }
    p
}

/// Argmax of each row of the row-major `[n, k]` `scores` (first maximum on ties, like `numpy.argmax`).
/// Errors when `k == 0`, `scores.len()` is not a multiple of `k`, or a score is NaN.
pub fn argmax_predictions(scores: &[f32], k: usize) -> Result<Vec<usize>> {
    if k == 0 {
        return Err(invalid("metrics: k (number of classes) must be at least 1"));
    }
    if scores.len() % k != 0 {
        return Err(invalid(format!("metrics: scores has {} values, not a multiple of k = {k}", scores.len())));
    }
    check_no_nan(scores)?;
    Ok(scores
        .chunks_exact(k)
        .map(|row| {
            let mut best = 0;
            for (j, &s) in row.iter().enumerate() {
                if s > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect())
}

/// Accuracy = mean(ŷ = y) (DATA.md §6; sklearn `accuracy_score`).
pub fn accuracy(labels: &[usize], preds: &[usize], k: usize) -> Result<f64> {
    check_labels_preds(labels, preds, k)?;
    let hits = labels.iter().zip(preds).filter(|(y, p)| y == p).count();
    Ok(hits as f64 / labels.len() as f64)
}

/// Confusion matrix: `k x k` counts, row = true class, column = predicted class (sklearn `confusion_matrix`
/// with `labels=range(k)`).
pub fn confusion_matrix(labels: &[usize], preds: &[usize], k: usize) -> Result<Vec<Vec<usize>>> {
    check_labels_preds(labels, preds, k)?;
    Ok(confusion_unchecked(labels, preds, k))
}

fn confusion_unchecked(labels: &[usize], preds: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut cm = vec![vec![0usize; k]; k];
    for (&y, &p) in labels.iter().zip(preds) {
        cm[y][p] += 1;
    }
    cm
}

/// Balanced accuracy with the classes that were left out of the mean.
#[derive(Clone, Debug, PartialEq)]
pub struct BalancedAccuracy {
    /// Mean over classes present in `labels` of recall TP_c / (TP_c + FN_c).
    pub value: f64,
    /// Classes with no sample in `labels` (excluded from the mean), ascending.
    pub absent_classes: Vec<usize>,
}

/// Balanced accuracy (ISIC 2018 Task 3 ranking metric, DATA.md §6) = mean over the classes PRESENT in `labels` of
/// per-class recall TP_c / (TP_c + FN_c), from argmax predictions with no thresholding. This equals scikit-learn's
/// `balanced_accuracy_score` (which also drops classes absent from y_true). It is NOT MONAI's
/// `ConfusionMatrixMetric("balanced accuracy")`, which is the per-class binary (TPR + TNR) / 2.
pub fn balanced_accuracy(labels: &[usize], preds: &[usize], k: usize) -> Result<BalancedAccuracy> {
    check_labels_preds(labels, preds, k)?;
    Ok(balanced_from_confusion(&confusion_unchecked(labels, preds, k)))
}

fn balanced_from_confusion(cm: &[Vec<usize>]) -> BalancedAccuracy {
    let mut sum = 0.0;
    let mut present = 0usize;
    let mut absent_classes = Vec::new();
    for (c, row) in cm.iter().enumerate() {
        let support: usize = row.iter().sum();
        if support == 0 {
            absent_classes.push(c);
        } else {
            sum += row[c] as f64 / support as f64;
            present += 1;
        }
    }
    // `present >= 1` because the caller checked n >= 1.
    BalancedAccuracy { value: sum / present as f64, absent_classes }
}

/// Per-class precision / recall / F1 and their macro averages.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassMetrics {
    /// TP_c / (TP_c + FP_c); 0 when the class is never predicted (zero_division = 0).
    pub precision: Vec<f64>,
    /// TP_c / (TP_c + FN_c); 0 when the class has no true sample (zero_division = 0).
    pub recall: Vec<f64>,
    /// 2 TP_c / (2 TP_c + FP_c + FN_c) (= harmonic mean of precision and recall); 0 when the denominator is 0.
    pub f1: Vec<f64>,
    /// Number of true samples of each class (row sums of the confusion matrix).
    pub support: Vec<usize>,
    /// Number of predictions of each class (column sums of the confusion matrix).
    pub predicted: Vec<usize>,
    /// Unweighted mean of `precision` over the classes in y ∪ ŷ.
    pub macro_precision: f64,
    /// Unweighted mean of `recall` over the classes in y ∪ ŷ.
    pub macro_recall: f64,
    /// Macro-F1: unweighted mean of per-class `f1` over the classes in y ∪ ŷ (not F1 of the macro P and R).
    pub macro_f1: f64,
    /// Classes neither in `labels` nor in `preds`, left out of the macro means, ascending.
    pub excluded_classes: Vec<usize>,
}

/// Per-class precision, recall, F1 and macro averages, matching scikit-learn's
/// `precision_recall_fscore_support(y, ŷ, average=None / "macro", zero_division=0)`: every 0/0 is defined as 0, and
/// the macro means run over the classes that occur in `labels` or `preds` (sklearn's default label set), so a class
/// seen in neither (all its counts 0) does not drag the mean down; it is listed in `excluded_classes`.
pub fn class_metrics(labels: &[usize], preds: &[usize], k: usize) -> Result<ClassMetrics> {
    check_labels_preds(labels, preds, k)?;
    Ok(class_metrics_from_confusion(&confusion_unchecked(labels, preds, k)))
}

fn ratio0(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn class_metrics_from_confusion(cm: &[Vec<usize>]) -> ClassMetrics {
    let k = cm.len();
    let support: Vec<usize> = cm.iter().map(|r| r.iter().sum()).collect();
    let predicted: Vec<usize> = (0..k).map(|j| cm.iter().map(|r| r[j]).sum()).collect();
    let mut m = ClassMetrics {
        precision: Vec::with_capacity(k),
        recall: Vec::with_capacity(k),
        f1: Vec::with_capacity(k),
        support: support.clone(),
        predicted: predicted.clone(),
        macro_precision: 0.0,
        macro_recall: 0.0,
        macro_f1: 0.0,
        excluded_classes: Vec::new(),
    };
    let mut used = 0usize;
    for c in 0..k {
        let tp = cm[c][c];
        let (p, r, f) = (ratio0(tp, predicted[c]), ratio0(tp, support[c]), ratio0(2 * tp, support[c] + predicted[c]));
        m.precision.push(p);
        m.recall.push(r);
        m.f1.push(f);
        if support[c] + predicted[c] == 0 {
            m.excluded_classes.push(c);
        } else {
            used += 1;
            m.macro_precision += p;
            m.macro_recall += r;
            m.macro_f1 += f;
        }
    }
    if used > 0 {
        m.macro_precision /= used as f64;
        m.macro_recall /= used as f64;
        m.macro_f1 /= used as f64;
    }
    m
}

/// Binary ROC-AUC in the Mann-Whitney form (DATA.md §6): the probability that a random positive scores above a
/// random negative, ties counting ½:
/// AUC = Σ_{p pos, q neg} ([s_p > s_q] + ½ [s_p = s_q]) / (n_pos n_neg).
/// This is exactly the trapezoidal area under the ROC curve (sklearn `roc_auc_score`). O(n log n): one sort, then
/// tie groups are swept in ascending score order with exact integer counts (each group adds
/// pos_g · (2 neg_below + neg_g), halved at the end).
///
/// Returns `Ok(None)` when the AUC is undefined: no positive or no negative (only one label value present, or no
/// samples). Errors on a length mismatch or a NaN score. ±∞ scores rank normally; -0.0 and +0.0 tie.
pub fn roc_auc_binary(scores: &[f32], positives: &[bool]) -> Result<Option<f64>> {
    if scores.len() != positives.len() {
        return Err(invalid(format!("metrics: {} scores but {} positive flags", scores.len(), positives.len())));
    }
    check_no_nan(scores)?;
    Ok(auc_unchecked(scores.iter().copied().zip(positives.iter().copied())))
}

/// AUC from (score, is_positive) pairs with no NaN score.
fn auc_unchecked(pairs: impl Iterator<Item = (f32, bool)>) -> Option<f64> {
    let mut v: Vec<(f32, bool)> = pairs.collect();
    let n_pos = v.iter().filter(|p| p.1).count() as u128;
    let n_neg = v.len() as u128 - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    // No NaN here, so partial_cmp is total; -0.0 == 0.0 keeps them in one tie group.
    v.sort_unstable_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    let mut twice_u: u128 = 0; // 2 × (Mann-Whitney U of the positives)
    let mut neg_below: u128 = 0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        let (mut pos_g, mut neg_g) = (0u128, 0u128);
        while j < v.len() && v[j].0 == v[i].0 {
            if v[j].1 {
                pos_g += 1;
            } else {
                neg_g += 1;
            }
            j += 1;
        }
        twice_u += pos_g * (2 * neg_below + neg_g);
        neg_below += neg_g;
        i = j;
    }
    Some(twice_u as f64 / (2 * n_pos * n_neg) as f64)
}

/// One-vs-rest AUCs and their macro mean.
#[derive(Clone, Debug, PartialEq)]
pub struct MacroAuc {
    /// The headline AUC: for k > 2 the mean of the defined `per_class` values; for k = 2 the AUC of the last
    /// column (`per_class[1]`); `None` when nothing is defined.
    pub mean: Option<f64>,
    /// One-vs-rest AUC of score column c for class c; `None` when class c is absent or is every sample.
    pub per_class: Vec<Option<f64>>,
    /// Classes whose AUC is undefined and so were left out of `mean`, ascending.
    pub undefined_classes: Vec<usize>,
}

/// Macro AUC in the MedMNIST convention (DATA.md §6): for k > 2 (and k = 1), the unweighted mean over classes of
/// the one-vs-rest ROC-AUC of `scores[:, c]` with positives `labels == c` ([`roc_auc_binary`]); classes whose AUC
/// is undefined (only one label value for that class: absent from `labels`, or every sample) are excluded from the
/// mean and listed in `undefined_classes` (MONAI/MedMNIST return NaN for them; here they are `None`).
/// For binary k = 2, the headline `mean` is the AUC of the last column `scores[:, 1]` with positives `labels == 1`
/// (MedMNIST `getAUC`); `per_class` still holds both one-vs-rest AUCs.
pub fn macro_auc_ovr(labels: &[usize], scores: &[f32], k: usize) -> Result<MacroAuc> {
    check_scores(labels, scores, k)?;
    let per_class: Vec<Option<f64>> = (0..k).map(|c| auc_unchecked(labels.iter().enumerate().map(|(i, &y)| (scores[i * k + c], y == c)))).collect();
    let undefined_classes: Vec<usize> = (0..k).filter(|&c| per_class[c].is_none()).collect();
    let mean = if k == 2 {
        per_class[1]
    } else {
        let defined: Vec<f64> = per_class.iter().flatten().copied().collect();
        if defined.is_empty() {
            None
        } else {
            Some(defined.iter().sum::<f64>() / defined.len() as f64)
        }
    };
    Ok(MacroAuc { mean, per_class, undefined_classes })
}

/// Quadratic weighted Cohen's kappa (APTOS 2019, DATA.md §6) over the k grades `0..k`:
/// O = k×k confusion counts (true i, predicted j); w_ij = (i − j)² / (k − 1)²;
/// E = outer(hist_true, hist_pred) / n so that ΣE = ΣO = n; κ = 1 − Σ w_ij O_ij / Σ w_ij E_ij.
///
/// Equals scikit-learn `cohen_kappa_score(y, ŷ, labels=range(k), weights="quadratic")` (sklearn's unnormalised
/// weights (i − j)² give the same ratio). Note sklearn WITHOUT `labels=` re-indexes only the grades that occur,
/// which changes the weights when a grade is missing; this function always uses the grades `0..k`.
///
/// Degenerate case: Σ w_ij E_ij = 0 exactly when every label and every prediction is the same single grade (then
/// Σ w O = 0 too, 0/0). scikit-learn returns NaN there (with a warning; `replace_undefined_by=np.nan` is its
/// default), so this returns `f64::NAN`. Errors when k < 2 (the weights divide by k − 1) or on bad input.
pub fn quadratic_weighted_kappa(labels: &[usize], preds: &[usize], k: usize) -> Result<f64> {
    check_labels_preds(labels, preds, k)?;
    if k < 2 {
        return Err(invalid("metrics: quadratic weighted kappa needs k >= 2 grades"));
    }
    Ok(kappa_from_confusion(&confusion_unchecked(labels, preds, k)))
}

fn kappa_from_confusion(cm: &[Vec<usize>]) -> f64 {
    let k = cm.len();
    let hist_true: Vec<f64> = cm.iter().map(|r| r.iter().sum::<usize>() as f64).collect();
    let hist_pred: Vec<f64> = (0..k).map(|j| cm.iter().map(|r| r[j]).sum::<usize>() as f64).collect();
    let n: f64 = hist_true.iter().sum();
    let km1 = (k - 1) as f64;
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for i in 0..k {
        for j in 0..k {
            let d = i as f64 - j as f64;
            let w = d * d / (km1 * km1);
            num += w * cm[i][j] as f64;
            den += w * hist_true[i] * hist_pred[j] / n;
        }
    }
    if den == 0.0 {
        return f64::NAN;
    }
    1.0 - num / den
}

/// ISIC 2017 Part 3 scores: AUC of melanoma-vs-rest and of seborrheic-keratosis-vs-rest, and their mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Isic2017Aucs {
    pub melanoma: Option<f64>,
    pub seborrheic_keratosis: Option<f64>,
    /// (melanoma + seborrheic_keratosis) / 2; `None` when either is undefined.
    pub mean: Option<f64>,
}

/// ISIC 2017 Part 3 (DATA.md §6): AUC of `scores[:, mel_class]` for `labels == mel_class` and AUC of
/// `scores[:, sk_class]` for `labels == sk_class` (each task from its own binary score), plus their mean.
/// `scores` is row-major `[n, k]`. Errors when `mel_class` or `sk_class` is `>= k` or they are equal.
pub fn isic2017_task_aucs(labels: &[usize], scores: &[f32], k: usize, mel_class: usize, sk_class: usize) -> Result<Isic2017Aucs> {
    check_scores(labels, scores, k)?;
    if mel_class >= k || sk_class >= k || mel_class == sk_class {
        return Err(invalid(format!("metrics: ISIC 2017 needs two distinct classes < k = {k}, got MEL {mel_class}, SK {sk_class}")));
    }
    let task = |c: usize| auc_unchecked(labels.iter().enumerate().map(|(i, &y)| (scores[i * k + c], y == c)));
    let (melanoma, seborrheic_keratosis) = (task(mel_class), task(sk_class));
    let mean = match (melanoma, seborrheic_keratosis) {
        (Some(a), Some(b)) => Some((a + b) / 2.0),
        _ => None,
    };
    Ok(Isic2017Aucs { melanoma, seborrheic_keratosis, mean })
}

/// Every metric for one data set split, built from labels and `[n, k]` scores (predictions = argmax).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub class_names: Vec<String>,
    pub n: usize,
    pub accuracy: f64,
    pub balanced_accuracy: BalancedAccuracy,
    pub auc: MacroAuc,
    pub classes: ClassMetrics,
    /// Rows = true class, columns = predicted class.
    pub confusion: Vec<Vec<usize>>,
    /// Quadratic weighted kappa, when requested (NaN in the degenerate case, see [`quadratic_weighted_kappa`]).
    pub kappa: Option<f64>,
}

fn opt_json(v: Option<f64>) -> Value {
    match v {
        Some(x) if x.is_finite() => json!(x),
        _ => Value::Null,
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_nan() => "NaN".to_string(),
        Some(x) => format!("{x:.4}"),
        None => "n/a".to_string(),
    }
}

impl Report {
    /// Computes every metric; `class_names.len()` must equal `k`. `with_kappa` adds the quadratic weighted
    /// kappa (APTOS; needs k >= 2).
    pub fn new(labels: &[usize], scores: &[f32], k: usize, class_names: &[String], with_kappa: bool) -> Result<Report> {
        if class_names.len() != k {
            return Err(invalid(format!("metrics: {} class names for k = {k} classes", class_names.len())));
        }
        check_scores(labels, scores, k)?;
        let preds = argmax_predictions(scores, k)?;
        let confusion = confusion_unchecked(labels, &preds, k);
        let kappa = if with_kappa {
            if k < 2 {
                return Err(invalid("metrics: quadratic weighted kappa needs k >= 2 grades"));
            }
            Some(kappa_from_confusion(&confusion))
        } else {
            None
        };
        let n = labels.len();
        let hits: usize = (0..k).map(|c| confusion[c][c]).sum();
        Ok(Report {
            class_names: class_names.to_vec(),
            n,
            accuracy: hits as f64 / n as f64,
            balanced_accuracy: balanced_from_confusion(&confusion),
            auc: macro_auc_ovr(labels, scores, k)?,
            classes: class_metrics_from_confusion(&confusion),
            confusion,
            kappa,
        })
    }

    /// JSON object; undefined values (None, NaN) are `null`.
    pub fn to_json(&self) -> Value {
        let names = |v: &[usize]| v.iter().map(|&c| self.class_names[c].clone()).collect::<Vec<_>>();
        let per_class: Vec<Value> = (0..self.class_names.len())
            .map(|c| {
                json!({
                    "class": self.class_names[c],
                    "precision": self.classes.precision[c],
                    "recall": self.classes.recall[c],
                    "f1": self.classes.f1[c],
                    "support": self.classes.support[c],
                    "predicted": self.classes.predicted[c],
                    "auc": opt_json(self.auc.per_class[c]),
                })
            })
            .collect();
        let mut v = json!({
            "n": self.n,
            "classes": self.class_names,
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy.value,
            "balanced_accuracy_absent_classes": names(&self.balanced_accuracy.absent_classes),
            "macro_auc": opt_json(self.auc.mean),
            "auc_undefined_classes": names(&self.auc.undefined_classes),
            "macro_precision": self.classes.macro_precision,
            "macro_recall": self.classes.macro_recall,
            "macro_f1": self.classes.macro_f1,
            "macro_excluded_classes": names(&self.classes.excluded_classes),
            "per_class": per_class,
            "confusion_matrix": self.confusion,
        });
        if let Some(kappa) = self.kappa {
            v["quadratic_weighted_kappa"] = opt_json(Some(kappa));
        }
        v
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.class_names.len();
        let w = self.class_names.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(5);
        let list = |v: &[usize]| v.iter().map(|&c| self.class_names[c].as_str()).collect::<Vec<_>>().join(", ");
        writeln!(f, "n = {}, k = {}", self.n, k)?;
        writeln!(f, "accuracy           {:.4}", self.accuracy)?;
        write!(f, "balanced accuracy  {:.4}", self.balanced_accuracy.value)?;
        if !self.balanced_accuracy.absent_classes.is_empty() {
            write!(f, "  (absent from labels, left out: {})", list(&self.balanced_accuracy.absent_classes))?;
        }
        writeln!(f)?;
        write!(f, "macro AUC (OvR)    {}", fmt_opt(self.auc.mean))?;
        if !self.auc.undefined_classes.is_empty() {
            write!(f, "  (undefined, left out: {})", list(&self.auc.undefined_classes))?;
        }
        writeln!(f)?;
        writeln!(f, "macro P / R / F1   {:.4} / {:.4} / {:.4}", self.classes.macro_precision, self.classes.macro_recall, self.classes.macro_f1)?;
        if let Some(kappa) = self.kappa {
            writeln!(f, "quadratic kappa    {}", fmt_opt(Some(kappa)))?;
        }
        writeln!(f)?;
        writeln!(f, "{:<w$}  {:>9}  {:>9}  {:>9}  {:>9}  {:>7}  {:>9}", "class", "precision", "recall", "f1", "auc", "support", "predicted")?;
        for c in 0..k {
            writeln!(
                f,
                "{:<w$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>9}  {:>7}  {:>9}",
                self.class_names[c],
                self.classes.precision[c],
                self.classes.recall[c],
                self.classes.f1[c],
                fmt_opt(self.auc.per_class[c]),
                self.classes.support[c],
                self.classes.predicted[c]
            )?;
        }
        writeln!(f)?;
        writeln!(f, "confusion matrix (rows = true, columns = predicted)")?;
        let cw = self.confusion.iter().flatten().map(|c| c.to_string().len()).max().unwrap_or(1).max(w);
        write!(f, "{:<w$}", "")?;
        for name in &self.class_names {
            write!(f, "  {name:>cw$}")?;
        }
        writeln!(f)?;
        for (c, row) in self.confusion.iter().enumerate() {
            write!(f, "{:<w$}", self.class_names[c])?;
            for count in row {
                write!(f, "  {count:>cw$}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
