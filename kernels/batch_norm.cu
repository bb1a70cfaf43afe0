// batch_norm.cu: batch norm over x [n, c, hw] (2-d: hw = H*W; 1-d on [N, F]: hw = 1), NCHW fp32, as
// src/backend/cpu/batch_norm.rs. Deterministic: no atomics; every reduction is a fixed two-level tree in double
// (per-block partials with a fixed shuffle/shared-memory tree, then one thread per channel summing the partials in
// index order). Same geometry + same launch shape -> bitwise identical results run to run.
//
// Work split for the reductions: channel c's cnt = n*hw values (element e -> x[(e / hw * C + c) * hw + e % hw]) are
// cut into P contiguous chunks, chunk p = [p*ceil(cnt/P), ...). P = gridDim.x of the *_partial kernels, chosen by
// the launcher (e.g. P = clamp(ceil(cnt / 4096), 1, max(1, 4 * SMs / C)) rounded however; ANY P >= 1 is correct),
// and the SAME P must be passed to the matching *_finalize kernel. Workspace `partial`: 2 * C * P doubles.
//
// TRAINING FORWARD = 3 launches:
//   1. batch_norm_stats_partial   grid (P, C) [blockIdx.y = channel, so C <= 65535], block FG_BLOCK (256; any
//      multiple of 32 <= 1024), static smem 256 B. Writes partial[(c*P + p)*2 + {0,1}] = shifted sums
//      (sum (x-K), sum (x-K)^2) with K = x[channel c, sample 0, position 0] (a shift that keeps the one-pass
//      variance accurate).
//   2. batch_norm_stats_finalize  block FG_BLOCK, grid ceil(C / 256) (one thread per channel), no smem.
//      mean, biased var -> saved_mean, saved_invstd = 1/sqrt(var + eps) (computed in double);
//      running_mean = (1-m) running_mean + m mean; running_var = (1-m) running_var + m var * cnt/(cnt-1) (unbiased).
//      Requires cnt > 1 (the CPU asserts it).
//   3. batch_norm_apply  block FG_BLOCK, grid any (grid-stride over n*c*hw), no smem.
//      y = (x - mean[c]) * (invstd[c] * gamma[c]) + beta[c]  [+ residual] [then ReLU]
//      residual may be NULL; relu = 0/1. (residual + relu are the fused BN+ReLU / BN+add+ReLU forward variants.)
//      Called with (saved_mean, saved_invstd) after 1-2.
// EVAL FORWARD = 1 launch: batch_norm_fwd_eval, block FG_BLOCK, grid any (grid-stride):
//      y = (x - running_mean[c]) * (gamma[c] / sqrt(running_var[c] + eps)) + beta[c]  [+ residual] [then ReLU]
//      (same epilogue arguments as batch_norm_apply).
// BACKWARD = 3 launches (dx WRITTEN, dgamma/dbeta ACCUMULATED +=). Fused BN+ReLU / BN+add+ReLU backward: pass
// the fused forward's output `y` (nullable): every kernel then reads the gradient as g = (y > 0) ? dy : 0 (exactly
// relu_bwd), and batch_norm_bwd_dx also writes g to `dresidual` (nullable; the residual's gradient for BN+add+ReLU).
//   1. batch_norm_bwd_partial  grid (P, C), block FG_BLOCK, static smem 256 B: partial sums of g and g*xhat,
//      xhat = (x - mean) * invstd, in double.
//   2. batch_norm_bwd_finalize  block FG_BLOCK, grid ceil(C / 256): dgamma[c] += sum dy*xhat; dbeta[c] += sum dy;
//      writes coef[4c .. 4c+4] = (mean, k, a, b), k = gamma*invstd, a = -k*invstd*sum(dy*xhat)/cnt,
//      b = -k*sum(dy)/cnt. Workspace `coef`: 4 * C floats.
//   3. batch_norm_bwd_dx  block FG_BLOCK, grid any (grid-stride over n*c*hw): dx = g*k + (x - mean)*a + b
//      [and dresidual = g].
//
// Signatures:
//   batch_norm_stats_partial(BatchNormGeom g, const float* x, double* partial)
//   batch_norm_stats_finalize(BatchNormGeom g, const double* partial, unsigned int P, const float* x,
//                             float* running_mean, float* running_var, float* saved_mean, float* saved_invstd)
//   batch_norm_apply(BatchNormGeom g, const float* x, const float* mean, const float* invstd, const float* gamma,
//                    const float* beta, const float* residual /* nullable */, unsigned int relu, float* y)
//   batch_norm_fwd_eval(BatchNormGeom g, const float* x, const float* gamma, const float* beta,
//                       const float* running_mean, const float* running_var, const float* residual /* nullable */,
//                       unsigned int relu, float* y)
//   batch_norm_bwd_partial(BatchNormGeom g, const float* x, const float* dy, const float* y /* nullable */,
//                          const float* saved_mean, const float* saved_invstd, double* partial)
//   batch_norm_bwd_finalize(BatchNormGeom g, const double* partial, unsigned int P, const float* gamma,
//                           const float* saved_mean, const float* saved_invstd, float* dgamma, float* dbeta,
//                           float* coef)
//   batch_norm_bwd_dx(BatchNormGeom g, const float* x, const float* dy, const float* y /* nullable */,
//                     const float* coef, float* dx, float* dresidual /* nullable */)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::BatchNormGeom` (usize -> unsigned long long, f32 -> float).
struct BatchNormGeom {
    unsigned long long n, c, hw;
    float eps, momentum;
};
static_assert(sizeof(BatchNormGeom) == 32, "BatchNormGeom layout");

