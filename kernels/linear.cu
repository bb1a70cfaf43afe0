// linear.cu: y = x w^T + b; x [n, in_f], w [out_f, in_f] (PyTorch layout), y [n, out_f], as
// src/backend/cpu/linear.rs. Our own tiled shared-memory fp32 GEMM (no cuBLAS), one templated body
// C[M, N] (+)= A[M, K] * B[K, N], with the transpositions as compile-time flags so each case loads coalesced.
// Tile 64 x 64 x 16, 256 threads, 4 x 4 outputs per thread; any M, N, K (tails are zero-padded in shared memory).
// Each output element is owned by one thread that sums K in increasing order: deterministic, no atomics.
//
//   linear_fwd:    y  = x w^T (+ bias)     M = n,     N = out_f, K = in_f    (y WRITTEN; bias nullable)
//   linear_bwd_dx: dx = dy w               M = n,     N = in_f,  K = out_f   (dx WRITTEN)
//   linear_bwd_dw: dw += dy^T x            M = out_f, N = in_f,  K = n       (ACCUMULATED)
//   linear_bwd_db: db += sum_rows dy       one thread per output feature, double accumulation (ACCUMULATED)
// Launch:
//   fwd / bwd_dx / bwd_dw: block (256, 1, 1) EXACTLY; grid (ceil(N / 64), ceil(M / 64), 1) with N, M as listed
//     above (gridDim.y <= 65535, i.e. M <= 4,194,240); static smem 2 * 16 * 68 * 4 = 8704 B.
//   bwd_db: block FG_BLOCK (256), grid ceil(out_f / 256); no smem.
// Signatures:
//   linear_fwd(LinearGeom g, const float* x, const float* w, const float* bias /* nullable */, float* y)
//   linear_bwd_dx(LinearGeom g, const float* dy, const float* w, float* dx)
//   linear_bwd_dw(LinearGeom g, const float* dy, const float* x, float* dw)
//   linear_bwd_db(LinearGeom g, const float* dy, float* db)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::LinearGeom`.
struct LinearGeom {
    unsigned long long n, in_f, out_f;
};
static_assert(sizeof(LinearGeom) == 24, "LinearGeom layout");

#define LG_BM 64
#define LG_BN 64
#define LG_BK 16
#define LG_PAD 4
#define LG_THREADS 256

// A(m, k) = TA ? A[k * lda + m] : A[m * lda + k];  B(k, n) = TB ? B[n * ldb + k] : B[k * ldb + n].
// C[m * ldc + n] = (ACC ? C : 0) + sum_k A(m, k) B(k, n) (+ bias[n] when bias != NULL).
template <bool TA, bool TB, bool ACC>
__device__ __forceinline__ void lg_gemm(u64 M, u64 N, u64 K, const float* __restrict__ A, u64 lda,
                                        const float* __restrict__ B, u64 ldb, float* __restrict__ C, u64 ldc,
                                        const float* __restrict__ bias) {
    __shared__ float As[LG_BK][LG_BM + LG_PAD];
    __shared__ float Bs[LG_BK][LG_BN + LG_PAD];
    const u32 tid = threadIdx.x, tx = tid & 15u, ty = tid >> 4;
    const u64 m0 = (u64)blockIdx.y * LG_BM, n0 = (u64)blockIdx.x * LG_BN;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    for (u64 k0 = 0; k0 < K; k0 += LG_BK) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const u32 l = tid + r * LG_THREADS;  // 0 .. 1023 = 64 x 16 tile elements
            // A tile: k-fast mapping when k is contiguous in memory, m-fast when m is.
            const u32 am = TA ? (l & 63u) : (l >> 4), ak = TA ? (l >> 6) : (l & 15u);
            const u64 gm = m0 + am, gk = k0 + ak;
            As[ak][am] = (gm < M && gk < K) ? (TA ? A[gk * lda + gm] : A[gm * lda + gk]) : 0.0f;
            const u32 bn = TB ? (l >> 4) : (l & 63u), bk = TB ? (l & 15u) : (l >> 6);
            const u64 gn = n0 + bn, gk2 = k0 + bk;
            Bs[bk][bn] = (gn < N && gk2 < K) ? (TB ? B[gn * ldb + gk2] : B[gk2 * ldb + gn]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < LG_BK; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = As[kk][ty * 4 + i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const u64 m = m0 + ty * 4 + i;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const u64 n = n0 + tx + 16 * j;
            if (n >= N) continue;
            float v = acc[i][j];
            if (bias) v += bias[n];
            if (ACC) v += C[m * ldc + n];
            C[m * ldc + n] = v;
        }
    }
}

extern "C" __global__ void __launch_bounds__(LG_THREADS) linear_fwd(LinearGeom g, const float* __restrict__ x,
                                                                  const float* __restrict__ w,
                                                                  const float* __restrict__ bias, float* __restrict__ y) {
    // A = x [n, in_f] (row-major), B(k, o) = w[o, k] (transposed), C = y [n, out_f].
    lg_gemm<false, true, false>(g.n, g.out_f, g.in_f, x, g.in_f, w, g.in_f, y, g.out_f, bias);
}

extern "C" __global__ void __launch_bounds__(LG_THREADS) linear_bwd_dx(LinearGeom g, const float* __restrict__ dy,
                                                                     const float* __restrict__ w, float* __restrict__ dx) {
    // A = dy [n, out_f], B = w [out_f, in_f], C = dx [n, in_f].
    lg_gemm<false, false, false>(g.n, g.in_f, g.out_f, dy, g.out_f, w, g.in_f, dx, g.in_f, nullptr);
}

extern "C" __global__ void __launch_bounds__(LG_THREADS) linear_bwd_dw(LinearGeom g, const float* __restrict__ dy,
                                                                     const float* __restrict__ x, float* __restrict__ dw) {
    // A(o, s) = dy[s, o] (transposed), B = x [n, in_f], C = dw [out_f, in_f] accumulated.
    lg_gemm<true, false, true>(g.out_f, g.in_f, g.n, dy, g.out_f, x, g.in_f, dw, g.in_f, nullptr);
}

extern "C" __global__ void linear_bwd_db(LinearGeom g, const float* __restrict__ dy, float* __restrict__ db) {
    const u64 o = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= g.out_f) return;
    double s = 0.0;
    for (u64 i = 0; i < g.n; ++i) s += (double)dy[i * g.out_f + o];
    db[o] += (float)s;
}
