// augment_params.cuh: the per-call geometry and per-sample parameters of augment_fwd, shared by augment.cu and
// augmix.cu. Mirrors src/backend/geom.rs field for field (usize -> unsigned long long, u32 -> unsigned int).
#ifndef FG_AUGMENT_PARAMS_CUH
#define FG_AUGMENT_PARAMS_CUH

#define AUG_MAX_VIEWS 4
#define AUG_MAX_TAPS 25
#define AUGMIX_MAX_WIDTH 3
#define AUGMIX_MAX_DEPTH 3

// Mirrors `geom::AugmentGeom`.
struct AugmentGeom {
    unsigned long long n, src, out, views;
    unsigned long long grids[AUG_MAX_VIEWS];
    float mean[3], std[3];
};
static_assert(sizeof(AugmentGeom) == 88, "AugmentGeom layout");

// Mirrors `geom::AugmixOp`: kind (src/augment/augmix.rs `kind`), posterize bits, blend ratio or solarize
// threshold, 1 - ratio, the rescaled affine map of the geometric ops.
struct AugmixOp {
    unsigned int kind, bits;
    float ratio, complement;
    float theta[6];
};
static_assert(sizeof(AugmixOp) == 40, "AugmixOp layout");

// Mirrors `geom::AugmixParams`.
struct AugmixParams {
    unsigned int on;
    unsigned int depth[AUGMIX_MAX_WIDTH];
    float orig_weight;
    float chain_weights[AUGMIX_MAX_WIDTH];
    AugmixOp ops[AUGMIX_MAX_WIDTH][AUGMIX_MAX_DEPTH];
};
static_assert(sizeof(AugmixParams) == 392, "AugmixParams layout");

// Mirrors `geom::SampleAug`.
struct SampleAug {
    unsigned int crop_top, crop_left, crop_h, crop_w;
    unsigned int hflip, vflip;
    unsigned int jitter;
    unsigned int jitter_order[4];
    float brightness, contrast, saturation, hue;
    unsigned int grayscale, solarize;
    unsigned int blur_radius;
    float blur_sigma;
    float blur_taps[AUG_MAX_TAPS];
    AugmixParams augmix;
};
static_assert(sizeof(SampleAug) == 568, "SampleAug layout");

#endif
