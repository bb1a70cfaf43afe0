//! The colour baseline the synthetic data set is built to defeat: a joint RGB histogram per image and a
//! 1-nearest-neighbour classifier on it, plus the seeded stratified split both baselines use.

use image::RgbImage;

use crate::rng::Rng;

/// Joint RGB histogram with `bins` bins per channel (`bins^3` values), normalised to sum to 1.
pub fn colour_histogram(img: &RgbImage, bins: usize) -> Vec<f32> {
    assert!((1..=256).contains(&bins), "bins must be in 1..=256");
    let mut h = vec![0.0f32; bins * bins * bins];
    let bin = |v: u8| v as usize * bins / 256;
    for p in img.pixels() {
        h[(bin(p.0[0]) * bins + bin(p.0[1])) * bins + bin(p.0[2])] += 1.0;
    }
    let n = (img.width() * img.height()).max(1) as f32;
    h.iter_mut().for_each(|v| *v /= n);
    h
}

/// Distance between two normalised histograms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistDistance {
    /// Sum of absolute differences.
    L1,
    /// Chi-square: sum of (a - b)^2 / (a + b) over bins where a + b > 0.
    ChiSquare,
}

impl HistDistance {
    pub fn eval(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            HistDistance::L1 => a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum(),
            HistDistance::ChiSquare => a.iter().zip(b).filter(|(x, y)| *x + *y > 0.0).map(|(x, y)| (x - y) * (x - y) / (x + y)).sum(),
        }
    }
}

/// Predicted label of each test feature: the label of its nearest training feature (ties: the first).
pub fn nearest_neighbour(train: &[(Vec<f32>, usize)], test: &[Vec<f32>], dist: HistDistance) -> Vec<usize> {
    use rayon::prelude::*;
    test.par_iter()
        .map(|q| {
            train.iter().map(|(f, l)| (dist.eval(f, q), *l)).fold((f32::INFINITY, usize::MAX), |best, cur| if cur.0 < best.0 { cur } else { best }).1
        })
        .collect()
}

/// Splits sample indices `0..labels.len()` into (train, test), stratified by label: in each class a seeded
/// shuffle, then the first `round(n * train_fraction)` (at least one and at most n - 1 when n >= 2) go to train.
/// Both lists are sorted.
pub fn stratified_split(labels: &[usize], train_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for c in 0..classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        let mut rng = Rng::new(crate::rng::counter_u64(seed, c as u64));
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.below(i + 1));
        }
        let n = idx.len();
        let mut k = (n as f64 * train_fraction).round() as usize;
        if n >= 2 {
            k = k.clamp(1, n - 1);
        }
        train.extend_from_slice(&idx[..k.min(n)]);
        test.extend_from_slice(&idx[k.min(n)..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// Fraction of `pred` equal to `truth`.
pub fn accuracy(pred: &[usize], truth: &[usize]) -> f64 {
    if pred.is_empty() {
        return 0.0;
    }
    pred.iter().zip(truth).filter(|(p, t)| p == t).count() as f64 / pred.len() as f64
}

/// Accuracy of the colour-histogram 1-NN classifier trained on `train` and tested on `test` (indices into
/// `images` / `labels`).
pub fn histogram_nn_accuracy(images: &[RgbImage], labels: &[usize], train: &[usize], test: &[usize], bins: usize, dist: HistDistance) -> f64 {
    use rayon::prelude::*;
    let hists: Vec<Vec<f32>> = images.par_iter().map(|im| colour_histogram(im, bins)).collect();
    let train_set: Vec<(Vec<f32>, usize)> = train.iter().map(|&i| (hists[i].clone(), labels[i])).collect();
    let test_set: Vec<Vec<f32>> = test.iter().map(|&i| hists[i].clone()).collect();
    let truth: Vec<usize> = test.iter().map(|&i| labels[i]).collect();
    accuracy(&nearest_neighbour(&train_set, &test_set, dist), &truth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_sums_to_one_and_bins_by_value() {
        let mut img = RgbImage::from_pixel(2, 2, image::Rgb([0, 0, 0]));
        img.put_pixel(1, 1, image::Rgb([255, 128, 31]));
        let h = colour_histogram(&img, 8);
        assert!((h.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(h[0], 0.75);
        assert_eq!(h[(7 * 8 + 4) * 8], 0.25);
    }

    #[test]
    fn distances_and_nn() {
        let a = vec![0.5, 0.5, 0.0];
        let b = vec![0.0, 0.5, 0.5];
        assert_eq!(HistDistance::L1.eval(&a, &b), 1.0);
        assert_eq!(HistDistance::ChiSquare.eval(&a, &b), 1.0);
        let train = vec![(a.clone(), 3), (b.clone(), 7)];
        assert_eq!(nearest_neighbour(&train, &[vec![0.4, 0.6, 0.0], b], HistDistance::ChiSquare), vec![3, 7]);
    }

    #[test]
    fn split_is_stratified_disjoint_and_seeded() {
        let labels: Vec<usize> = (0..30).map(|i| i % 3).collect();
        let (tr, te) = stratified_split(&labels, 0.5, 4);
        assert_eq!(tr.len(), 15);
        assert_eq!(te.len(), 15);
        for c in 0..3 {
            assert_eq!(tr.iter().filter(|&&i| labels[i] == c).count(), 5);
        }
        assert!(tr.iter().all(|i| !te.contains(i)));
        assert_eq!(stratified_split(&labels, 0.5, 4), (tr.clone(), te));
        assert_ne!(stratified_split(&labels, 0.5, 5).0, tr);
    }
}
