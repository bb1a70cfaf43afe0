// mma_peak.cu: the measured bf16 dense tensor-core peak that `fgssl lab conv` reports fractions of. Each warp runs
// `iters` rounds of MMA_PEAK_CHAINS independent mma.sync.m16n8k16 bf16 -> f32 (independent accumulators, so the
// tensor pipe never waits on a previous result), operands held in registers (no memory traffic in the loop).
// FLOP per launch = blocks * (blockDim.x / 32) * iters * MMA_PEAK_CHAINS * 4096 (2 * 16 * 8 * 16 per mma).
// The accumulators are written to `out` (one float per thread) so nothing is dead code.
// Launch: block 256, grid a few blocks per SM (the lab uses 4 * SMs), no smem.
// Signature: mma_peak(u32 iters, float* out)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

#define MMA_PEAK_CHAINS 8

extern "C" __global__ void mma_peak(u32 iters, float* __restrict__ out) {
    // Small bf16 values that depend on the thread (not constants the compiler could fold): 1.0 = 0x3f80.
    const u32 a = 0x3f803f80u ^ (threadIdx.x & 1u), b = 0x3f803f80u ^ (blockIdx.x & 1u);
    float acc[MMA_PEAK_CHAINS][4];
#pragma unroll
    for (int c = 0; c < MMA_PEAK_CHAINS; ++c)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[c][e] = 0.f;
    for (u32 it = 0; it < iters; ++it) {
#pragma unroll
        for (int c = 0; c < MMA_PEAK_CHAINS; ++c) {
            asm volatile(
                "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                "{%0, %1, %2, %3};\n"
                : "+f"(acc[c][0]), "+f"(acc[c][1]), "+f"(acc[c][2]), "+f"(acc[c][3])
                : "r"(a), "r"(a), "r"(a), "r"(a), "r"(b), "r"(b));
        }
    }
    float s = 0.f;
#pragma unroll
    for (int c = 0; c < MMA_PEAK_CHAINS; ++c) s += acc[c][0] + acc[c][1] + acc[c][2] + acc[c][3];
    out[(u64)blockIdx.x * blockDim.x + threadIdx.x] = s;
}
