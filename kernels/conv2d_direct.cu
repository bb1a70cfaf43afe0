// conv2d_direct.cu: direct fp32 convolution, NCHW activations, OIHW weights, zero padding: the baseline version
// (any shape) that the kernel lab times the implicit-GEMM kernels against (conv2d.cu replaced it in the product
// path); kept checked by the `conv2d_direct` cases of `fgssl selftest`. Semantics as src/backend/cpu/conv2d.rs
// (cross-correlation, output size floor((h+2p-k)/s)+1).
//   fwd:   y[n,co,oh,ow]  = bias[co] + sum_{ci,i,j} x[n,ci,oh*s+i-p,ow*s+j-p] * w[co,ci,i,j]      (written)
//   dgrad: dx[n,ci,ih,iw] = sum_{co,i,j: (ih+p-i) % s == 0, (iw+p-j) % s == 0, in range}
//                           dy[n,co,(ih+p-i)/s,(iw+p-j)/s] * w[co,ci,i,j]                       (written)
//   wgrad: dw[co,ci,i,j] += sum_{n,oh,ow} dy[n,co,oh,ow] * x[n,ci,oh*s+i-p,ow*s+j-p]             (accumulated)
//   bgrad: db[co]        += sum_{n,oh,ow} dy[n,co,oh,ow]                                           (accumulated)
// Every output element is one thread summing in a fixed order: deterministic, no atomics.
// Launch (all): block FG_BLOCK (256), grid any (grid-stride over the outputs), no smem.
// Signatures:
//   conv2d_direct_fwd(Conv2dGeom g, const float* x, const float* w, const float* bias /*nullable*/, float* y)
//   conv2d_direct_bwd_dx(Conv2dGeom g, const float* dy, const float* w, float* dx)
//   conv2d_direct_bwd_dw(Conv2dGeom g, const float* x, const float* dy, float* dw)
//   conv2d_direct_bwd_db(Conv2dGeom g, const float* dy, float* db)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `Conv2dGeom` in src/backend/geom.rs (11 x usize).
struct Conv2dGeom {
    u64 n, c_in, h, w, c_out, kh, kw, stride, pad, ho, wo;
};
static_assert(sizeof(Conv2dGeom) == 88, "Conv2dGeom must mirror the Rust struct");

extern "C" __global__ void conv2d_direct_fwd(Conv2dGeom g, const float* __restrict__ x, const float* __restrict__ w,
                                      const float* __restrict__ bias, float* __restrict__ y) {
    const u64 total = g.n * g.c_out * g.ho * g.wo;
    FG_GRID_STRIDE(idx, total) {
        const u64 ow = idx % g.wo, oh = (idx / g.wo) % g.ho, co = (idx / (g.wo * g.ho)) % g.c_out;
        const u64 n = idx / (g.wo * g.ho * g.c_out);
        double acc = 0.0;
        for (u64 ci = 0; ci < g.c_in; ++ci) {
            const float* xc = x + (n * g.c_in + ci) * g.h * g.w;
            const float* wc = w + (co * g.c_in + ci) * g.kh * g.kw;
            for (u64 i = 0; i < g.kh; ++i) {
                const long long ih = (long long)(oh * g.stride + i) - (long long)g.pad;
                if (ih < 0 || ih >= (long long)g.h) continue;
                for (u64 j = 0; j < g.kw; ++j) {
                    const long long iw = (long long)(ow * g.stride + j) - (long long)g.pad;
                    if (iw < 0 || iw >= (long long)g.w) continue;
                    acc += (double)xc[ih * g.w + iw] * (double)wc[i * g.kw + j];
                }
            }
        }
        if (bias != nullptr) acc += (double)bias[co];
        y[idx] = (float)acc;
    }
}

extern "C" __global__ void conv2d_direct_bwd_dx(Conv2dGeom g, const float* __restrict__ dy, const float* __restrict__ w,
                                         float* __restrict__ dx) {
    const u64 total = g.n * g.c_in * g.h * g.w;
    FG_GRID_STRIDE(idx, total) {
        const u64 iw = idx % g.w, ih = (idx / g.w) % g.h, ci = (idx / (g.w * g.h)) % g.c_in;
        const u64 n = idx / (g.w * g.h * g.c_in);
        double acc = 0.0;
        for (u64 co = 0; co < g.c_out; ++co) {
            const float* dyc = dy + (n * g.c_out + co) * g.ho * g.wo;
            const float* wc = w + (co * g.c_in + ci) * g.kh * g.kw;
            for (u64 i = 0; i < g.kh; ++i) {
                const long long th = (long long)(ih + g.pad) - (long long)i;  // = oh * stride
                if (th < 0 || th % (long long)g.stride != 0) continue;
                const u64 oh = (u64)th / g.stride;
                if (oh >= g.ho) continue;
                for (u64 j = 0; j < g.kw; ++j) {
                    const long long tw = (long long)(iw + g.pad) - (long long)j;
                    if (tw < 0 || tw % (long long)g.stride != 0) continue;
                    const u64 ow = (u64)tw / g.stride;
                    if (ow >= g.wo) continue;
                    acc += (double)dyc[oh * g.wo + ow] * (double)wc[i * g.kw + j];
                }
            }
        }
        dx[idx] = (float)acc;
    }
}

extern "C" __global__ void conv2d_direct_bwd_dw(Conv2dGeom g, const float* __restrict__ x, const float* __restrict__ dy,
                                         float* __restrict__ dw) {
    const u64 total = g.c_out * g.c_in * g.kh * g.kw;
    FG_GRID_STRIDE(idx, total) {
        const u64 j = idx % g.kw, i = (idx / g.kw) % g.kh, ci = (idx / (g.kw * g.kh)) % g.c_in;
        const u64 co = idx / (g.kw * g.kh * g.c_in);
        double acc = 0.0;
        for (u64 n = 0; n < g.n; ++n) {
            const float* xc = x + (n * g.c_in + ci) * g.h * g.w;
            const float* dyc = dy + (n * g.c_out + co) * g.ho * g.wo;
            for (u64 oh = 0; oh < g.ho; ++oh) {
                const long long ih = (long long)(oh * g.stride + i) - (long long)g.pad;
                if (ih < 0 || ih >= (long long)g.h) continue;
                for (u64 ow = 0; ow < g.wo; ++ow) {
                    const long long iw = (long long)(ow * g.stride + j) - (long long)g.pad;
                    if (iw < 0 || iw >= (long long)g.w) continue;
                    acc += (double)dyc[oh * g.wo + ow] * (double)xc[ih * g.w + iw];
                }
            }
        }
        dw[idx] += (float)acc;
    }
}

extern "C" __global__ void conv2d_direct_bwd_db(Conv2dGeom g, const float* __restrict__ dy, float* __restrict__ db) {
    FG_GRID_STRIDE(co, g.c_out) {
        double acc = 0.0;
        for (u64 n = 0; n < g.n; ++n) {
            const float* dyc = dy + (n * g.c_out + co) * g.ho * g.wo;
            for (u64 p = 0; p < g.ho * g.wo; ++p) acc += (double)dyc[p];
        }
        db[co] += (float)acc;
    }
}
