// concat.cu: channel concatenation of parts [n, c_i, hw] into y [n, sum c_i, hw], and its backward (the split).
// Choice: ONE LAUNCH PER PART. ConcatGeom (Rust) holds a Vec and is not #[repr(C)]; the launcher turns each part
// into a ConcatPart below (c_offset = sum of the channels of the parts before it) and launches once per part,
// skipping parts with n * c_part * hw == 0. No fixed maximum number of parts.
//   fwd: y[s, c_offset + c, j] = x[s, c, j]
//   bwd: dx[s, c, j] = dy[s, c_offset + c, j]      (written)
// Launch (both): block FG_BLOCK (256), grid any (grid-stride over n * c_part * hw), no smem.
// Signatures:
//   concat_fwd(ConcatPart p, const float* x_part, float* y)
//   concat_bwd(ConcatPart p, const float* dy, float* dx_part)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// No Rust struct yet: the launcher must define, field for field,
//   #[repr(C)] struct ConcatPart { n: usize, hw: usize, c_part: usize, c_total: usize, c_offset: usize }
struct ConcatPart {
    unsigned long long n;
    unsigned long long hw;
    unsigned long long c_part;
    unsigned long long c_total;
    unsigned long long c_offset;
};
static_assert(sizeof(ConcatPart) == 40, "ConcatPart layout");

extern "C" __global__ void concat_fwd(ConcatPart p, const float* __restrict__ x, float* __restrict__ y) {
    const u64 run = p.c_part * p.hw, total = p.n * run, y_sample = p.c_total * p.hw, off = p.c_offset * p.hw;
    FG_GRID_STRIDE(e, total) {
        const u64 s = fg_div(e, run), j = e - s * run;
        y[s * y_sample + off + j] = x[e];
    }
}

extern "C" __global__ void concat_bwd(ConcatPart p, const float* __restrict__ dy, float* __restrict__ dx) {
    const u64 run = p.c_part * p.hw, total = p.n * run, y_sample = p.c_total * p.hw, off = p.c_offset * p.hw;
    FG_GRID_STRIDE(e, total) {
        const u64 s = fg_div(e, run), j = e - s * run;
        dx[e] = dy[s * y_sample + off + j];
    }
}
