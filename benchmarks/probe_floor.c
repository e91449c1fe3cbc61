/* The compiled probe's epoch taken apart (benchmarks/probe_floor.py): each part of a training step run alone, over
   the same batches, tiles, threads and barriers as the kernel (run_passes), to measure what each part costs by
   itself on this machine and how far the whole step is from their sum.

   Built with the kernel's own source included (its folder on the include path), so every part runs the kernel's
   code for that part: QR_GATHER, tile_softmax_part, step_row. */

#include "probe_sgd.c"

/* the parts, by number (probe_floor.py names them) */
enum {
    FLOOR_FORWARD_GATHERS, FLOOR_FORWARD_GATHERS_TWICE, FLOOR_BACKWARD_GATHERS, FLOOR_BACKWARD_GATHERS_TWICE,
    FLOOR_UPDATE, FLOOR_SOFTMAX, FLOOR_GATHERS_L1, FLOOR_FORWARD, FLOOR_BACKWARD, FLOOR_PARTS
};

/* A vector kept from the optimizer: the parts' sums end in it (one store per tile: nothing measurable). */
static void keep(Epoch *e, int64_t j, const vf acc[QR_V]) {
    vf s = acc[0];
    for (int c = 1; c < QR_V; c++) s += acc[c];
    ((vfu *)e->logit)[j] = s;
}

/* (F) without the softmax: the gathers of the batch's rows, the sums stored where the exponentials go.
   l1: every index taken modulo 64, so the rows gathered lie in 16 KB (the L1 cache): the core's load and add
   rate without the L2. */
QR_HOT static void forward_gathers(Epoch *e, int slot, int64_t j, int64_t b, int l1) {
    const int32_t *bptr = e->bptr[slot], *bidx = e->bidx[slot];
    const float *wt = e->w + j * e->m1 * QR_T;
    float *out = e->logit + j * e->bsz * QR_T;
    const int mask = l1 ? 63 : INT32_MAX;
    for (int64_t i = 0; i < b; i++) {
        const int32_t *idx = bidx + bptr[i];
        vf sums[QR_V];
#define FLOOR_FWD_ROW(q) (wt + (int64_t)(idx[q] & mask) * QR_T)
        QR_GATHER(sums, bptr[i + 1] - bptr[i], FLOOR_FWD_ROW);
        for (int c = 0; c < QR_V; c++) ((vfu *)(out + i * QR_T))[c] = sums[c];
    }
}

/* (B) without the scaling and the update: each table row's sum over the batch rows holding it. */
QR_HOT static void backward_gathers(Epoch *e, int slot, int64_t j, int l1) {
    const int32_t *tptr = e->tptr[slot], *trow = e->trow[slot];
    const float *g = e->logit + j * e->bsz * QR_T;
    const int mask = l1 ? 63 : INT32_MAX;
    vf total[QR_V] = {{0}};
    for (int64_t r = 0; r < e->m1; r++) {
        const int32_t *rows = trow + tptr[r];
        vf acc[QR_V];
#define FLOOR_BWD_ROW(q) (g + (int64_t)(rows[q] & mask) * QR_T)
        QR_GATHER(acc, tptr[r + 1] - tptr[r], FLOOR_BWD_ROW);
        for (int c = 0; c < QR_V; c++) total[c] += acc[c];
    }
    keep(e, j, total);
}

/* (B) without the gathers: the kernel's step of every table row (step_row) with a zero gradient sum. */
QR_HOT static void update_only(Epoch *e, int64_t j, int64_t b) {
    float *wt = e->w + j * e->m1 * QR_T, *ut = e->u + j * e->m1 * QR_T;
    const vf zero[QR_V] = {{0}};
    for (int64_t r = 0; r < e->m1; r++)
        step_row(wt, ut, r, e->m1, zero, 1.0f / (float)b, e->lr, e->momentum, e->decay);
}

/* (F) without the gathers: the softmax part of every row of the tile, its input the buffer's contents (the
   arithmetic is branch-free: the values do not change its cost). */
QR_HOT static void softmax_only(Epoch *e, int64_t j, int64_t b) {
    float *buf = e->logit + j * e->bsz * QR_T;
    vf pad[QR_V];
    tile_pad(pad, e->k, j);
    for (int64_t i = 0; i < b; i++) {
        vf sums[QR_V];
        for (int c = 0; c < QR_V; c++) sums[c] = ((vfu *)(buf + i * QR_T))[c] + pad[c];
        tile_softmax_part(sums, buf + i * QR_T, &e->tmax[j * e->bsz + i], &e->tsum[j * e->bsz + i]);
    }
}

static int floor_part;

static void part_tile(Epoch *e, int64_t j, int prev_slot, int64_t prev, int64_t b_prev, int slot, int64_t b) {
    (void)prev;
    switch (floor_part) {
    case FLOOR_FORWARD_GATHERS_TWICE: /* the second time over a tile the first brought into the cache */
        if (b) forward_gathers(e, slot, j, b, 0);
        /* fall through */
    case FLOOR_FORWARD_GATHERS:
        if (b) forward_gathers(e, slot, j, b, 0);
        break;
    case FLOOR_BACKWARD_GATHERS_TWICE:
        if (b_prev) backward_gathers(e, prev_slot, j, 0);
        /* fall through */
    case FLOOR_BACKWARD_GATHERS:
        if (b_prev) backward_gathers(e, prev_slot, j, 0);
        break;
    case FLOOR_UPDATE:
        if (b_prev) update_only(e, j, b_prev);
        break;
    case FLOOR_SOFTMAX:
        if (b) softmax_only(e, j, b);
        break;
    case FLOOR_FORWARD: /* the kernel's (F) alone: gathers and softmax */
        if (b) forward_tile(e, slot, j, b);
        break;
    case FLOOR_BACKWARD: /* the kernel's (B) alone: scaling, gathers and update */
        if (b_prev) backward_tile(e, prev_slot, j, prev, b_prev);
        break;
    case FLOOR_GATHERS_L1:
        if (b_prev) backward_gathers(e, prev_slot, j, 1);
        if (b) forward_gathers(e, slot, j, b, 1);
        break;
    }
}

static void part_worker(void *p) { run_passes((Epoch *)p, part_tile, NULL); }

int qr_floor_parts(void) { return FLOOR_PARTS; }

/* One part of an epoch alone (arguments as qr_probe_epoch; the weights change in FLOOR_UPDATE and FLOOR_BACKWARD). Returns 0,
   −1 when out of memory, −2 for an unknown part. */
int qr_floor_epoch(int part, float *w, float *u, int64_t m1, int64_t k, const int64_t *indptr,
                   const int32_t *indices, const int64_t *labels, const int64_t *perm, int64_t n, int64_t bsz,
                   float lr, float momentum, float decay, float *proba, int n_threads) {
    if (part < 0 || part >= FLOOR_PARTS) return -2;
    Epoch e;
    if (epoch_open(&e, w, u, m1, k, indptr, indices, labels, perm, n, bsz, lr, momentum, decay, proba)) return -1;
    memset(e.logit, 0, (size_t)(e.n_tiles * bsz * QR_T) * sizeof(float));
    floor_part = part;
    run_team(&e.team, epoch_threads(&e, n_threads), part_worker, &e);
    epoch_close(&e);
    return 0;
}
