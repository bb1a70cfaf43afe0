//! The Barlow Twins loss (METHOD.md §6) as the trainer sees it: shape checks, output allocation, the loss and its
//! two terms read back to the host, and the saved standardised embeddings for backward.
//!
//! ```text
//! let (terms, saved) = barlow_twins::forward(b, &cfg, &za, &zb)?;   // terms.loss, terms.on_diag, terms.off_diag
//! let (dza, dzb) = barlow_twins::backward(b, &cfg, &saved, 2.0)?;     // gradient of 2 × loss (the concat step)
//! ```

use std::fmt;
use std::str::FromStr;

use crate::backend::geom::{BarlowTwinsGeom, BT_FORM_REFERENCE, BT_FORM_STANDARD};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub use super::l2_normalized_std::std_of_l2_normalized;

/// Which loss: BT's standard form (default) or the FG-SSL reference code's `λ²‖C − I‖²` with the unbiased std.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BtForm {
    #[default]
    Standard,
    Reference,
}

impl FromStr for BtForm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "standard" => Ok(BtForm::Standard),
            "reference" => Ok(BtForm::Reference),
            other => Err(Error::Invalid(format!("unknown Barlow Twins loss form {other:?}; expected \"standard\" or \"reference\""))),
        }
    }
}

impl fmt::Display for BtForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BtForm::Standard => "standard",
            BtForm::Reference => "reference",
        })
    }
}

/// Loss settings: λ weighs the off-diagonal term (standard form) or scales the whole loss by λ² (reference form).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BtConfig {
    pub lambda: f32,
    pub form: BtForm,
}

impl Default for BtConfig {
    /// λ = 5e-3 (METHOD.md §6), standard form.
    fn default() -> Self {
        BtConfig { lambda: 5e-3, form: BtForm::Standard }
    }
}

/// The loss and its two parts, `loss = on_diag + off_diag`. Standard form: `on_diag = Σ(1 − C_ii)²`,
/// `off_diag = λ Σ_{i≠j} C_ij²`; reference form: the diagonal and off-diagonal parts of `λ²‖C − I‖²`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BtTerms {
    pub loss: f32,
    pub on_diag: f32,
    pub off_diag: f32,
}

/// What backward needs: the standardised embeddings, `1/σ` per dimension and the cross-correlation `C`.
pub struct BtSaved<B: Backend> {
    pub geom: BarlowTwinsGeom,
    pub za_hat: Tensor<B>,
    pub zb_hat: Tensor<B>,
    pub inv_std_a: Tensor<B>,
    pub inv_std_b: Tensor<B>,
    /// `[f, f]`.
    pub c: Tensor<B>,
}

fn geom<B: Backend>(cfg: &BtConfig, za: &Tensor<B>, zb: &Tensor<B>) -> Result<BarlowTwinsGeom> {
    let [n, f] = za.shape.nf("barlow_twins")?;
    if zb.shape != za.shape {
        return Err(Error::shape("barlow_twins", format!("the two embeddings differ in shape: {:?} vs {:?}", za.shape.0, zb.shape.0)));
    }
    if n < 2 {
        return Err(Error::shape("barlow_twins", format!("needs a batch of at least 2 for the per-dimension statistics, got {n}")));
    }
    if f == 0 {
        return Err(Error::shape("barlow_twins", "the embeddings have no dimensions"));
    }
    if !cfg.lambda.is_finite() {
        return Err(Error::Invalid(format!("barlow_twins: lambda must be finite, got {}", cfg.lambda)));
    }
    let form = match cfg.form {
        BtForm::Standard => BT_FORM_STANDARD,
        BtForm::Reference => BT_FORM_REFERENCE,
    };
    Ok(BarlowTwinsGeom { n, f, lambda: cfg.lambda, form })
}

/// The loss of the embedding pair (`za`, `zb` `[n, f]`, n >= 2), read back to the host, and what backward needs.
pub fn forward<B: Backend>(b: &B, cfg: &BtConfig, za: &Tensor<B>, zb: &Tensor<B>) -> Result<(BtTerms, BtSaved<B>)> {
    let g = geom(cfg, za, zb)?;
    let mut za_hat = Tensor::uninit(b, [g.n, g.f])?;
    let mut zb_hat = Tensor::uninit(b, [g.n, g.f])?;
    let mut inv_std_a = Tensor::uninit(b, [g.f])?;
    let mut inv_std_b = Tensor::uninit(b, [g.f])?;
    let mut c = Tensor::uninit(b, [g.f, g.f])?;
    let mut terms = Tensor::uninit(b, [3])?;
    b.barlow_twins_fwd(
        &g,
        za.view(b),
        zb.view(b),
        za_hat.view_mut(b),
        zb_hat.view_mut(b),
        inv_std_a.view_mut(b),
        inv_std_b.view_mut(b),
        c.view_mut(b),
        terms.view_mut(b),
    );
    let t = terms.to_host(b)?;
    Ok((BtTerms { loss: t[0], on_diag: t[1], off_diag: t[2] }, BtSaved { geom: g, za_hat, zb_hat, inv_std_a, inv_std_b, c }))
}

/// Gradients of `dloss * loss` with respect to `za` and `zb`: `(dza, dzb)`.
pub fn backward<B: Backend>(b: &B, cfg: &BtConfig, saved: &BtSaved<B>, dloss: f32) -> Result<(Tensor<B>, Tensor<B>)> {
    let g = geom(cfg, &saved.za_hat, &saved.zb_hat)?;
    if g != saved.geom {
        return Err(Error::Invalid(format!("barlow_twins backward: config {cfg:?} differs from the forward's {:?}", saved.geom)));
    }
    let mut dza = Tensor::uninit(b, [g.n, g.f])?;
    let mut dzb = Tensor::uninit(b, [g.n, g.f])?;
    b.barlow_twins_bwd(
        &g,
        saved.za_hat.view(b),
        saved.zb_hat.view(b),
        saved.inv_std_a.view(b),
        saved.inv_std_b.view(b),
        saved.c.view(b),
        dloss,
        dza.view_mut(b),
        dzb.view_mut(b),
    );
    Ok((dza, dzb))
}
