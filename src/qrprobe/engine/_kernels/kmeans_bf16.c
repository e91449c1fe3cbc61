/* K-means distance kernels for CPUs with AVX-512 BF16 (qrprobe.engine.kmeans_kernel loads this file).
 *
 * Products of bf16 rows and bf16 centroids, accumulated and returned in float32 (vdpbf16ps), reduced on the
 * fly to what Lloyd's assignment needs: per (row, centroid group) the smallest and second-smallest value of
 *     v_j = csq[j] - 2 x . c_j          (= ||x - c_j||^2 - ||x||^2 up to rounding)
 * and the slot of the smallest. No N x K distance matrix is written.
 *
 * Layouts (bf16 stored as uint16):
 *   x      rows of length 2*d2 at stride ldx (elements); rows[] selects which ones (any order).
 *   cpack  centroid groups of W slots (W = 16, 32, 48 or 64): cpack[((g*d2 + p)*W + w)*2 + e] holds element
 *          2p+e of slot g*W+w, so one 64-byte load gives 16 slots x one pair of dimensions.
 *   crow   the same centroids row-major (slot x 2*d2), for single dot products.
 *   need   n x G bytes, 1 where (row, group) must be computed; NULL: every group.
 *
 * Accumulation: each output lane sums its 2*d2 exact bf16 products in float32 in dimension order (two
 * roundings per vdpbf16ps at most); the caller's error bound assumes no more than that.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#define BLOCK_ROWS 128

int qr_cpu_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bf16");
}

int qr_abi_version(void) { return 1; }

/* MR rows x V vectors of 16 slots over all d2 pairs; then per row the group's min, argmin slot, second min. */
static inline __attribute__((always_inline)) TGT void tile(
    const uint16_t *const *xr, const uint16_t *cp, int64_t d2, int64_t W, const float *csq, int MR, int V,
    const int64_t *out_at, int nvalid, float *m1, int32_t *a1, float *m2, int64_t slot0)
{
    __m512 acc[12][4];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
    for (int64_t p = 0; p < d2; p++) {
        const uint16_t *bp = cp + p * W * 2;
        __m512i b[4];
        for (int v = 0; v < V; v++) b[v] = _mm512_loadu_si512((const void *)(bp + v * 32));
        for (int r = 0; r < MR; r++) {
            int32_t pair;
            memcpy(&pair, xr[r] + 2 * p, sizeof pair);
            __m512i a = _mm512_set1_epi32(pair);
            for (int v = 0; v < V; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], (__m512bh)a, (__m512bh)b[v]);
        }
    }
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512 inf = _mm512_set1_ps(INFINITY), two = _mm512_set1_ps(2.0f);
    for (int r = 0; r < nvalid; r++) {
        __m512 b1 = inf, b2 = inf;
        __m512i i1 = _mm512_setzero_si512();
        for (int v = 0; v < V; v++) {
            __m512 val = _mm512_fnmadd_ps(two, acc[r][v], _mm512_loadu_ps(csq + v * 16));
            __mmask16 lt = _mm512_cmp_ps_mask(val, b1, _CMP_LT_OQ);
            b2 = _mm512_min_ps(b2, _mm512_max_ps(val, b1));
            b1 = _mm512_mask_mov_ps(b1, lt, val);
            i1 = _mm512_mask_mov_epi32(i1, lt, _mm512_add_epi32(lane, _mm512_set1_epi32(v * 16)));
        }
        float best = _mm512_reduce_min_ps(b1);
        __mmask16 at = _mm512_cmp_ps_mask(b1, _mm512_set1_ps(best), _CMP_EQ_OQ);
        int l = at ? __builtin_ctz(at) : 0;
        int32_t ibuf[16];
        float b2buf[16];
        _mm512_storeu_si512((void *)ibuf, i1);
        _mm512_storeu_ps(b2buf, b2);
        float second = _mm512_reduce_min_ps(_mm512_mask_mov_ps(b1, (__mmask16)(1u << l), inf));
        if (b2buf[l] < second) second = b2buf[l];
        int64_t o = out_at[r];
        m1[o] = best;
        a1[o] = (int32_t)(slot0 + ibuf[l]);
        m2[o] = second;
    }
}

