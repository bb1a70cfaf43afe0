//! Learning-rate schedules: METHOD.md §10's per-epoch cosine `lr_e = lr₀/2 · (cos(π·(e mod E)/E) + 1)` (PMG's
//! `cosine_anneal_schedule`), optionally with Barlow Twins' linear warm-up and final-lr floor
//! (`adjust_learning_rate` in facebookresearch/barlowtwins: warm-up `lr₀·t/W`, then
//! `q = ½(1 + cos(π (t − W)/(T − W)))`, `lr = lr₀·q + lr₀·floor·(1 − q)`, floor 0.001), or a constant rate.
//!
//! The unit of `t` is the caller's: epochs for the per-epoch schedule of the reference, steps for a per-step one.
//! All arithmetic is f64; the result is rounded to f32 once.

use std::str::FromStr;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleKind {
    Cosine,
    Constant,
}

impl FromStr for ScheduleKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cosine" => Ok(ScheduleKind::Cosine),
            "constant" => Ok(ScheduleKind::Constant),
            other => Err(Error::Invalid(format!("unknown learning-rate schedule {other:?}; expected \"cosine\" or \"constant\""))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// lr₀: the rate of the first post-warm-up period (multiplied by each parameter group's `lr_scale` later).
    pub base_lr: f32,
    /// E: periods (epochs or steps) of the whole schedule; `t` wraps modulo E as in the reference.
    pub total: usize,
    /// W: periods of linear warm-up from 0 (0 = none, the reference's choice).
    pub warmup: usize,
    pub kind: ScheduleKind,
    /// The cosine's end point as a fraction of lr₀ (0 = METHOD.md's cosine to zero; Barlow Twins uses 0.001).
    pub final_fraction: f32,
}

impl Schedule {
    /// METHOD.md §10: per-epoch cosine over `total` epochs, no warm-up, down to zero.
    pub fn cosine(base_lr: f32, total: usize) -> Self {
        Schedule { base_lr, total, warmup: 0, kind: ScheduleKind::Cosine, final_fraction: 0.0 }
    }

    pub fn constant(base_lr: f32, total: usize) -> Self {
        Schedule { base_lr, total, warmup: 0, kind: ScheduleKind::Constant, final_fraction: 0.0 }
    }

    pub fn with_warmup(self, warmup: usize) -> Self {
        Schedule { warmup, ..self }
    }

    pub fn with_final_fraction(self, final_fraction: f32) -> Self {
        Schedule { final_fraction, ..self }
    }

    /// Rejects settings for which [`Schedule::lr`] would be meaningless.
    pub fn validate(&self) -> Result<()> {
        if !(self.base_lr.is_finite() && self.base_lr >= 0.0) {
            return Err(Error::Invalid(format!("learning rate must be finite and >= 0, got {}", self.base_lr)));
        }
        if self.total == 0 {
            return Err(Error::Invalid("the schedule needs at least one epoch/step".into()));
        }
        if self.warmup >= self.total && self.kind == ScheduleKind::Cosine {
            return Err(Error::Invalid(format!("warm-up ({}) must be shorter than the schedule ({})", self.warmup, self.total)));
        }
        if !(0.0..=1.0).contains(&self.final_fraction) {
            return Err(Error::Invalid(format!("final lr fraction must be in [0, 1], got {}", self.final_fraction)));
        }
        Ok(())
    }

    /// The rate at period `t` (0-based).
    pub fn lr(&self, t: usize) -> f32 {
        let base = self.base_lr as f64;
        let t = t % self.total.max(1);
        if t < self.warmup {
            return (base * t as f64 / self.warmup as f64) as f32;
        }
        match self.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Cosine => {
                let span = (self.total - self.warmup).max(1) as f64;
                let q = 0.5 * ((std::f64::consts::PI * (t - self.warmup) as f64 / span).cos() + 1.0);
                let end = base * self.final_fraction as f64;
                (base * q + end * (1.0 - q)) as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64) -> bool {
        (a as f64 - b).abs() <= 1e-7 * b.abs().max(1e-3)
    }

    #[test]
    fn per_epoch_cosine_matches_method_md() {
        // lr_e = 0.002 / 2 (cos(pi e / 4) + 1) for E = 4: 0.002, 0.0017071068, 0.001, 0.00029289322; e = 4 wraps.
        let s = Schedule::cosine(0.002, 4);
        let want = [0.002, 0.001_707_106_781_186_547_5, 0.001, 0.000_292_893_218_813_452_5, 0.002];
        for (e, &w) in want.iter().enumerate() {
            assert!(close(s.lr(e), w), "epoch {e}: {} vs {w}", s.lr(e));
        }
        s.validate().unwrap();
    }

    #[test]
    fn warmup_then_cosine_to_a_floor_matches_barlow_twins() {
        // BT: base 1, W = 2, T = 6, floor 0.001. t = 0, 1: 0, 0.5; then q = (1 + cos(pi k / 4)) / 2 for k = t - 2,
        // lr = q + 0.001 (1 - q): k = 0 -> 1; k = 1 -> 0.8535534 + 0.001 * 0.1464466; k = 2 -> 0.5005; k = 3 ->
        // 0.1464466 + 0.001 * 0.8535534.
        let s = Schedule::cosine(1.0, 6).with_warmup(2).with_final_fraction(0.001);
        let q1 = 0.853_553_390_593_273_7;
        let want = [0.0, 0.5, 1.0, q1 + 0.001 * (1.0 - q1), 0.5005, (1.0 - q1) + 0.001 * q1];
        for (t, &w) in want.iter().enumerate() {
            assert!(close(s.lr(t), w), "t {t}: {} vs {w}", s.lr(t));
        }
    }

    #[test]
    fn constant_with_warmup() {
        let s = Schedule::constant(0.1, 10).with_warmup(4);
        assert!(close(s.lr(1), 0.025));
        assert!(close(s.lr(3), 0.075));
        assert_eq!(s.lr(4), 0.1);
        assert_eq!(s.lr(9), 0.1);
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert!(Schedule::cosine(0.1, 0).validate().is_err());
        assert!(Schedule::cosine(0.1, 5).with_warmup(5).validate().is_err());
        assert!(Schedule::cosine(f32::NAN, 5).validate().is_err());
        assert!(Schedule::cosine(0.1, 5).with_final_fraction(2.0).validate().is_err());
        assert!("cosine".parse::<ScheduleKind>().is_ok() && "linear".parse::<ScheduleKind>().is_err());
    }
}
