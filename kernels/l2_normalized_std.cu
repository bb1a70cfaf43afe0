// l2_normalized_std.cu: the collapse monitor std_of_l2_normalized(z), z [n, f] row-major, as
// src/backend/cpu/l2_normalized_std.rs: rows scaled by 1/max(‖row‖, 1e-12), per-column unbiased std over the n
// rows, mean over the f columns; all in f64. ONE block does everything (a monitor on a [batch, 512] matrix):
//   phase 1: one warp per row: inv_norm[row] (f64 workspace of n entries, global memory);
//   phase 2: one thread per column: mean and sum of squared deviations of z·inv_norm in row order, std_j;
//            fixed-order block sum of std_j, out[0] = (float)(Σ std_j / f).
// Launch: grid (1, 1, 1), block FG_BLOCK (256; any multiple of 32 <= 1024), static smem 256 B. Needs n >= 2.
// Signature: l2_normalized_std_fwd(L2NormalizedStdGeom g, const float* z, double* inv_norm, float* out)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::L2NormalizedStdGeom`.
struct L2NormalizedStdGeom {
    unsigned long long n, f;
};
static_assert(sizeof(L2NormalizedStdGeom) == 16, "L2NormalizedStdGeom layout");

extern "C" __global__ void l2_normalized_std_fwd(L2NormalizedStdGeom g, const float* __restrict__ z,
                                                 double* __restrict__ inv_norm, float* __restrict__ out) {
    __shared__ double scratch[32];
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    for (u64 row = warp; row < g.n; row += nwarps) {
        double s = 0.0;
        for (u64 j = lane; j < g.f; j += 32) {
            const double v = (double)z[row * g.f + j];
            s += v * v;
        }
        s = fg_warp_sum(s);
        if (lane == 0) inv_norm[row] = 1.0 / fmax(sqrt(s), 1e-12);
    }
    __syncthreads();  // makes the block's global writes of inv_norm visible to the whole block
    double total = 0.0;
    for (u64 j = threadIdx.x; j < g.f; j += blockDim.x) {
        double mean = 0.0;
        for (u64 r = 0; r < g.n; ++r) mean += (double)z[r * g.f + j] * inv_norm[r];
        mean /= (double)g.n;
        double ss = 0.0;
        for (u64 r = 0; r < g.n; ++r) {
            const double d = (double)z[r * g.f + j] * inv_norm[r] - mean;
            ss += d * d;
        }
        total += sqrt(ss / (double)(g.n - 1));
    }
    total = fg_block_sum(total, scratch);
    if (threadIdx.x == 0) out[0] = g.f == 0 ? fg_nan() : (float)(total / (double)g.f);
}
