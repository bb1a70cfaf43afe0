// conv2d.cu: fp32 convolution as an implicit GEMM (no im2col buffer), NCHW activations, OIHW weights, zero
// padding, float accumulation. Semantics as src/backend/cpu/conv2d.rs (cross-correlation, output size
// floor((h+2p-k)/s)+1):
//   fwd:   y[n,co,oh,ow]  = bias[co] + sum_{ci,i,j} x[n,ci,oh*s+i-p,ow*s+j-p] * w[co,ci,i,j]      (written)
//   dgrad: dx[n,ci,ih,iw] = sum_{co,i,j: (ih+p-i) % s == 0, (iw+p-j) % s == 0, in range}
//                           dy[n,co,(ih+p-i)/s,(iw+p-j)/s] * w[co,ci,i,j]                       (written)
//   wgrad: dw[co,ci,i,j] += sum_{n,oh,ow} dy[n,co,oh,ow] * x[n,ci,oh*s+i-p,ow*s+j-p]             (accumulated)
//   bgrad: db[co]        += sum_{n,oh,ow} dy[n,co,oh,ow]                                           (accumulated)
//
// GEMM view, C[m, n] = sum_k A(m, k) B(k, n), with khkw = kh*kw:
//   pass   M      N            K             A(m, k)                        B(k, n)                      C
//   fwd    c_out  n*ho*wo      c_in*khkw     w[co=m][k]                     x patch (zero outside)       y
//   dgrad  c_in   n*h*w        c_out*khkw    w[co=k/khkw][ci=m][k%khkw]     dy tap (zero if invalid)     dx
//   wgrad  c_out  c_in*khkw    n*ho*wo       dy[img][co=m][pix]             x patch (zero outside)       dw
// with n = img*P + pix (P = ho*wo for fwd, h*w for dgrad), k = ci*khkw + i*kw + j (fwd), co*khkw + i*kw + j (dgrad),
// k = img*ho*wo + oh*wo + ow (wgrad), n = ci*khkw + i*kw + j (wgrad). Operands are gathered straight from x, w, dy.
//
// dgrad at stride 2 runs the transposed convolution over every (ih, iw) and every tap, so the taps whose
// (ih+p-i) or (iw+p-j) is odd are zeros that still cost an FMA: 3/4 of the work of a 3x3 s2 dgrad and of a 1x1 s2
// downsample dgrad is wasted. Acceptable for now: ResNet-50 has 4 stride-2 convs of 53 (plus the stem, whose dx is
// never needed), a few percent of its dgrad FLOPs. The better way (split dgrad into s*s phase sub-convolutions,
// each a dense GEMM) is future work.
//
// Kernel structure (one template, instantiated per pass and tile): a block computes a BM x BN tile of C; each thread a
// TM x TN micro-tile held in registers, as TM/4 x TN/4 chunks of 4x4 spread TY*4 rows / TX*4 columns apart (TX =
// BN/TN, TY = BM/TM threads) so a warp's float4 shared-memory reads hit consecutive addresses. K is walked BK at a
// time through two shared-memory buffers: the next K tile is loaded from global memory into registers while the
// current one is multiplied out of shared memory, then stored into the other buffer (one __syncthreads per K tile).
// A is gathered k-fastest (w rows and dy rows are contiguous along k); B n-fastest for fwd / dgrad (contiguous along
// ow / iw) and k-fastest for wgrad (contiguous along ow). Shared rows are padded by 4 floats (no bank conflicts on
// the transposing stores, 16-byte aligned rows for the float4 reads). Index decompositions use FastDiv (multiply-
// high by a host-computed magic, as CUTLASS's FastDivmod): every index is a non-negative int < 2^31, which the
// launcher checks.
//
// Tile table (the launcher's heuristic, src/backend/cuda/launch/conv2d_gemm.rs, picks one per pass and shape):
//   name     BM   BN   BK  TM  TN  threads  smem (bytes)
//   128x128  128  128   8   8   8  256      2*8*(132+132)*4  = 16896
//   64x128    64  128   8   4   8  256      2*8*(68+132)*4   = 12800
//   64x64     64   64  16   4   4  256      2*16*(68+68)*4   = 17408
//   32x64     32   64  16   4   4  128      2*16*(36+68)*4   = 13312
// fwd / dgrad: the largest tile that fits M and N and still gives at least one block per SM; wgrad: the largest tile
// that fits M and N, then a deterministic split-K over gridDim.z when the tiles alone do not fill the card.
//
// Split-K (wgrad): split z covers k in [z*k_chunk, min(K, (z+1)*k_chunk)), k_chunk a multiple of BK. With one split
// the kernel adds into dw directly (accumulate = 1); with several each split writes its partial M x N tile into the
// workspace slice ws[z*M*N ..] (accumulate = 0) and conv2d_bwd_dw_reduce adds sum_{z = 0, 1, ...} ws[z][i] into
// dw[i] in that fixed order. No atomics anywhere: bitwise reproducible for a given shape and plan.
//
// Launch:
//   conv2d_{fwd,bwd_dx,bwd_dw}_<tile>: block (threads), grid (ceil(N/BN), ceil(M/BM), splits), static smem as above.
//   conv2d_bwd_dw_reduce: block FG_BLOCK, grid-stride over M*N.
//   conv2d_bwd_db: block FG_BLOCK (one block per output channel, grid-stride over channels), no dynamic smem.
// Signatures:
//   conv2d_fwd_<tile>(ConvGemm p, const float* x, const float* w, const float* bias /*nullable*/, float* y)
//   conv2d_bwd_dx_<tile>(ConvGemm p, const float* dy, const float* w, float* dx)
//   conv2d_bwd_dw_<tile>(ConvGemm p, const float* x, const float* dy, float* out /*dw or workspace*/)
//   conv2d_bwd_dw_reduce(u32 len, u32 splits, const float* ws, float* dw)
//   conv2d_bwd_db(Conv2dGeom g, const float* dy, float* db)
#ifndef FG_COMMON_CUH
#include "common.cuh"
#endif

