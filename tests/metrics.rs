//! Metric tests (docs/DATA.md §6): hand-computed cases with the arithmetic in comments, degenerate cases, bad
//! input, and a one-off cross-check against scikit-learn 1.9.1 whose numbers are pasted below (no Python needed).

use fgssl::metrics::*;
use fgssl::Error;

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

fn close_opt(a: Option<f64>, b: Option<f64>) {
    match (a, b) {
        (Some(x), Some(y)) => close(x, y),
        (None, None) => {}
        _ => panic!("{a:?} != {b:?}"),
    }
}

fn is_invalid<T: std::fmt::Debug>(r: fgssl::Result<T>) {
    match r {
        Err(Error::Invalid(_)) => {}
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

fn names(k: usize) -> Vec<String> {
    (0..k).map(|c| format!("c{c}")).collect()
}

// ---------------------------------------------------------------- argmax, accuracy, confusion

#[test]
fn argmax_first_maximum_wins() {
    // rows [0.5, 0.5] -> 0 (first max, like numpy.argmax); [0.1, 0.9] -> 1; [-inf, -1] -> 1.
    assert_eq!(argmax_predictions(&[0.5, 0.5, 0.1, 0.9, f32::NEG_INFINITY, -1.0], 2).unwrap(), vec![0, 1, 1]);
}

#[test]
fn perfect_prediction() {
    let y = [0, 1, 2, 2];
    let s = [0.8, 0.1, 0.1, 0.1, 0.7, 0.2, 0.0, 0.1, 0.9, 0.3, 0.3, 0.4];
    let p = argmax_predictions(&s, 3).unwrap();
    assert_eq!(p, vec![0, 1, 2, 2]);
    close(accuracy(&y, &p, 3).unwrap(), 1.0);
    let b = balanced_accuracy(&y, &p, 3).unwrap();
    close(b.value, 1.0);
    assert!(b.absent_classes.is_empty());
    assert_eq!(confusion_matrix(&y, &p, 3).unwrap(), vec![vec![1, 0, 0], vec![0, 1, 0], vec![0, 0, 2]]);
    let m = class_metrics(&y, &p, 3).unwrap();
    assert_eq!((m.precision.clone(), m.recall.clone(), m.f1.clone()), (vec![1.0; 3], vec![1.0; 3], vec![1.0; 3]));
    close(m.macro_f1, 1.0);
    // Each class's column ranks all its positives above all its negatives: every AUC is 1.
    let auc = macro_auc_ovr(&y, &s, 3).unwrap();
    assert_eq!(auc.per_class, vec![Some(1.0); 3]);
    close_opt(auc.mean, Some(1.0));
    // O is diagonal, so sum w O = 0 and kappa = 1.
    close(quadratic_weighted_kappa(&y, &p, 3).unwrap(), 1.0);
}

#[test]
fn class_never_predicted() {
    // y = [0,0,1,1,2,2], ŷ = [0,0,1,1,1,1]; CM rows true: [2,0,0], [0,2,0], [0,2,0].
    let (y, p) = ([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 1]);
    assert_eq!(confusion_matrix(&y, &p, 3).unwrap(), vec![vec![2, 0, 0], vec![0, 2, 0], vec![0, 2, 0]]);
    close(accuracy(&y, &p, 3).unwrap(), 4.0 / 6.0);
    let m = class_metrics(&y, &p, 3).unwrap();
    // precision: c0 2/2 = 1, c1 2/4 = 0.5, c2 0/0 := 0 (zero_division = 0).
    assert_eq!(m.precision, vec![1.0, 0.5, 0.0]);
    // recall: c0 2/2, c1 2/2, c2 0/2.
    assert_eq!(m.recall, vec![1.0, 1.0, 0.0]);
    // F1 = 2TP/(2TP+FP+FN): c0 4/4 = 1, c1 4/(4+2+0) = 2/3, c2 0/(0+0+2) = 0.
    close(m.f1[0], 1.0);
    close(m.f1[1], 2.0 / 3.0);
    close(m.f1[2], 0.0);
    assert_eq!(m.support, vec![2, 2, 2]);
    assert_eq!(m.predicted, vec![2, 4, 0]);
    close(m.macro_precision, 1.5 / 3.0); // (1 + 0.5 + 0)/3
    close(m.macro_recall, 2.0 / 3.0); // (1 + 1 + 0)/3
    close(m.macro_f1, 5.0 / 9.0); // (1 + 2/3 + 0)/3
    assert!(m.excluded_classes.is_empty());
    close(balanced_accuracy(&y, &p, 3).unwrap().value, 2.0 / 3.0);
}

#[test]
fn macro_excludes_class_in_neither_labels_nor_predictions() {
    // k = 3, class 2 never seen: macro over {0, 1} (sklearn's default label set). y = [0,1,1], ŷ = [0,1,0]:
    // P: c0 1/2, c1 1/1; R: c0 1/1, c1 1/2; F1: c0 2/(2+1) = 2/3, c1 2/(2+0+1) = 2/3.
    let m = class_metrics(&[0, 1, 1], &[0, 1, 0], 3).unwrap();
    assert_eq!(m.excluded_classes, vec![2]);
    close(m.macro_precision, 0.75);
    close(m.macro_recall, 0.75);
    close(m.macro_f1, 2.0 / 3.0);
}

// ---------------------------------------------------------------- balanced accuracy

#[test]
fn balanced_accuracy_absent_class() {
    // y = [0,0,1,1], ŷ = [0,2,1,1], k = 3. Recall c0 = 1/2, c1 = 2/2; class 2 has no true sample, so it is left out
    // (sklearn warns "y_pred contains classes not in y_true" and drops it): (0.5 + 1)/2 = 0.75.
    let b = balanced_accuracy(&[0, 0, 1, 1], &[0, 2, 1, 1], 3).unwrap();
    close(b.value, 0.75);
    assert_eq!(b.absent_classes, vec![2]);
    // Not MONAI's (TPR+TNR)/2 per class, nor plain accuracy (3/4 here too), so check an unbalanced case:
    // y = [0,0,0,1], ŷ = [0,0,0,0]: recall c0 = 1, c1 = 0 -> 0.5, while accuracy = 0.75.
    close(balanced_accuracy(&[0, 0, 0, 1], &[0, 0, 0, 0], 2).unwrap().value, 0.5);
    close(accuracy(&[0, 0, 0, 1], &[0, 0, 0, 0], 2).unwrap(), 0.75);
}

// ---------------------------------------------------------------- binary AUC

#[test]
fn auc_binary_hand() {
    // neg 0.1, 0.4; pos 0.35, 0.8. Pairs: 0.35>0.1 (1), 0.35<0.4 (0), 0.8>both (2): 3/4.
    close_opt(roc_auc_binary(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap(), Some(0.75));
    // Ties: pos 0.5, 0.9; neg 0.5, 0.2. 0.5 vs 0.5 tie (1/2), 0.5>0.2 (1), 0.9>both (2): 3.5/4 = 0.875.
    close_opt(roc_auc_binary(&[0.5, 0.5, 0.2, 0.9], &[true, false, false, true]).unwrap(), Some(0.875));
    // Perfectly inverted ranking: 0.
    close_opt(roc_auc_binary(&[0.9, 0.8, 0.1], &[false, false, true]).unwrap(), Some(0.0));
}

#[test]
fn auc_all_scores_equal_is_half() {
    // Every pair is a tie: each counts 1/2.
    close_opt(roc_auc_binary(&[0.3; 7], &[true, false, false, true, false, true, false]).unwrap(), Some(0.5));
    // -0.0 and +0.0 are one tie group.
    close_opt(roc_auc_binary(&[-0.0, 0.0], &[true, false]).unwrap(), Some(0.5));
}

#[test]
fn auc_undefined_with_one_label_value() {
    assert_eq!(roc_auc_binary(&[0.1, 0.2], &[true, true]).unwrap(), None);
    assert_eq!(roc_auc_binary(&[0.1, 0.2], &[false, false]).unwrap(), None);
    assert_eq!(roc_auc_binary(&[], &[]).unwrap(), None);
}

#[test]
fn auc_large_tied_input_is_exact() {
    // 100 000 samples in 10 tie groups; score g/10 for sample i with g = i % 10, positive when i % 3 == 0.
    // Brute force over tie groups (counts per group) gives the reference.
    let n = 100_000;
    let s: Vec<f32> = (0..n).map(|i| (i % 10) as f32 / 10.0).collect();
    let pos: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
    let (mut pg, mut ng) = ([0u64; 10], [0u64; 10]);
    for i in 0..n {
        if pos[i] {
            pg[i % 10] += 1
        } else {
            ng[i % 10] += 1
        }
    }
    let mut num = 0.0f64;
    for (a, &pa) in pg.iter().enumerate() {
        for (b, &nb) in ng.iter().enumerate() {
            let pairs = (pa * nb) as f64;
            num += match a.cmp(&b) {
                std::cmp::Ordering::Greater => pairs,
                std::cmp::Ordering::Equal => pairs / 2.0,
                std::cmp::Ordering::Less => 0.0,
            };
        }
    }
    let (np, nn) = (pg.iter().sum::<u64>() as f64, ng.iter().sum::<u64>() as f64);
    close_opt(roc_auc_binary(&s, &pos).unwrap(), Some(num / (np * nn)));
}

// ---------------------------------------------------------------- macro AUC (MedMNIST)

#[test]
fn macro_auc_binary_uses_last_column() {
    // y = [0,1,0,1]; column 1 = [0.1, 0.7, 0.4, 0.2]; pos 0.7, 0.2; neg 0.1, 0.4.
    // 0.7 > both (2), 0.2 > 0.1 only (1): 3/4.
    let s = [0.9, 0.1, 0.3, 0.7, 0.6, 0.4, 0.8, 0.2];
    let a = macro_auc_ovr(&[0, 1, 0, 1], &s, 2).unwrap();
    close_opt(a.mean, Some(0.75));
    close_opt(a.per_class[1], Some(0.75));
}

fn three_class_case() -> ([usize; 4], [f32; 12]) {
    // y = [0,0,1,1] (class 2 absent).
    ([0, 0, 1, 1], [0.6, 0.3, 0.1, 0.2, 0.5, 0.3, 0.3, 0.6, 0.1, 0.5, 0.4, 0.1])
}

#[test]
fn macro_auc_excludes_undefined_class() {
    let (y, s) = three_class_case();
    // col 0 = [0.6, 0.2, 0.3, 0.5]: pos 0.6, 0.2 vs neg 0.3, 0.5: 2 + 0 -> 2/4 = 0.5.
    // col 1 = [0.3, 0.5, 0.6, 0.4]: pos 0.6, 0.4 vs neg 0.3, 0.5: 2 + 1 -> 3/4 = 0.75.
    // class 2 absent -> undefined; mean = (0.5 + 0.75)/2 = 0.625.
    let a = macro_auc_ovr(&y, &s, 3).unwrap();
    close_opt(a.per_class[0], Some(0.5));
    close_opt(a.per_class[1], Some(0.75));
    assert_eq!(a.per_class[2], None);
    assert_eq!(a.undefined_classes, vec![2]);
    close_opt(a.mean, Some(0.625));
}

#[test]
fn macro_auc_one_class_only_in_y() {
    // Every sample is class 0: class 0 has no negatives, classes 1, 2 no positives; nothing is defined.
    let a = macro_auc_ovr(&[0, 0, 0], &[0.5, 0.3, 0.2, 0.1, 0.8, 0.1, 0.4, 0.4, 0.2], 3).unwrap();
    assert_eq!(a.mean, None);
    assert_eq!(a.undefined_classes, vec![0, 1, 2]);
    let b = macro_auc_ovr(&[1, 1], &[0.5, 0.5, 0.1, 0.9], 2).unwrap();
    assert_eq!(b.mean, None);
}

// ---------------------------------------------------------------- ISIC 2017

#[test]
fn isic2017_aucs() {
    let (y, s) = three_class_case();
    // MEL = class 0 (AUC 0.5 above), SK = class 1 (0.75): mean 0.625.
    let r = isic2017_task_aucs(&y, &s, 3, 0, 1).unwrap();
    close_opt(r.melanoma, Some(0.5));
    close_opt(r.seborrheic_keratosis, Some(0.75));
    close_opt(r.mean, Some(0.625));
    // SK = class 2, absent: its AUC is undefined, so is the mean.
    let r = isic2017_task_aucs(&y, &s, 3, 0, 2).unwrap();
    assert_eq!((r.seborrheic_keratosis, r.mean), (None, None));
    is_invalid(isic2017_task_aucs(&y, &s, 3, 1, 1));
    is_invalid(isic2017_task_aucs(&y, &s, 3, 0, 3));
}

// ---------------------------------------------------------------- quadratic weighted kappa

#[test]
fn kappa_3x3_by_hand() {
    // y = [0,0,1,1,2,2], ŷ = [0,1,1,2,2,0], k = 3.
    // O = [[1,1,0],[0,1,1],[1,0,1]]; w_ij = (i-j)^2/4: w01 = w12 = 1/4, w02 = 1.
    // sum w O = O01/4 + O12/4 + O20 = 0.25 + 0.25 + 1 = 1.5.
    // hist_true = hist_pred = [2,2,2], n = 6, so E_ij = 2*2/6 = 2/3; sum w = 2(1/4 + 1/4 + 1) = 3; sum w E = 2.
    // kappa = 1 - 1.5/2 = 0.25.
    close(quadratic_weighted_kappa(&[0, 0, 1, 1, 2, 2], &[0, 1, 1, 2, 2, 0], 3).unwrap(), 0.25);
}

#[test]
fn kappa_5x5_by_hand() {
    // y = [0,1,2,3,4], ŷ = [0,1,2,4,4], k = 5. O is diagonal except O_34 = 1: sum w O = (3-4)^2/16 = 1/16.
    // hist_true = [1,1,1,1,1], hist_pred = [1,1,1,0,2], n = 5: E_ij = hist_pred_j / 5.
    // sum w E = (1/(16*5)) sum_j hist_pred_j S_j with S_j = sum_i (i-j)^2 = [30,15,10,15,30]:
    //   1*30 + 1*15 + 1*10 + 0*15 + 2*30 = 115 -> 115/80.
    // kappa = 1 - (1/16)/(115/80) = 1 - 5/115 = 22/23.
    close(quadratic_weighted_kappa(&[0, 1, 2, 3, 4], &[0, 1, 2, 4, 4], 5).unwrap(), 22.0 / 23.0);
}

#[test]
fn kappa_degenerate_is_nan_like_sklearn() {
    // All labels and predictions grade 2: sum w E = 0 and sum w O = 0. sklearn 1.9.1:
    // cohen_kappa_score([2,2,2], [2,2,2], labels=[0,1,2], weights="quadratic") -> nan.
    assert!(quadratic_weighted_kappa(&[2, 2, 2], &[2, 2, 2], 3).unwrap().is_nan());
    // Labels one grade, predictions another: sum w E = w_02 * 3*3/3 = 3 > 0, sum w O = 3 -> kappa = 0.
    close(quadratic_weighted_kappa(&[0, 0, 0], &[2, 2, 2], 3).unwrap(), 0.0);
    is_invalid(quadratic_weighted_kappa(&[0], &[0], 1));
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_input_is_error_not_panic() {
    is_invalid(accuracy(&[0, 1], &[0], 2)); // length mismatch
    is_invalid(accuracy(&[0, 2], &[0, 1], 2)); // label >= k
    is_invalid(accuracy(&[0, 1], &[0, 5], 2)); // prediction >= k
    is_invalid(accuracy(&[], &[], 2)); // no samples
    is_invalid(accuracy(&[0], &[0], 0)); // k = 0
    is_invalid(balanced_accuracy(&[0, 3], &[0, 1], 3));
    is_invalid(confusion_matrix(&[0, 1], &[0, 1, 1], 2));
    is_invalid(class_metrics(&[9], &[0], 2));
    is_invalid(quadratic_weighted_kappa(&[0, 5], &[0, 1], 5));
    is_invalid(roc_auc_binary(&[0.1, 0.2], &[true]));
    is_invalid(roc_auc_binary(&[0.1, f32::NAN], &[true, false]));
    is_invalid(macro_auc_ovr(&[0, 1], &[0.1, 0.9, 0.2], 2)); // scores not n*k
    is_invalid(macro_auc_ovr(&[0, 1], &[0.1, 0.9, f32::NAN, 0.2], 2));
    is_invalid(macro_auc_ovr(&[0, 2], &[0.1, 0.9, 0.8, 0.2], 2));
    is_invalid(argmax_predictions(&[0.1, 0.9, 0.2], 2));
    is_invalid(argmax_predictions(&[0.1, f32::NAN], 2));
    is_invalid(argmax_predictions(&[0.1], 0));
    is_invalid(isic2017_task_aucs(&[0, 1], &[0.1; 5], 3, 0, 1));
    is_invalid(Report::new(&[0, 1], &[0.1, 0.9, 0.8, 0.2], 2, &names(3), false)); // 3 names for k = 2
    is_invalid(Report::new(&[0, 1], &[0.1, 0.9, 0.8, f32::NAN], 2, &names(2), false));
    is_invalid(Report::new(&[0, 0], &[0.1, 0.9], 1, &names(1), true)); // kappa with k = 1
}

// ---------------------------------------------------------------- Report

#[test]
fn report_gathers_everything() {
    let (y, s) = three_class_case();
    let class_names: Vec<String> = ["MEL", "SK", "NV"].iter().map(|s| s.to_string()).collect();
    let r = Report::new(&y, &s, 3, &class_names, true).unwrap();
    // argmax rows: [0.6,0.3,0.1]->0, [0.2,0.5,0.3]->1, [0.3,0.6,0.1]->1, [0.5,0.4,0.1]->0; ŷ = [0,1,1,0].
    // CM = [[1,1,0],[1,1,0],[0,0,0]]: accuracy 2/4, recall c0 = c1 = 1/2, class NV absent.
    assert_eq!(r.confusion, vec![vec![1, 1, 0], vec![1, 1, 0], vec![0, 0, 0]]);
    close(r.accuracy, 0.5);
    close(r.balanced_accuracy.value, 0.5);
    assert_eq!(r.balanced_accuracy.absent_classes, vec![2]);
    close_opt(r.auc.mean, Some(0.625));
    close(r.classes.macro_f1, 0.5);
    assert_eq!(r.classes.excluded_classes, vec![2]);
    // kappa: O01 = O10 = 1 with w = 1/4: sum w O = 0.5. hist_true = hist_pred = [2,2,0], n = 4: E = 1 on the
    // 2x2 block, sum w E = 2 * 1/4 = 0.5 -> kappa = 1 - 1 = 0.
    close(r.kappa.unwrap(), 0.0);

    let j = r.to_json();
    assert_eq!(j["n"], 4);
    assert_eq!(j["accuracy"], 0.5);
    assert_eq!(j["macro_auc"], 0.625);
    assert_eq!(j["balanced_accuracy_absent_classes"], serde_json::json!(["NV"]));
    assert_eq!(j["auc_undefined_classes"], serde_json::json!(["NV"]));
    assert_eq!(j["per_class"][2]["auc"], serde_json::Value::Null);
    assert_eq!(j["per_class"][0]["class"], "MEL");
    assert_eq!(j["confusion_matrix"][0], serde_json::json!([1, 1, 0]));
    assert_eq!(j["quadratic_weighted_kappa"], 0.0);
    serde_json::to_string(&j).unwrap();

    let text = r.to_string();
    for needle in ["balanced accuracy  0.5000", "left out: NV", "macro AUC (OvR)    0.6250", "MEL", "SK", "NV", "n/a", "quadratic kappa"] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }

    // Degenerate kappa is NaN in the struct and null in JSON; no kappa key when not requested.
    let r = Report::new(&[1, 1], &[0.1, 0.9, 0.2, 0.8], 2, &names(2), true).unwrap();
    assert!(r.kappa.unwrap().is_nan());
    assert_eq!(r.to_json()["quadratic_weighted_kappa"], serde_json::Value::Null);
    assert_eq!(r.to_json()["macro_auc"], serde_json::Value::Null);
    assert!(Report::new(&[1, 1], &[0.1, 0.9, 0.2, 0.8], 2, &names(2), false).unwrap().to_json().get("quadratic_weighted_kappa").is_none());
}

// ---------------------------------------------------------------- scikit-learn cross-check
//
// Reference values from scikit-learn 1.9.1 (numpy RNG, run once; the test does not need Python):
//
// import numpy as np, warnings
// from sklearn.metrics import (accuracy_score, balanced_accuracy_score, precision_recall_fscore_support,
//                              roc_auc_score, cohen_kappa_score, confusion_matrix)
// warnings.simplefilter("ignore")
// def case(name, seed, n, k, label_classes):
//     rng = np.random.default_rng(seed)
//     y = rng.choice(label_classes, size=n)
//     s = rng.integers(0, 9, size=(n, k)) / 8.0  # multiples of 1/8: exact in f32, many ties
//     p = s.argmax(1)
//     # printed: y, s, accuracy_score(y, p), balanced_accuracy_score(y, p),
//     # precision_recall_fscore_support(y, p, labels=list(range(k)), average=None, zero_division=0),
//     # precision_recall_fscore_support(y, p, average="macro", zero_division=0),
//     # [roc_auc_score(y == c, s[:, c]) if 0 < (y == c).sum() < n else None for c in range(k)] and their mean
//     # (k > 2) or roc_auc_score(y, s[:, 1]) (k = 2),
//     # cohen_kappa_score(y, p, labels=list(range(k)), weights="quadratic"), confusion_matrix(y, p, labels=range(k))
// case("SK_A", 1, 30, 3, [0, 1, 2])
// case("SK_B", 2, 50, 5, [0, 1, 2, 3, 4])
// case("SK_C", 3, 24, 4, [0, 1, 2])   # class 3 never a label (but predicted)
// case("SK_D", 4, 20, 2, [0, 1])

const SK_A_Y: [usize; 30] = [1, 1, 2, 2, 0, 0, 2, 2, 0, 0, 2, 1, 0, 2, 0, 1, 1, 1, 0, 0, 2, 2, 2, 1, 2, 0, 1, 2, 0, 0];
const SK_A_S: [f32; 90] = [
    0.125, 0.5, 1.0, 0.125, 0.375, 0.375, 1.0, 0.125, 0.5, 0.25, 0.0, 0.75, 0.0, 0.25, 0.5, 0.5, 0.125, 1.0, 0.75, 1.0, 0.0, 0.75, 0.25, 0.5, 1.0,
    0.25, 0.75, 0.125, 0.25, 1.0, 0.375, 0.5, 0.25, 0.125, 0.375, 0.625, 0.5, 0.75, 0.375, 0.625, 0.75, 1.0, 0.375, 0.0, 0.75, 0.5, 0.875, 0.5,
    0.375, 0.0, 0.5, 0.625, 0.75, 0.875, 0.125, 0.625, 0.875, 0.25, 0.375, 0.875, 0.625, 0.5, 0.75, 0.5, 1.0, 0.75, 0.0, 0.125, 0.5, 0.875, 0.0,
    0.75, 0.75, 0.875, 0.875, 0.125, 0.5, 0.875, 0.375, 0.125, 0.5, 0.0, 0.125, 0.875, 0.75, 0.875, 0.875, 0.875, 0.25, 0.5,
];
const SK_B_Y: [usize; 50] = [
    4, 1, 0, 1, 2, 4, 2, 0, 1, 3, 4, 3, 4, 0, 4, 0, 2, 1, 1, 3, 1, 2, 1, 0, 3, 2, 3, 3, 4, 2, 1, 3, 4, 4, 4, 3, 1, 1, 0, 0, 1, 1, 2, 2, 3, 4, 4, 3,
    4, 1,
];
const SK_B_S: [f32; 250] = [
    1.0, 1.0, 0.25, 0.5, 0.625, 0.75, 0.75, 0.0, 0.5, 0.0, 1.0, 0.125, 0.5, 0.875, 0.5, 0.75, 0.5, 0.875, 0.625, 0.625, 0.5, 0.375, 0.625, 0.5,
    0.875, 0.625, 0.5, 0.875, 0.125, 0.375, 0.5, 1.0, 0.375, 0.625, 0.0, 0.875, 0.375, 0.5, 0.0, 0.75, 0.625, 0.375, 0.75, 0.5, 0.0, 0.125, 0.25,
    0.0, 0.5, 0.0, 0.5, 0.75, 0.625, 0.5, 0.25, 1.0, 0.25, 0.875, 0.375, 0.375, 0.75, 1.0, 0.875, 0.625, 0.0, 0.75, 0.875, 0.375, 0.375, 0.125, 1.0,
    0.125, 0.5, 0.125, 0.875, 0.625, 0.125, 0.125, 0.0, 0.0, 0.875, 0.875, 0.375, 0.0, 0.25, 0.5, 0.5, 0.5, 0.625, 0.625, 0.625, 0.5, 0.5, 1.0,
    0.875, 0.75, 0.0, 0.625, 0.875, 0.625, 0.125, 0.5, 0.5, 1.0, 0.5, 0.25, 0.0, 0.75, 1.0, 0.5, 0.0, 0.0, 0.875, 0.25, 0.5, 1.0, 0.25, 0.875, 0.0,
    0.0, 0.0, 0.25, 0.5, 0.0, 0.625, 0.875, 0.5, 0.0, 0.875, 0.0, 0.5, 1.0, 0.375, 0.5, 0.25, 0.25, 0.25, 0.0, 0.75, 0.375, 1.0, 0.375, 0.875, 0.5,
    0.625, 0.0, 0.875, 0.125, 1.0, 0.125, 0.75, 0.375, 0.75, 0.25, 0.25, 0.625, 0.0, 0.25, 0.75, 1.0, 0.5, 1.0, 0.25, 0.0, 0.75, 0.125, 1.0, 0.625,
    1.0, 0.75, 0.75, 0.0, 0.875, 0.125, 0.0, 0.5, 0.0, 0.75, 1.0, 1.0, 1.0, 0.875, 0.25, 0.875, 0.25, 0.0, 0.75, 1.0, 0.875, 0.625, 1.0, 0.0, 0.0,
    0.25, 0.0, 0.625, 0.0, 0.375, 0.5, 0.5, 0.625, 0.875, 0.875, 0.875, 0.75, 0.5, 0.625, 0.875, 0.5, 0.375, 0.875, 1.0, 0.375, 0.625, 0.0, 1.0,
    0.875, 0.0, 0.375, 0.875, 0.625, 0.625, 0.125, 0.75, 0.625, 0.125, 0.5, 0.5, 0.625, 0.25, 0.5, 0.0, 0.625, 0.0, 0.0, 1.0, 0.875, 0.75, 0.5,
    0.125, 0.375, 0.25, 0.125, 0.5, 0.5, 0.875, 0.5, 0.125, 0.125, 1.0,
];
const SK_C_Y: [usize; 24] = [2, 0, 0, 0, 0, 2, 2, 1, 0, 0, 0, 1, 1, 1, 0, 0, 2, 2, 0, 0, 1, 1, 2, 1];
const SK_C_S: [f32; 96] = [
    0.375, 0.375, 0.625, 0.625, 0.125, 0.75, 0.75, 1.0, 0.875, 0.25, 0.25, 0.625, 0.625, 0.75, 0.875, 0.25, 1.0, 0.0, 0.0, 1.0, 1.0, 0.25, 0.125,
    0.25, 0.0, 1.0, 0.625, 0.625, 0.25, 0.5, 0.125, 0.75, 0.5, 0.0, 0.25, 0.75, 0.5, 0.375, 0.25, 0.0, 0.625, 0.625, 0.5, 1.0, 1.0, 0.125, 0.625,
    0.625, 0.25, 0.25, 0.5, 0.75, 0.25, 0.75, 0.625, 0.125, 0.375, 0.875, 0.875, 0.625, 0.0, 0.75, 0.25, 0.875, 1.0, 0.375, 1.0, 0.75, 0.25, 0.875,
    0.375, 0.0, 0.625, 0.875, 0.625, 0.375, 1.0, 0.5, 0.375, 0.125, 0.125, 0.75, 0.875, 0.25, 0.625, 0.875, 0.125, 0.25, 0.5, 0.625, 0.375, 0.375,
    0.125, 0.625, 1.0, 0.125,
];
const SK_D_Y: [usize; 20] = [1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1];
const SK_D_S: [f32; 40] = [
    0.375, 1.0, 0.0, 0.5, 1.0, 0.375, 0.125, 0.875, 1.0, 1.0, 1.0, 0.375, 0.75, 1.0, 0.625, 1.0, 0.625, 0.125, 0.5, 0.625, 0.25, 0.75, 0.375, 1.0,
    0.125, 0.625, 0.0, 0.125, 0.5, 0.5, 0.5, 0.5, 0.875, 0.5, 0.375, 1.0, 0.875, 0.375, 0.125, 0.25,
];

struct Reference {
    accuracy: f64,
    balanced: f64,
    precision: &'static [f64],
    recall: &'static [f64],
    f1: &'static [f64],
    macro_prf: [f64; 3],
    auc: &'static [Option<f64>],
    macro_auc: f64,
    kappa: f64,
    cm: &'static [&'static [usize]],
}

fn check_reference(y: &[usize], s: &[f32], k: usize, r: &Reference) {
    let p = argmax_predictions(s, k).unwrap();
    close(accuracy(y, &p, k).unwrap(), r.accuracy);
    close(balanced_accuracy(y, &p, k).unwrap().value, r.balanced);
    let m = class_metrics(y, &p, k).unwrap();
    for c in 0..k {
        close(m.precision[c], r.precision[c]);
        close(m.recall[c], r.recall[c]);
        close(m.f1[c], r.f1[c]);
    }
    close(m.macro_precision, r.macro_prf[0]);
    close(m.macro_recall, r.macro_prf[1]);
    close(m.macro_f1, r.macro_prf[2]);
    let a = macro_auc_ovr(y, s, k).unwrap();
    for c in 0..k {
        close_opt(a.per_class[c], r.auc[c]);
    }
    close_opt(a.mean, Some(r.macro_auc));
    close(quadratic_weighted_kappa(y, &p, k).unwrap(), r.kappa);
    let cm = confusion_matrix(y, &p, k).unwrap();
    assert_eq!(cm, r.cm.iter().map(|row| row.to_vec()).collect::<Vec<_>>());
    let rep = Report::new(y, s, k, &names(k), true).unwrap();
    close(rep.balanced_accuracy.value, r.balanced);
    close(rep.classes.macro_f1, r.macro_prf[2]);
}

#[test]
fn sklearn_case_a() {
    check_reference(
        &SK_A_Y,
        &SK_A_S,
        3,
        &Reference {
            accuracy: 0.3,
            balanced: 0.29545454545454547,
            precision: &[0.4, 0.25, 0.29411764705882354],
            recall: &[0.18181818181818182, 0.25, 0.45454545454545453],
            f1: &[0.25, 0.25, 0.35714285714285715],
            macro_prf: [0.31470588235294117, 0.29545454545454547, 0.28571428571428575],
            auc: &[Some(0.4593301435406698), Some(0.4460227272727273), Some(0.4138755980861244)],
            macro_auc: 0.4397428229665072,
            kappa: -0.09090909090909083,
            cm: &[&[2, 2, 7], &[1, 2, 5], &[2, 4, 5]],
        },
    );
}

#[test]
fn sklearn_case_b() {
    check_reference(
        &SK_B_Y,
        &SK_B_S,
        5,
        &Reference {
            accuracy: 0.24,
            balanced: 0.2868131868131868,
            precision: &[0.35294117647058826, 0.1111111111111111, 0.0, 0.4166666666666667, 0.0],
            recall: &[0.8571428571428571, 0.07692307692307693, 0.0, 0.5, 0.0],
            f1: &[0.5, 0.09090909090909091, 0.0, 0.45454545454545453, 0.0],
            macro_prf: [0.1761437908496732, 0.2868131868131868, 0.20909090909090908],
            auc: &[Some(0.7558139534883721), Some(0.5738045738045738), Some(0.3110119047619047), Some(0.5887499999999999), Some(0.5043859649122807)],
            macro_auc: 0.5467532793934262,
            kappa: 0.1826648926059684,
            cm: &[&[6, 1, 0, 0, 0], &[3, 1, 5, 3, 1], &[3, 2, 0, 2, 1], &[2, 1, 0, 5, 2], &[3, 4, 3, 2, 0]],
        },
    );
}

#[test]
fn sklearn_case_c_absent_label_class() {
    // Class 3 is predicted but never a label: balanced accuracy drops it (0.272...), while macro recall keeps it
    // with recall 0/0 := 0 (0.204...), exactly as sklearn does.
    check_reference(
        &SK_C_Y,
        &SK_C_S,
        4,
        &Reference {
            accuracy: 0.2916666666666667,
            balanced: 0.272005772005772,
            precision: &[0.5714285714285714, 0.2857142857142857, 0.25, 0.0],
            recall: &[0.36363636363636365, 0.2857142857142857, 0.16666666666666666, 0.0],
            f1: &[0.4444444444444444, 0.2857142857142857, 0.2, 0.0],
            macro_prf: [0.2767857142857143, 0.204004329004329, 0.23253968253968255],
            auc: &[Some(0.6188811188811189), Some(0.4957983193277311), Some(0.5324074074074074), None],
            macro_auc: 0.5490289485387524,
            kappa: -0.14798206278026926,
            cm: &[&[4, 2, 1, 4], &[1, 2, 2, 2], &[2, 3, 1, 0], &[0, 0, 0, 0]],
        },
    );
    assert_eq!(balanced_accuracy(&SK_C_Y, &argmax_predictions(&SK_C_S, 4).unwrap(), 4).unwrap().absent_classes, vec![3]);
}

#[test]
fn sklearn_case_d_binary() {
    // Binary: the headline AUC is roc_auc_score(y, s[:, 1]) = 0.5.
    check_reference(
        &SK_D_Y,
        &SK_D_S,
        2,
        &Reference {
            accuracy: 0.6,
            balanced: 0.5714285714285714,
            precision: &[0.375, 0.75],
            recall: &[0.5, 0.6428571428571429],
            f1: &[0.42857142857142855, 0.6923076923076923],
            macro_prf: [0.5625, 0.5714285714285714, 0.5604395604395604],
            auc: &[Some(0.5654761904761906), Some(0.5)],
            macro_auc: 0.5,
            kappa: 0.13043478260869557,
            cm: &[&[3, 3], &[5, 9]],
        },
    );
}
