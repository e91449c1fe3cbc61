/* Shared declarations of the K-means kernels (kmeans_bf16.c: products; kmeans_assign.c: one assignment pass). */
#ifndef QRPROBE_KMEANS_BF16_H
#define QRPROBE_KMEANS_BF16_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#define HIDDEN __attribute__((visibility("hidden")))
#define BLOCK_ROWS 128

typedef void (*tile_fn)(const uint16_t *const *, const uint16_t *, int64_t, int64_t, const float *,
                        const int64_t *, int, float *, int32_t *, float *, int64_t);

HIDDEN int pick_tile(int64_t W, int *MR, tile_fn *fn);
HIDDEN TGT int64_t block_groups(const uint16_t *x, int64_t ldx, const int64_t *xrow, int64_t nb,
                                const uint16_t *cpack, const float *csq, int64_t d2, int64_t G, int64_t W, int MR,
                                tile_fn fn, const uint8_t *need, float *m1, int32_t *a1, float *m2,
                                int64_t *padded);
HIDDEN TGT float own_value(const uint16_t *xp, const uint16_t *cp, int64_t d2, float csq);
HIDDEN TGT double exact_dot(const uint16_t *xp, int is_fp16, const float *cp, int64_t d);

#endif
