// global_pool.cu: pooling over the whole spatial extent, x [n, c, hw] -> y [n, c], as src/backend/cpu/global_pool.rs.
// ONE WARP PER (n, c) ROW: lanes stride over the row, then a fixed-order shuffle reduction (deterministic).
//   global_max_pool_fwd: y = row max under the CPU's argmax rule (first maximum; any NaN -> NaN).
//   global_max_pool_bwd: dx[row] = 0 except dx[row][argmax] = dy[row] (argmax recomputed from x, first-index
//                        tie rule, last NaN if any). dx WRITTEN in full.
//   global_avg_pool_fwd: y = (sum in double) * (1 / hw), rounded to float.
//   global_avg_pool_bwd: dx[row][j] = dy[row] / (float)hw   (elementwise kernel, not warp-per-row).
// Launch:
//   max fwd / max bwd / avg fwd: blockDim.x a multiple of 32 (use FG_BLOCK = 256 -> 8 rows per block),
//     grid any (grid-stride over rows; e.g. min(ceil(rows / 8), 65535)); no smem.
//   avg bwd: block FG_BLOCK, grid any (grid-stride over n*c*hw), no smem.
// Requires hw > 0 (the CPU asserts it).
// Signatures:
//   global_max_pool_fwd(GlobalPoolGeom g, const float* x, float* y)
//   global_max_pool_bwd(GlobalPoolGeom g, const float* x, const float* dy, float* dx)
//   global_avg_pool_fwd(GlobalPoolGeom g, const float* x, float* y)
//   global_avg_pool_bwd(GlobalPoolGeom g, const float* dy, float* dx)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::GlobalPoolGeom`.
struct GlobalPoolGeom {
    unsigned long long n, c, hw;
};
static_assert(sizeof(GlobalPoolGeom) == 24, "GlobalPoolGeom layout");

// Warp-cooperative argmax of one row; every lane returns the same (value, index).
__device__ __forceinline__ u64 gp_row_argmax(const float* __restrict__ row, u64 hw, u32 lane, float& best) {
    float v = fg_neg_inf();
    u64 bi = ~0ull;  // "no element": loses every tie against a real index
    for (u64 j = lane; j < hw; j += 32) {
        const float t = row[j];
        if (fg_arg_better(t, j, v, bi)) {
            v = t;
            bi = j;
        }
    }
    fg_warp_argmax(v, bi);
    best = v;
    return bi;
}

extern "C" __global__ void global_max_pool_fwd(GlobalPoolGeom g, const float* __restrict__ x, float* __restrict__ y) {
    const u32 lane = threadIdx.x & 31u;
    const u64 warps_per_block = blockDim.x >> 5, rows = g.n * g.c;
    for (u64 row = (u64)blockIdx.x * warps_per_block + (threadIdx.x >> 5); row < rows;
         row += (u64)gridDim.x * warps_per_block) {
        float best;
        gp_row_argmax(x + row * g.hw, g.hw, lane, best);
        if (lane == 0) y[row] = best;
    }
}

extern "C" __global__ void global_max_pool_bwd(GlobalPoolGeom g, const float* __restrict__ x,
                                               const float* __restrict__ dy, float* __restrict__ dx) {
    const u32 lane = threadIdx.x & 31u;
    const u64 warps_per_block = blockDim.x >> 5, rows = g.n * g.c;
    for (u64 row = (u64)blockIdx.x * warps_per_block + (threadIdx.x >> 5); row < rows;
         row += (u64)gridDim.x * warps_per_block) {
        float best;
        const u64 am = gp_row_argmax(x + row * g.hw, g.hw, lane, best);
        const float d = dy[row];
        float* out = dx + row * g.hw;
        for (u64 j = lane; j < g.hw; j += 32) out[j] = (j == am) ? d : 0.0f;
    }
}

extern "C" __global__ void global_avg_pool_fwd(GlobalPoolGeom g, const float* __restrict__ x, float* __restrict__ y) {
    const u32 lane = threadIdx.x & 31u;
    const u64 warps_per_block = blockDim.x >> 5, rows = g.n * g.c;
    const double inv = 1.0 / (double)g.hw;
    for (u64 row = (u64)blockIdx.x * warps_per_block + (threadIdx.x >> 5); row < rows;
         row += (u64)gridDim.x * warps_per_block) {
        const float* r = x + row * g.hw;
        double s = 0.0;
        for (u64 j = lane; j < g.hw; j += 32) s += (double)r[j];
        s = fg_warp_sum(s);
        if (lane == 0) y[row] = (float)(s * inv);
    }
}

extern "C" __global__ void global_avg_pool_bwd(GlobalPoolGeom g, const float* __restrict__ dy, float* __restrict__ dx) {
    const u64 total = g.n * g.c * g.hw;
    const float hw = (float)g.hw;
    FG_GRID_STRIDE(e, total) dx[e] = dy[fg_div(e, g.hw)] / hw;
}