// Mirrors `Conv2dGeom` in src/backend/geom.rs (11 x usize).
struct Conv2dGeom {
    u64 n, c_in, h, w, c_out, kh, kw, stride, pad, ho, wo;
};
static_assert(sizeof(Conv2dGeom) == 88, "Conv2dGeom must mirror the Rust struct");

// Mirrors `FastDiv` in src/backend/cuda/launch/conv2d_gemm.rs: x / d for 0 <= x < 2^31 as
// (d == 1 ? x : umulhi(x, mul) >> shr), mul = ceil(2^(31 + ceil(log2 d)) / d), shr = ceil(log2 d) - 1.
struct FastDiv {
    u32 d, mul, shr;
};
static_assert(sizeof(FastDiv) == 12, "FastDiv must mirror the Rust struct");

// Mirrors `ConvGemm` in src/backend/cuda/launch/conv2d_gemm.rs: the geometry as int (all < 2^31), the GEMM sizes
// of this pass, the split-K chunk, the epilogue mode and the divisors.
struct ConvGemm {
    int n, c_in, h, w, c_out, kh, kw, stride, pad, ho, wo;
    int gm, gn, gk;   // GEMM M, N, K of this pass
    int k_chunk;      // K per split (== gk without split-K), a multiple of BK
    int accumulate;   // wgrad epilogue: 1: out += acc (out = dw); 0: out[z*M*N + ..] = acc (workspace)
    FastDiv khkw, kw_, howo, wo_, hw, w_, stride_;
};
static_assert(sizeof(ConvGemm) == 16 * 4 + 7 * 12, "ConvGemm must mirror the Rust struct");

__device__ __forceinline__ int fdiv(int x, const FastDiv& f) {
    return f.d == 1u ? x : (int)(__umulhi((u32)x, f.mul) >> f.shr);
}

// q = x / f.d, r = x % f.d.
__device__ __forceinline__ void fdivmod(int x, const FastDiv& f, int& q, int& r) {
    q = fdiv(x, f);
    r = x - q * (int)f.d;
}

#define CONV_FWD 0
#define CONV_DGRAD 1
#define CONV_WGRAD 2
#define CONV_PAD 4

