// jigsaw.cu: jigsaw gather on f32 activations x, y [n, c, h, w] (src/backend/cpu/jigsaw.rs): tiles of
// (h / grid) x (w / grid) numbered row-major; output tile d of sample i is input tile perms[i * grid^2 + d]
// (`src_tile = perm[dst_tile]`, device copy of the host permutations). A pure gather: exact.
// Launch: block FG_BLOCK (256), grid-stride over n*c*h*w, no smem. Skip when n*c*h*w == 0.
// Signature:
//   jigsaw_fwd(JigsawGeom g, const unsigned int* perms, const float* x, float* y)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `geom::JigsawGeom`.
struct JigsawGeom {
    unsigned long long n, c, h, w, grid;
};
static_assert(sizeof(JigsawGeom) == 40, "JigsawGeom layout");

extern "C" __global__ void jigsaw_fwd(JigsawGeom g, const unsigned int* __restrict__ perms, const float* __restrict__ x,
                                      float* __restrict__ y) {
    const u64 plane = g.h * g.w, total = g.n * g.c * plane;
    const u64 th = fg_div(g.h, g.grid), tw = fg_div(g.w, g.grid), cells = g.grid * g.grid;
    FG_GRID_STRIDE(e, total) {
        const u64 nc = fg_div(e, plane), pix = e - nc * plane;
        const u64 i = fg_div(nc, g.c);
        const u64 oy = fg_div(pix, g.w), ox = pix - oy * g.w;
        const u64 ty = fg_div(oy, th), tx = fg_div(ox, tw);
        const u64 src = perms[i * cells + ty * g.grid + tx];
        const u64 sy = fg_div(src, g.grid), sx = src - sy * g.grid;
        y[e] = x[nc * plane + (sy * th + oy - ty * th) * g.w + sx * tw + ox - tx * tw];
    }
}
