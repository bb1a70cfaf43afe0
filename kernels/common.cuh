// common.cuh: helpers shared by every kernel file (fp32, NCHW).
//
// Inclusion: every .cu starts with
//     #ifndef FG_COMMON_CUH
//     #include "common.cuh"
//     #endif
// so a kernel file compiles either way:
//   (a) the registry (src/backend/cuda/registry.rs) offers kernels/*.cuh to NVRTC as in-memory headers, so the
//       #include resolves with no file system access at run time; or it PREPENDS this text followed by
//       `#line 1 "<op>.cu"`, in which case FG_COMMON_CUH is already defined and the #include is skipped.
//   (b) a compiler is given `-I kernels` / `--include-path=kernels` (nvcc checks, development).
// No system headers: NVRTC has none. Only built-ins (expf, expm1f, sqrtf, __shfl_xor_sync, ...).
#ifndef FG_COMMON_CUH
#define FG_COMMON_CUH

typedef unsigned long long u64;
typedef unsigned int u32;

// Block size every 1-d kernel here is written for unless its header says otherwise. Kernels that use shared-memory
// reductions require blockDim.x to be a multiple of 32 and at most 1024.
#define FG_BLOCK 256

// Grid-stride loop over [0, n) with 64-bit indices.
#define FG_GRID_STRIDE(i, n)                                                                                         \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x, fg_stride_##i = (u64)gridDim.x * blockDim.x; i < (n);  \
         i += fg_stride_##i)

// a / b and a % b with a 32-bit fast path (64-bit division is ~70 instructions).
__device__ __forceinline__ u64 fg_div(u64 a, u64 b) {
    if (((a | b) >> 32) == 0) return (u64)((u32)a / (u32)b);
    return a / b;
}

__device__ __forceinline__ bool fg_isnan(float x) { return x != x; }
__device__ __forceinline__ float fg_neg_inf() { return __int_as_float(0xff800000u); }
__device__ __forceinline__ float fg_nan() { return __int_as_float(0x7fffffffu); }

// ---- reductions with a fixed combination order (same inputs + same launch shape -> bitwise the same result) ----

__device__ __forceinline__ double fg_warp_sum(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float fg_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Max that propagates NaN (any NaN in -> NaN out), like the CPU reference's `v > best || v.is_nan()` scans.
__device__ __forceinline__ double fg_max_nan(double a, double b) { return (a != a || a >= b) ? a : b; }

__device__ __forceinline__ double fg_warp_max_nan(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fg_max_nan(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum of doubles; result valid in every thread. `scratch` holds >= 32 doubles of shared memory.
// All threads of the block must call it (contains __syncthreads). blockDim.x multiple of 32.
__device__ __forceinline__ double fg_block_sum(double v, double* scratch) {
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = fg_warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    double t = (lane < nwarps) ? scratch[lane] : 0.0;
    t = fg_warp_sum(t);
    return t;
}

// The CPU reference's argmax rule (`if v > best || v.is_nan() { best = v; best_i = i }` scanning in index order,
// starting from best = -inf, best_i = first index):
//   - if any NaN: the LAST NaN's index;
//   - otherwise the FIRST index of the maximum (an all -inf row gives its first index).
// `fg_arg_better(v1, i1, v2, i2)`: true when candidate 1 wins over candidate 2 under that rule. It is a total order,
// so any reduction tree gives the same winner as the sequential scan.
__device__ __forceinline__ bool fg_arg_better(float v1, u64 i1, float v2, u64 i2) {
    const bool n1 = fg_isnan(v1), n2 = fg_isnan(v2);
    if (n1 || n2) return n1 && (!n2 || i1 > i2);
    if (v1 != v2) return v1 > v2;
    return i1 < i2;
}

// Warp-wide argmax under fg_arg_better; every lane ends with the winner.
__device__ __forceinline__ void fg_warp_argmax(float& v, u64& i) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const u64 oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (fg_arg_better(ov, oi, v, i)) {
            v = ov;
            i = oi;
        }
    }
}

#endif  // FG_COMMON_CUH