template <int BM, int BN, int BK, int TM, int TN, int MODE>
__device__ __forceinline__ void conv_gemm(const ConvGemm& p, const float* __restrict__ A, const float* __restrict__ B,
                                          const float* __restrict__ bias, float* __restrict__ out) {
    constexpr int TX = BN / TN, TY = BM / TM, NT = TX * TY;
    constexpr int LA = BM * BK / NT, LB = BN * BK / NT;  // A and B elements each thread loads per K tile
    static_assert(TM % 4 == 0 && TN % 4 == 0, "micro-tiles are read as float4 chunks");
    static_assert(NT % BK == 0 && NT % BN == 0 && (BM * BK) % NT == 0 && (BN * BK) % NT == 0, "load mapping");
    __shared__ __align__(16) float As[2][BK][BM + CONV_PAD];  // As[buf][k][m]
    __shared__ __align__(16) float Bs[2][BK][BN + CONV_PAD];  // Bs[buf][k][n]

    const int tid = threadIdx.x;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int k_begin = blockIdx.z * p.k_chunk;
    const int k_end = min(p.gk, k_begin + p.k_chunk);

    // ---- A gather setup: thread loads column a_kk of rows a_m(r) = m0 + tid/BK + r*(NT/BK) ----
    const int a_kk = tid % BK;
    int a_off[LA];  // the row's offset inside its operand (w or dy), 0 for rows past M
    u32 a_ok = 0;
#pragma unroll
    for (int r = 0; r < LA; ++r) {
        const int m = m0 + tid / BK + r * (NT / BK);
        const bool ok = m < p.gm;
        a_ok |= (u32)ok << r;
        const int row_len = MODE == CONV_FWD ? p.gk : (MODE == CONV_DGRAD ? (int)p.khkw.d : (int)p.howo.d);
        a_off[r] = ok ? m * row_len : 0;
    }

    // ---- B gather setup ----
    // fwd / dgrad: n-fastest; the thread's column n = n0 + tid % BN is fixed, its rows are tid/BN + r*(NT/BN).
    // wgrad: k-fastest; the thread's row kk = tid % BK is fixed, its columns are tid/BK + r*(NT/BK).
    int b_base = 0, b_y0 = 0, b_x0 = 0;  // fwd: ih0, iw0 (= oh*s-p, ow*s-p); dgrad: ih+p, iw+p
    bool b_nok = false;
    int wb_coff[MODE == CONV_WGRAD ? LB : 1], wb_i[MODE == CONV_WGRAD ? LB : 1], wb_j[MODE == CONV_WGRAD ? LB : 1];
    u32 wb_ok = 0;
    if constexpr (MODE != CONV_WGRAD) {
        const int n = n0 + tid % BN;
        b_nok = n < p.gn;
        int img, pix, y, x;
        fdivmod(b_nok ? n : 0, MODE == CONV_FWD ? p.howo : p.hw, img, pix);
        fdivmod(pix, MODE == CONV_FWD ? p.wo_ : p.w_, y, x);
        if constexpr (MODE == CONV_FWD) {
            b_base = img * p.c_in * (int)p.hw.d;
            b_y0 = y * p.stride - p.pad;
            b_x0 = x * p.stride - p.pad;
        } else {
            b_base = img * p.c_out * (int)p.howo.d;
            b_y0 = y + p.pad;
            b_x0 = x + p.pad;
        }
    } else {
#pragma unroll
        for (int r = 0; r < (MODE == CONV_WGRAD ? LB : 1); ++r) {
            const int n = n0 + tid / BK + r * (NT / BK);
            const bool ok = n < p.gn;
            wb_ok |= (u32)ok << r;
            int ci, ij, i, j;
            fdivmod(ok ? n : 0, p.khkw, ci, ij);
            fdivmod(ij, p.kw_, i, j);
            wb_coff[r] = ci * (int)p.hw.d;
            wb_i[r] = i - p.pad;
            wb_j[r] = j - p.pad;
        }
    }

    float a_reg[LA], b_reg[LB];
    // Gathers the K tile starting at k0 into a_reg / b_reg (zeros outside the operand or past k_end).
    auto load_tile = [&](int k0) {
        {
            const int k = k0 + a_kk;
            const bool kin = k < k_end;
            int base;
            if constexpr (MODE == CONV_FWD) {
                base = k;
            } else if constexpr (MODE == CONV_DGRAD) {
                int co, ij;
                fdivmod(kin ? k : 0, p.khkw, co, ij);
                base = co * p.c_in * (int)p.khkw.d + ij;
            } else {
                int img, pix;
                fdivmod(kin ? k : 0, p.howo, img, pix);
                base = img * p.c_out * (int)p.howo.d + pix;
            }
#pragma unroll
            for (int r = 0; r < LA; ++r) a_reg[r] = (kin && ((a_ok >> r) & 1u)) ? A[base + a_off[r]] : 0.f;
        }
        if constexpr (MODE == CONV_FWD) {
#pragma unroll
            for (int r = 0; r < LB; ++r) {
                const int k = k0 + tid / BN + r * (NT / BN);
                int ci, ij, i, j;
                fdivmod(k < k_end ? k : 0, p.khkw, ci, ij);
                fdivmod(ij, p.kw_, i, j);
                const int ih = b_y0 + i, iw = b_x0 + j;
                const bool ok = b_nok && k < k_end && (u32)ih < (u32)p.h && (u32)iw < (u32)p.w;
                b_reg[r] = ok ? B[b_base + ci * (int)p.hw.d + ih * p.w + iw] : 0.f;
            }
        } else if constexpr (MODE == CONV_DGRAD) {
#pragma unroll
            for (int r = 0; r < LB; ++r) {
                const int k = k0 + tid / BN + r * (NT / BN);
                int co, ij, i, j;
                fdivmod(k < k_end ? k : 0, p.khkw, co, ij);
                fdivmod(ij, p.kw_, i, j);
                const int th = b_y0 - i, tw = b_x0 - j;  // = oh * s, ow * s when the tap is valid
                bool ok = b_nok && k < k_end && th >= 0 && tw >= 0;
                int oh, rh, ow, rw;
                fdivmod(ok ? th : 0, p.stride_, oh, rh);
                fdivmod(ok ? tw : 0, p.stride_, ow, rw);
                ok = ok && rh == 0 && rw == 0 && oh < p.ho && ow < p.wo;
                b_reg[r] = ok ? B[b_base + co * (int)p.howo.d + oh * p.wo + ow] : 0.f;
            }
        } else {
            const int k = k0 + tid % BK;
            const bool kin = k < k_end;
            int img, pix, oh, ow;
            fdivmod(kin ? k : 0, p.howo, img, pix);
            fdivmod(pix, p.wo_, oh, ow);
            const int base = img * p.c_in * (int)p.hw.d;
#pragma unroll
            for (int r = 0; r < LB; ++r) {
                const int ih = oh * p.stride + wb_i[r], iw = ow * p.stride + wb_j[r];
                const bool ok = kin && ((wb_ok >> r) & 1u) && (u32)ih < (u32)p.h && (u32)iw < (u32)p.w;
                b_reg[r] = ok ? B[base + wb_coff[r] + ih * p.w + iw] : 0.f;
            }
        }
    };
    auto store_tile = [&](int buf) {
#pragma unroll
        for (int r = 0; r < LA; ++r) As[buf][a_kk][tid / BK + r * (NT / BK)] = a_reg[r];
#pragma unroll
        for (int r = 0; r < LB; ++r) {
            if constexpr (MODE == CONV_WGRAD) {
                Bs[buf][tid % BK][tid / BK + r * (NT / BK)] = b_reg[r];
            } else {
                Bs[buf][tid / BN + r * (NT / BN)][tid % BN] = b_reg[r];
            }
        }
    };

    const int tx = tid % TX, ty = tid / TX;
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    if (k_begin < k_end) {
        int buf = 0;
        load_tile(k_begin);
        store_tile(0);
        __syncthreads();
        for (int k0 = k_begin; k0 < k_end; k0 += BK) {
            const bool next = k0 + BK < k_end;  // uniform over the block
            if (next) load_tile(k0 + BK);      // global loads in flight while this tile is multiplied
#pragma unroll
            for (int kk = 0; kk < BK; ++kk) {
                float a[TM], b[TN];
#pragma unroll
                for (int c = 0; c < TM / 4; ++c) {
                    const float4 v = *reinterpret_cast<const float4*>(&As[buf][kk][c * 4 * TY + ty * 4]);
                    a[c * 4 + 0] = v.x;
                    a[c * 4 + 1] = v.y;
                    a[c * 4 + 2] = v.z;
                    a[c * 4 + 3] = v.w;
                }
#pragma unroll
                for (int c = 0; c < TN / 4; ++c) {
                    const float4 v = *reinterpret_cast<const float4*>(&Bs[buf][kk][c * 4 * TX + tx * 4]);
                    b[c * 4 + 0] = v.x;
                    b[c * 4 + 1] = v.y;
                    b[c * 4 + 2] = v.z;
                    b[c * 4 + 3] = v.w;
                }
#pragma unroll
                for (int i = 0; i < TM; ++i)
#pragma unroll
                    for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
            }
            if (next) store_tile(buf ^ 1);  // nobody reads buf ^ 1 until after the barrier below
            __syncthreads();
            buf ^= 1;
        }
    }

    // ---- epilogue: acc[i][j] is C[m0 + row(i)][n0 + col(j)], row(c*4+q) = c*4*TY + ty*4 + q (same for columns) ----
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + (i / 4) * 4 * TY + ty * 4 + (i % 4);
        if (m >= p.gm) continue;
        const float bias_m = (MODE == CONV_FWD && bias != nullptr) ? bias[m] : 0.f;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int n = n0 + (j / 4) * 4 * TX + tx * 4 + (j % 4);
            if (n >= p.gn) continue;
            if constexpr (MODE == CONV_FWD) {
                int img, pix;
                fdivmod(n, p.howo, img, pix);
                out[(img * p.c_out + m) * (int)p.howo.d + pix] = acc[i][j] + bias_m;
            } else if constexpr (MODE == CONV_DGRAD) {
                int img, pix;
                fdivmod(n, p.hw, img, pix);
                out[(img * p.c_in + m) * (int)p.hw.d + pix] = acc[i][j];
            } else if (p.accumulate) {
                out[m * p.gn + n] += acc[i][j];
            } else {
                out[(u64)blockIdx.z * ((u64)p.gm * (u64)p.gn) + (u64)(m * p.gn + n)] = acc[i][j];
            }
        }
    }
}

