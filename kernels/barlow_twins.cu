// barlow_twins.cu: Barlow Twins loss, forward and backward, fp32 storage with f64 statistics, exactly as
// src/backend/cpu/barlow_twins.rs (METHOD.md §6). za, zb, za_hat, zb_hat, dza, dzb are [n, f] row-major; c and the
// backward's G workspace are [f, f]; inv_std_a/b are [f]; form 0 = standard (biased var + 1e-5,
// Σ(1 − C_ii)² + λ Σ_{i≠j} C_ij²), 1 = reference (unbiased std, no eps, λ²‖C − I‖²).
//
// Forward (4 launches):
//   barlow_twins_standardize:   thread per column of BOTH inputs (2f threads): f64 mean and sum of squared
//                               deviations over the n rows in row order, inv = 1/σ, z_hat = (float)((z − mean)·inv).
//   barlow_twins_gemm (C):      c = za_hatᵀ zb_hat · (1/n)
//   barlow_twins_terms:         ONE block: terms[0..3] = [loss, on_diag, off_diag] (f64 fixed-order sums)
// Backward (4 launches):
//   barlow_twins_grad_c:        G = dloss/n · ∂ℒ/∂C (f64 math, stored f32), grid-stride over f²
//   barlow_twins_gemm (×2):     dza = zb_hat Gᵀ, dzb = za_hat G   (∂ẑ, written into dza / dzb)
//   barlow_twins_unstandardize: thread per column of both, IN PLACE: dz = (dẑ − Σdẑ/n − ẑ·Σ(dẑ ẑ)/d)·inv,
//                               d = n (standard) or n − 1 (reference)
// barlow_twins_gemm is a tiled shared-memory GEMM (no cuBLAS): out[m, n] = alpha · Σ_k L(m, k) R(k, n) with
// L(m, k) = L[m·lrs + k·lcs], R(k, n) = R[k·rrs + n·rcs], out row stride ors (columns contiguous). 64×64 output
// tile per block, k-tile 16, 256 threads each owning 4×4 outputs (rows ty + 16i, columns tx + 16j); loads are
// coalesced along whichever operand stride is 1; any m, n, k (edges zero-filled). Each output sums k in order:
// deterministic.
// Launch:
//   standardize / unstandardize: block FG_BLOCK (256), grid ceil(2f / 256), no smem.
//   gemm: block 256, grid (ceil(n/64), ceil(m/64)), static smem 2 · 16 · 65 · 4 = 8320 bytes.
//   terms: grid 1, block 256 (multiple of 32), static smem 256 B.   grad_c: block 256, grid-stride over f².
// Signatures:
//   barlow_twins_standardize(BarlowTwinsGeom g, const float* za, const float* zb, float* za_hat, float* zb_hat,
//                            float* inv_std_a, float* inv_std_b)
//   barlow_twins_gemm(BtGemm p, const float* L, const float* R, float* out)
//   barlow_twins_terms(BarlowTwinsGeom g, const float* c, float* terms)
//   barlow_twins_grad_c(BarlowTwinsGeom g, const float* c, float dloss, float* gmat)
//   barlow_twins_unstandardize(BarlowTwinsGeom g, const float* za_hat, const float* zb_hat, const float* inv_std_a,
//                              const float* inv_std_b, float* dza, float* dzb)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::BarlowTwinsGeom`: 8 + 8 + 4 + 4 = 24 bytes.
struct BarlowTwinsGeom {
    unsigned long long n, f;
    float lambda;
    unsigned int form;
};
static_assert(sizeof(BarlowTwinsGeom) == 24, "BarlowTwinsGeom layout");

// Mirrors `launch::barlow_twins::BtGemm`: 8 · 8 + 4 + 4 = 72 bytes.
struct BtGemm {
    unsigned long long m, n, k, lrs, lcs, rrs, rcs, ors;
    float alpha;
    unsigned int pad;
};
static_assert(sizeof(BtGemm) == 72, "BtGemm layout");

#define BT_FORM_STANDARD 0u
#define BT_EPS 1e-5
#define BT_TILE 64
#define BT_KT 16

extern "C" __global__ void barlow_twins_standardize(BarlowTwinsGeom g, const float* __restrict__ za,
                                                    const float* __restrict__ zb, float* __restrict__ za_hat,
                                                    float* __restrict__ zb_hat, float* __restrict__ inv_std_a,
                                                    float* __restrict__ inv_std_b) {
    const u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= 2 * g.f) return;
    const bool is_b = t >= g.f;
    const u64 j = is_b ? t - g.f : t;
    const float* z = is_b ? zb : za;
    float* z_hat = is_b ? zb_hat : za_hat;
    double mean = 0.0;
    for (u64 r = 0; r < g.n; ++r) mean = __dadd_rn(mean, (double)z[r * g.f + j]);
    mean = __ddiv_rn(mean, (double)g.n);
    double ss = 0.0;
    for (u64 r = 0; r < g.n; ++r) {
        const double d = __dsub_rn((double)z[r * g.f + j], mean);
        ss = __dadd_rn(ss, __dmul_rn(d, d));
    }
    const double var = g.form == BT_FORM_STANDARD ? __dadd_rn(__ddiv_rn(ss, (double)g.n), BT_EPS) : __ddiv_rn(ss, (double)(g.n - 1));
    const double inv = __ddiv_rn(1.0, sqrt(var));
    for (u64 r = 0; r < g.n; ++r) z_hat[r * g.f + j] = (float)__dmul_rn(__dsub_rn((double)z[r * g.f + j], mean), inv);
    (is_b ? inv_std_b : inv_std_a)[j] = (float)inv;
}

