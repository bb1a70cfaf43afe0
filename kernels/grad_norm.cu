// grad_norm.cu: global gradient norm sqrt(Σ g²) over a table of arena segments (clip_grad_norm_'s total norm),
// deterministic: fixed chunks, fixed-order reductions, no atomics.
//   grad_norm_partial:  one block per CHUNK of a segment (segments split into pieces of `chunk` elements, in table
//                       order; a block finds its segment by binary search over the prefix of chunk counts, built
//                       in shared memory): partial[block] = Σ g² (f64, fixed-order block sum).
//   grad_norm_finalize: ONE block: norm[0] = (float)sqrt(fixed-order Σ partial[0..nchunks)).
// Segment table: ArenaSegment[nsegs] in DEVICE memory; segments must lie inside the arena (the launcher checks).
// Launch:
//   partial:  block FG_BLOCK (256), grid = total chunks = Σ ceil(len / chunk) (empty segments have none),
//             DYNAMIC smem (nsegs + 1) * 8 bytes (<= 48 KB: nsegs <= 6143); static smem 256 B.
//   finalize: grid 1, block 256, static smem 256 B.
// Signatures:
//   grad_norm_partial(const ArenaSegment* segs, unsigned int nsegs, u64 chunk, const float* grads, double* partial)
//   grad_norm_finalize(u64 nchunks, const double* partial, float* norm)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::ArenaSegment`.
struct ArenaSegment {
    unsigned long long offset, len;
};
static_assert(sizeof(ArenaSegment) == 16, "ArenaSegment layout");

extern "C" __global__ void grad_norm_partial(const ArenaSegment* __restrict__ segs, unsigned int nsegs, u64 chunk,
                                             const float* __restrict__ grads, double* __restrict__ partial) {
    extern __shared__ unsigned long long first_chunk[];  // nsegs + 1 entries: exclusive prefix of chunk counts
    __shared__ double scratch[32];
    if (threadIdx.x == 0) {
        first_chunk[0] = 0;
        for (u32 s = 0; s < nsegs; ++s) first_chunk[s + 1] = first_chunk[s] + (segs[s].len + chunk - 1) / chunk;
    }
    __syncthreads();
    const u64 b = blockIdx.x;
    u32 lo = 0, hi = nsegs;  // largest lo with first_chunk[lo] <= b (empty segments share a prefix value: skip them)
    while (hi - lo > 1) {
        const u32 mid = (lo + hi) >> 1;
        if (first_chunk[mid] <= b) lo = mid;
        else hi = mid;
    }
    const ArenaSegment sg = segs[lo];
    const u64 start = (b - first_chunk[lo]) * chunk;
    const u64 end = start + chunk < sg.len ? start + chunk : sg.len;
    double s = 0.0;
    for (u64 i = start + threadIdx.x; i < end; i += blockDim.x) {
        const double v = (double)grads[sg.offset + i];
        s += v * v;
    }
    s = fg_block_sum(s, scratch);
    if (threadIdx.x == 0) partial[b] = s;
}

extern "C" __global__ void grad_norm_finalize(u64 nchunks, const double* __restrict__ partial, float* __restrict__ norm) {
    __shared__ double scratch[32];
    double s = 0.0;
    for (u64 i = threadIdx.x; i < nchunks; i += blockDim.x) s += partial[i];
    s = fg_block_sum(s, scratch);
    if (threadIdx.x == 0) norm[0] = (float)sqrt(s);
}