// The gradient reaching the affine map: dy, masked by the fused forward's output when there is one (relu_bwd's
// rule: y > 0 passes, anything else, NaN included, gives 0).
__device__ __forceinline__ float bn_grad(const float* __restrict__ dy, const float* __restrict__ y, u64 i) {
    return (y == nullptr || y[i] > 0.0f) ? dy[i] : 0.0f;
}

// Chunk [e0, e1) of channel c's cnt values for block blockIdx.x of gridDim.x.
__device__ __forceinline__ void bn_chunk(u64 cnt, u64& e0, u64& e1) {
    const u64 P = gridDim.x, per = fg_div(cnt + P - 1, P);
    e0 = (u64)blockIdx.x * per;
    e1 = e0 + per;
    if (e0 > cnt) e0 = cnt;
    if (e1 > cnt) e1 = cnt;
}

__device__ __forceinline__ u64 bn_addr(const BatchNormGeom& g, u64 c, u64 e) {
    const u64 s = fg_div(e, g.hw), j = e - s * g.hw;
    return (s * g.c + c) * g.hw + j;
}

extern "C" __global__ void batch_norm_stats_partial(BatchNormGeom g, const float* __restrict__ x,
                                                    double* __restrict__ partial) {
    __shared__ double scratch[32];
    const u64 c = blockIdx.y, cnt = g.n * g.hw;
    u64 e0, e1;
    bn_chunk(cnt, e0, e1);
    const double K = (double)x[c * g.hw];  // sample 0, position 0 of channel c
    double s1 = 0.0, s2 = 0.0;
    for (u64 e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
        const double d = (double)x[bn_addr(g, c, e)] - K;
        s1 += d;
        s2 += d * d;
    }
    s1 = fg_block_sum(s1, scratch);
    s2 = fg_block_sum(s2, scratch);
    if (threadIdx.x == 0) {
        double* out = partial + (c * gridDim.x + blockIdx.x) * 2;
        out[0] = s1;
        out[1] = s2;
    }
}

extern "C" __global__ void batch_norm_stats_finalize(BatchNormGeom g, const double* __restrict__ partial,
                                                     unsigned int P, const float* __restrict__ x,
                                                     float* __restrict__ running_mean, float* __restrict__ running_var,
                                                     float* __restrict__ saved_mean, float* __restrict__ saved_invstd) {
    const u64 c = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= g.c) return;
    const double cnt = (double)(g.n * g.hw), K = (double)x[c * g.hw];
    double s1 = 0.0, s2 = 0.0;
    for (u32 p = 0; p < P; ++p) {
        s1 += partial[(c * P + p) * 2];
        s2 += partial[(c * P + p) * 2 + 1];
    }
    const double dm = s1 / cnt, mean = K + dm;
    double var = s2 / cnt - dm * dm;
    if (var < 0.0) var = 0.0;
    const double invstd = 1.0 / sqrt(var + (double)g.eps), m = (double)g.momentum;
    saved_mean[c] = (float)mean;
    saved_invstd[c] = (float)invstd;
    running_mean[c] = (float)((1.0 - m) * (double)running_mean[c] + m * mean);
    running_var[c] = (float)((1.0 - m) * (double)running_var[c] + m * var * cnt / (cnt - 1.0));
}