extern "C" __global__ void __launch_bounds__(256) barlow_twins_gemm(BtGemm p, const float* __restrict__ L,
                                                                    const float* __restrict__ R,
                                                                    float* __restrict__ out) {
    __shared__ float ls[BT_KT][BT_TILE + 1];  // ls[k][m]; +1 avoids bank conflicts on k-fastest stores
    __shared__ float rs[BT_KT][BT_TILE + 1];  // rs[k][n]
    const u32 tx = threadIdx.x & 15u, ty = threadIdx.x >> 4;
    const u64 m0 = (u64)blockIdx.y * BT_TILE, n0 = (u64)blockIdx.x * BT_TILE;
    const bool l_m_fast = p.lrs == 1, r_n_fast = p.rcs == 1;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
    for (u64 k0 = 0; k0 < p.k; k0 += BT_KT) {
#pragma unroll
        for (u32 r = 0; r < 4; ++r) {
            const u32 e = threadIdx.x + r * 256u;
            // 64 x 16 tile elements; consecutive threads walk the operand's contiguous dimension.
            const u32 lm = l_m_fast ? (e & 63u) : (e >> 4), lk = l_m_fast ? (e >> 6) : (e & 15u);
            const u64 gm = m0 + lm, gk = k0 + lk;
            ls[lk][lm] = (gm < p.m && gk < p.k) ? L[gm * p.lrs + gk * p.lcs] : 0.f;
            const u32 rn = r_n_fast ? (e & 63u) : (e >> 4), rk = r_n_fast ? (e >> 6) : (e & 15u);
            const u64 gn = n0 + rn, gk2 = k0 + rk;
            rs[rk][rn] = (gn < p.n && gk2 < p.k) ? R[gk2 * p.rrs + gn * p.rcs] : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (u32 kk = 0; kk < BT_KT; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = ls[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = rs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const u64 gm = m0 + ty + 16 * i;
        if (gm >= p.m) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const u64 gn = n0 + tx + 16 * j;
            if (gn < p.n) out[gm * p.ors + gn] = acc[i][j] * p.alpha;
        }
    }
}

extern "C" __global__ void barlow_twins_terms(BarlowTwinsGeom g, const float* __restrict__ c, float* __restrict__ terms) {
    __shared__ double scratch[32];
    double on = 0.0, off = 0.0;
    for (u64 i = threadIdx.x; i < g.f; i += blockDim.x) {
        const double d = 1.0 - (double)c[i * g.f + i];
        on += d * d;
    }
    const u64 total = g.f * g.f;
    for (u64 e = threadIdx.x; e < total; e += blockDim.x) {
        const u64 i = fg_div(e, g.f);
        if (e - i * g.f != i) {
            const double v = (double)c[e];
            off += v * v;
        }
    }
    on = fg_block_sum(on, scratch);
    off = fg_block_sum(off, scratch);
    if (threadIdx.x == 0) {
        const double lambda = (double)g.lambda;
        if (g.form == BT_FORM_STANDARD) {
            off *= lambda;
        } else {
            on *= lambda * lambda;
            off *= lambda * lambda;
        }
        terms[0] = (float)(on + off);
        terms[1] = (float)on;
        terms[2] = (float)off;
    }
}

extern "C" __global__ void barlow_twins_grad_c(BarlowTwinsGeom g, const float* __restrict__ c, float dloss,
                                               float* __restrict__ gmat) {
    const double lambda = (double)g.lambda, scale = (double)dloss / (double)g.n;
    const u64 total = g.f * g.f;
    FG_GRID_STRIDE(e, total) {
        const u64 i = fg_div(e, g.f);
        const bool diag = e - i * g.f == i;
        const double v = (double)c[e];
        double d;
        if (g.form == BT_FORM_STANDARD) d = diag ? -2.0 * (1.0 - v) : 2.0 * lambda * v;
        else d = 2.0 * lambda * lambda * (v - (diag ? 1.0 : 0.0));
        gmat[e] = (float)(scale * d);
    }
}

extern "C" __global__ void barlow_twins_unstandardize(BarlowTwinsGeom g, const float* __restrict__ za_hat,
                                                      const float* __restrict__ zb_hat,
                                                      const float* __restrict__ inv_std_a,
                                                      const float* __restrict__ inv_std_b, float* __restrict__ dza,
                                                      float* __restrict__ dzb) {
    const u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= 2 * g.f) return;
    const bool is_b = t >= g.f;
    const u64 j = is_b ? t - g.f : t;
    const float* z_hat = is_b ? zb_hat : za_hat;
    float* dz = is_b ? dzb : dza;
    const double inv = (double)(is_b ? inv_std_b : inv_std_a)[j];
    double s1 = 0.0, s2 = 0.0;
    for (u64 r = 0; r < g.n; ++r) {
        const double d = (double)dz[r * g.f + j];
        s1 = __dadd_rn(s1, d);
        s2 = __dadd_rn(s2, __dmul_rn(d, (double)z_hat[r * g.f + j]));
    }
    const double mean = __ddiv_rn(s1, (double)g.n);
    const double corr = __ddiv_rn(s2, (double)(g.form == BT_FORM_STANDARD ? g.n : g.n - 1));
    for (u64 r = 0; r < g.n; ++r) {
        const u64 e = r * g.f + j;
        const double v = __dsub_rn(__dsub_rn((double)dz[e], mean), __dmul_rn((double)z_hat[e], corr));
        dz[e] = (float)__dmul_rn(v, inv);
    }
}