#define TILE(MRv, Vv)                                                                                          \
    static TGT void tile_##MRv##_##Vv(const uint16_t *const *xr, const uint16_t *cp, int64_t d2, int64_t W,     \
                                      const float *csq, const int64_t *out_at, int nv, float *m1, int32_t *a1, \
                                      float *m2, int64_t slot0) {                                               \
        tile(xr, cp, d2, W, csq, MRv, Vv, out_at, nv, m1, a1, m2, slot0);                                       \
    }
TILE(12, 1)
TILE(8, 2)
TILE(8, 3)
TILE(6, 4)

typedef void (*tile_fn)(const uint16_t *const *, const uint16_t *, int64_t, int64_t, const float *,
                        const int64_t *, int, float *, int32_t *, float *, int64_t);

/* For every listed row and every needed group g: m1/a1/m2[row*G + g] = min, its slot, second min of v over
   the group's W slots; done[row*G + g] = 1. Rows are taken in blocks of BLOCK_ROWS; within a block, the rows
   that need a group are computed together, MR at a time. Returns 0, or -1 for an unsupported W. */
TGT int qr_group_min2(const uint16_t *x, int64_t ldx, const int64_t *rows, int64_t n, const uint16_t *cpack,
                      const float *csq, int64_t d2, int64_t G, int64_t W, const uint8_t *need, float *m1,
                      int32_t *a1, float *m2, uint8_t *done)
{
    int MR;
    tile_fn fn;
    switch (W) {
    case 16: MR = 12; fn = tile_12_1; break;
    case 32: MR = 8; fn = tile_8_2; break;
    case 48: MR = 8; fn = tile_8_3; break;
    case 64: MR = 6; fn = tile_6_4; break;
    default: return -1;
    }
    int64_t list[BLOCK_ROWS];
    for (int64_t b0 = 0; b0 < n; b0 += BLOCK_ROWS) {
        int64_t nb = n - b0 < BLOCK_ROWS ? n - b0 : BLOCK_ROWS;
        for (int64_t g = 0; g < G; g++) {
            int64_t cnt = 0;
            for (int64_t r = b0; r < b0 + nb; r++)
                if (!need || need[r * G + g]) list[cnt++] = r;
            for (int64_t t0 = 0; t0 < cnt; t0 += MR) {
                int nv = (int)(cnt - t0 < MR ? cnt - t0 : MR);
                const uint16_t *xr[12];
                int64_t out_at[12];
                for (int r = 0; r < MR; r++) {
                    int64_t i = list[t0 + (r < nv ? r : nv - 1)];
                    xr[r] = x + rows[i] * ldx;
                    out_at[r] = i * G + g;
                }
                fn(xr, cpack + g * d2 * W * 2, d2, W, csq + g * W, out_at, nv, m1, a1, m2, g * W);
                if (done)
                    for (int r = 0; r < nv; r++) done[out_at[r]] = 1;
            }
        }
    }
    return 0;
}

/* out[i] = csq[slot[i]] - 2 x_rows[i] . crow[slot[i]], accumulated as in qr_group_min2. */
TGT void qr_own(const uint16_t *x, int64_t ldx, const int64_t *rows, int64_t n, const uint16_t *crow,
                const float *csq, int64_t d2, const int64_t *slot, float *out)
{
    for (int64_t i = 0; i < n; i++) {
        const uint16_t *xp = x + rows[i] * ldx, *cp = crow + slot[i] * 2 * d2;
        __m512 acc = _mm512_setzero_ps();
        int64_t p = 0;
        for (; p + 16 <= d2; p += 16)
            acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512((const void *)(xp + 2 * p)),
                                   (__m512bh)_mm512_loadu_si512((const void *)(cp + 2 * p)));
        if (p < d2) {
            __mmask16 m = (__mmask16)((1u << (d2 - p)) - 1);
            acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_maskz_loadu_epi32(m, xp + 2 * p),
                                   (__m512bh)_mm512_maskz_loadu_epi32(m, cp + 2 * p));
        }
        out[i] = csq[slot[i]] - 2.0f * _mm512_reduce_add_ps(acc);
    }
}