// One extern "C" kernel per pass and tile: conv2d_fwd_<tile>, conv2d_bwd_dx_<tile>, conv2d_bwd_dw_<tile>. MINB, the
// blocks per SM asked of the register allocator: 2 for the 256-thread tiles (<= 128 registers, so a second block hides
// the first one's barrier and load stalls), 4 for the 128-thread tile; MINB_DW the same for wgrad, except 1 for
// 128x128, whose extra per-thread gather state spills at 128 registers.
#define CONV_TILE_KERNELS(NAME, BM, BN, BK, TM, TN, MINB, MINB_DW)                                                      \
    extern "C" __global__ void __launch_bounds__((BM / TM) * (BN / TN), MINB)                                           \
        conv2d_fwd_##NAME(ConvGemm p, const float* __restrict__ x, const float* __restrict__ w,                         \
                          const float* __restrict__ bias, float* __restrict__ y) {                                      \
        conv_gemm<BM, BN, BK, TM, TN, CONV_FWD>(p, w, x, bias, y);                                                      \
    }                                                                                                                   \
    extern "C" __global__ void __launch_bounds__((BM / TM) * (BN / TN), MINB)                                           \
        conv2d_bwd_dx_##NAME(ConvGemm p, const float* __restrict__ dy, const float* __restrict__ w,                     \
                             float* __restrict__ dx) {                                                                  \
        conv_gemm<BM, BN, BK, TM, TN, CONV_DGRAD>(p, w, dy, nullptr, dx);                                               \
    }                                                                                                                   \
    extern "C" __global__ void __launch_bounds__((BM / TM) * (BN / TN), MINB_DW)                                        \
        conv2d_bwd_dw_##NAME(ConvGemm p, const float* __restrict__ x, const float* __restrict__ dy,                     \
                             float* __restrict__ out) {                                                                 \
        conv_gemm<BM, BN, BK, TM, TN, CONV_WGRAD>(p, dy, x, nullptr, out);                                              \
    }