extern "C" __global__ void batch_norm_apply(BatchNormGeom g, const float* __restrict__ x, const float* __restrict__ mean,
                                            const float* __restrict__ invstd, const float* __restrict__ gamma,
                                            const float* __restrict__ beta, const float* __restrict__ residual,
                                            unsigned int relu, float* __restrict__ y) {
    const u64 total = g.n * g.c * g.hw;
    FG_GRID_STRIDE(e, total) {
        const u64 plane = fg_div(e, g.hw), c = plane - fg_div(plane, g.c) * g.c;
        const float scale = __fmul_rn(invstd[c], gamma[c]);
        float v = __fadd_rn(__fmul_rn(x[e] - mean[c], scale), beta[c]);
        if (residual) v += residual[e];
        if (relu) v = (v > 0.0f || fg_isnan(v)) ? v : 0.0f;
        y[e] = v;
    }
}

extern "C" __global__ void batch_norm_fwd_eval(BatchNormGeom g, const float* __restrict__ x,
                                               const float* __restrict__ gamma, const float* __restrict__ beta,
                                               const float* __restrict__ running_mean,
                                               const float* __restrict__ running_var,
                                               const float* __restrict__ residual, unsigned int relu,
                                               float* __restrict__ y) {
    const u64 total = g.n * g.c * g.hw;
    FG_GRID_STRIDE(e, total) {
        const u64 plane = fg_div(e, g.hw), c = plane - fg_div(plane, g.c) * g.c;
        const float scale = gamma[c] / sqrtf(running_var[c] + g.eps);
        float v = __fadd_rn(__fmul_rn(x[e] - running_mean[c], scale), beta[c]);
        if (residual) v += residual[e];
        if (relu) v = (v > 0.0f || fg_isnan(v)) ? v : 0.0f;
        y[e] = v;
    }
}

extern "C" __global__ void batch_norm_bwd_partial(BatchNormGeom g, const float* __restrict__ x,
                                                  const float* __restrict__ dy, const float* __restrict__ y,
                                                  const float* __restrict__ saved_mean,
                                                  const float* __restrict__ saved_invstd, double* __restrict__ partial) {
    __shared__ double scratch[32];
    const u64 c = blockIdx.y, cnt = g.n * g.hw;
    u64 e0, e1;
    bn_chunk(cnt, e0, e1);
    const double mean = (double)saved_mean[c], invstd = (double)saved_invstd[c];
    double sdy = 0.0, sdyx = 0.0;
    for (u64 e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
        const u64 a = bn_addr(g, c, e);
        const double d = (double)bn_grad(dy, y, a);
        sdy += d;
        sdyx += d * (((double)x[a] - mean) * invstd);
    }
    sdy = fg_block_sum(sdy, scratch);
    sdyx = fg_block_sum(sdyx, scratch);
    if (threadIdx.x == 0) {
        double* out = partial + (c * gridDim.x + blockIdx.x) * 2;
        out[0] = sdy;
        out[1] = sdyx;
    }
}

extern "C" __global__ void batch_norm_bwd_finalize(BatchNormGeom g, const double* __restrict__ partial, unsigned int P,
                                                   const float* __restrict__ gamma, const float* __restrict__ saved_mean,
                                                   const float* __restrict__ saved_invstd, float* __restrict__ dgamma,
                                                   float* __restrict__ dbeta, float* __restrict__ coef) {
    const u64 c = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= g.c) return;
    double sdy = 0.0, sdyx = 0.0;
    for (u32 p = 0; p < P; ++p) {
        sdy += partial[(c * P + p) * 2];
        sdyx += partial[(c * P + p) * 2 + 1];
    }
    dgamma[c] += (float)sdyx;
    dbeta[c] += (float)sdy;
    const double cnt = (double)(g.n * g.hw), invstd = (double)saved_invstd[c];
    const double k = (double)gamma[c] * invstd;
    coef[4 * c + 0] = saved_mean[c];
    coef[4 * c + 1] = (float)k;
    coef[4 * c + 2] = (float)(-k * invstd * sdyx / cnt);
    coef[4 * c + 3] = (float)(-k * sdy / cnt);
}

extern "C" __global__ void batch_norm_bwd_dx(BatchNormGeom g, const float* __restrict__ x, const float* __restrict__ dy,
                                             const float* __restrict__ y, const float* __restrict__ coef,
                                             float* __restrict__ dx, float* __restrict__ dresidual) {
    const u64 total = g.n * g.c * g.hw;
    FG_GRID_STRIDE(e, total) {
        const u64 plane = fg_div(e, g.hw), c = plane - fg_div(plane, g.c) * g.c;
        const float4 q = reinterpret_cast<const float4*>(coef)[c];  // (mean, k, a, b); coef 16-byte aligned
        const float d = bn_grad(dy, y, e);
        dx[e] = __fadd_rn(__fadd_rn(__fmul_rn(d, q.y), __fmul_rn(x[e] - q.x, q.z)), q.w);
        if (dresidual) dresidual[e] = d;
    }
}