CONV_TILE_KERNELS(128x128, 128, 128, 8, 8, 8, 2, 1)
CONV_TILE_KERNELS(64x128, 64, 128, 8, 4, 8, 2, 2)
CONV_TILE_KERNELS(64x64, 64, 64, 16, 4, 4, 2, 2)
CONV_TILE_KERNELS(32x64, 32, 64, 16, 4, 4, 4, 4)

// dw[i] += ws[0][i] + ws[1][i] + ... + ws[splits-1][i], summed in that order (ws[z] = ws + z*len).
extern "C" __global__ void conv2d_bwd_dw_reduce(u32 len, u32 splits, const float* __restrict__ ws,
                                                float* __restrict__ dw) {
    FG_GRID_STRIDE(i, (u64)len) {
        float s = 0.f;
        for (u32 z = 0; z < splits; ++z) s += ws[(u64)z * len + i];
        dw[i] += s;
    }
}

// db[co] += sum over the channel's n*ho*wo values: one block per channel, each thread a fixed strided subset in
// double, combined by fg_block_sum's fixed tree.
extern "C" __global__ void conv2d_bwd_db(Conv2dGeom g, const float* __restrict__ dy, float* __restrict__ db) {
    __shared__ double scratch[32];
    const u64 howo = g.ho * g.wo;
    for (u64 co = blockIdx.x; co < g.c_out; co += gridDim.x) {  // uniform over the block: fg_block_sum syncs
        double acc = 0.0;
        for (u64 img = 0; img < g.n; ++img) {
            const float* row = dy + (img * g.c_out + co) * howo;
            for (u64 q = threadIdx.x; q < howo; q += blockDim.x) acc += (double)row[q];
        }
        const double total = fg_block_sum(acc, scratch);
        if (threadIdx.x == 0) db[co] += (float)total;
    }
}
