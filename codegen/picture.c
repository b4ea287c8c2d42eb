/* picture.c: draws a spec's attention pattern for one sequence length, as
 * SVG or PNG (sattnc --emit=mask-svg|mask-png).
 *
 * Rows are queries, columns keys, for batch entry 0 and head 0. A cell
 * covers a square of (query, key) pairs when the sequence is longer than
 * the picture; its colour says which share of them the static pattern
 * allows (grey) and, for dynamic patterns, which share survives the
 * selection on seeded random inputs (blue; run through the reference, so
 * exactly what every back end computes). Tiles of 64 x 64 pairs that the
 * static pattern leaves empty, which a tiled kernel skips whole, are
 * tinted red. */
#include "picture.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/reference.h"

#define TILE 64
#define MAX_CELLS 256

typedef struct {
  int64_t n;          /* cells per side */
  int64_t per;        /* pairs per cell side */
  float *allowed;     /* share of statically allowed pairs, n x n */
  float *kept;        /* share of surviving pairs, n x n */
  uint8_t *skip;      /* per tile: 1 when the static pattern allows nothing */
  int64_t tiles;      /* tiles per side */
} Grid;

static bool has_dynamic(const SaSpec *s) {
  return s->has_predict || s->n_filter_rounds > 0 || s->nm_m > 0 || s->token_keep < 1.0 || s->head_keep < 1.0;
}

/* Survivors of head 0 through the reference, on seeded Gaussian inputs. */
static uint8_t *survivors(const SaSpec *spec, int64_t S, uint64_t seed) {
  SaSpec s = *spec;
  s.batch = 1;
  s.seq = S;
  int64_t nq = s.heads * S * s.head_dim, nkv = s.kv_heads * S * s.head_dim;
  float *q = malloc((size_t)nq * sizeof *q), *k = malloc((size_t)nkv * sizeof *k);
  float *v = malloc((size_t)nkv * sizeof *v), *o = malloc((size_t)nq * sizeof *o);
  float *ti = malloc((size_t)S * sizeof *ti), *hi = malloc((size_t)s.heads * sizeof *hi);
  uint8_t *surv = malloc((size_t)(s.heads * S * S));
  uint64_t st = seed;
  bool ok = q && k && v && o && ti && hi && surv;
  for (int64_t i = 0; ok && i < nq; i++)
    q[i] = (float)sa_gaussian(&st);
  for (int64_t i = 0; ok && i < nkv; i++) {
    k[i] = (float)sa_gaussian(&st);
    v[i] = (float)sa_gaussian(&st);
  }
  for (int64_t i = 0; ok && i < S; i++)
    ti[i] = (float)fabs(sa_gaussian(&st));
  for (int64_t i = 0; ok && i < s.heads; i++)
    hi[i] = (float)fabs(sa_gaussian(&st));
  if (ok) {
    /* head 0 must be kept for the picture to show anything */
    hi[0] = 1e30f;
    SaProblem p = {.batch = 1, .seq = S, .q = q, .k = k, .v = v, .out = o,
                   .token_importance_in = ti, .head_importance_in = hi, .survivors_out = surv};
    ok = sa_reference(&s, &p, NULL) == SA_OK;
  }
  free(q), free(k), free(v), free(o), free(ti), free(hi);
  if (!ok) {
    free(surv);
    return NULL;
  }
  return surv; /* head 0 is the first S*S bytes */
}

static bool build(Grid *g, const SaSpec *s, int64_t S, uint64_t seed) {
  g->n = S < MAX_CELLS ? S : MAX_CELLS;
  g->per = (S + g->n - 1) / g->n;
  g->n = (S + g->per - 1) / g->per;
  g->tiles = (S + TILE - 1) / TILE;
  g->allowed = calloc((size_t)(g->n * g->n), sizeof(float));
  g->kept = calloc((size_t)(g->n * g->n), sizeof(float));
  g->skip = malloc((size_t)(g->tiles * g->tiles));
  if (!g->allowed || !g->kept || !g->skip)
    return false;
  memset(g->skip, 1, (size_t)(g->tiles * g->tiles));
  uint8_t *surv = has_dynamic(s) ? survivors(s, S, seed) : NULL;
  if (has_dynamic(s) && !surv)
    return false;
  for (int64_t i = 0; i < S; i++)
    for (int64_t j = 0; j < S; j++) {
      bool a = sa_static_allowed(s, S, i, j);
      bool k = surv ? surv[i * S + j] != 0 : a;
      size_t c = (size_t)((i / g->per) * g->n + j / g->per);
      g->allowed[c] += a;
      g->kept[c] += k;
      if (a)
        g->skip[(i / TILE) * g->tiles + j / TILE] = 0;
    }
  for (int64_t c = 0; c < g->n * g->n; c++) {
    int64_t ci = c / g->n, cj = c % g->n;
    int64_t h = (ci + 1) * g->per > S ? S - ci * g->per : g->per;
    int64_t w = (cj + 1) * g->per > S ? S - cj * g->per : g->per;
    g->allowed[c] /= (float)(h * w);
    g->kept[c] /= (float)(h * w);
  }
  free(surv);
  return true;
}

/* The colour of a cell: white, grey where allowed but dropped, blue where
 * kept, red tint in skipped tiles. */
static void cell_rgb(const Grid *g, int64_t ci, int64_t cj, uint8_t rgb[3]) {
  float a = g->allowed[ci * g->n + cj], k = g->kept[ci * g->n + cj];
  float dropped = a - k;
  double r = 255 - 200 * k - 90 * dropped, gr = 255 - 150 * k - 90 * dropped, b = 255 - 40 * k - 90 * dropped;
  int64_t ti = ci * g->per / TILE, tj = cj * g->per / TILE;
  if (g->skip[ti * g->tiles + tj] && a == 0)
    gr -= 20, b -= 20;
  rgb[0] = (uint8_t)fmax(0, fmin(255, r));
  rgb[1] = (uint8_t)fmax(0, fmin(255, gr));
  rgb[2] = (uint8_t)fmax(0, fmin(255, b));
}

/* ---- PNG: RGB, 8 bits, stored (uncompressed) deflate blocks ---- */

static uint32_t crc_table[256];

static uint32_t crc32_update(uint32_t c, const uint8_t *p, size_t n) {
  if (!crc_table[1])
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t x = i;
      for (int k = 0; k < 8; k++)
        x = (x & 1) ? 0xEDB88320u ^ (x >> 1) : x >> 1;
      crc_table[i] = x;
    }
  for (size_t i = 0; i < n; i++)
    c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void chunk(FILE *out, const char *type, const uint8_t *data, size_t n) {
  uint8_t len[4], crc[4];
  put32(len, (uint32_t)n);
  fwrite(len, 1, 4, out);
  fwrite(type, 1, 4, out);
  if (n)
    fwrite(data, 1, n, out);
  uint32_t c = crc32_update(0xFFFFFFFFu, (const uint8_t *)type, 4);
  put32(crc, crc32_update(c, data, n) ^ 0xFFFFFFFFu);
  fwrite(crc, 1, 4, out);
}

static bool write_png(FILE *out, const Grid *g, int scale) {
  int64_t side = g->n * scale, stride = 1 + 3 * side;
  size_t raw_n = (size_t)(stride * side);
  uint8_t *raw = malloc(raw_n);
  size_t blocks = raw_n / 65535 + 1;
  uint8_t *z = malloc(raw_n + blocks * 5 + 6);
  if (!raw || !z) {
    free(raw), free(z);
    return false;
  }
  for (int64_t y = 0; y < side; y++) {
    raw[y * stride] = 0; /* filter: none */
    for (int64_t x = 0; x < side; x++)
      cell_rgb(g, y / scale, x / scale, raw + y * stride + 1 + 3 * x);
  }
  size_t zn = 0;
  z[zn++] = 0x78, z[zn++] = 0x01;
  uint32_t s1 = 1, s2 = 0;
  for (size_t i = 0; i < raw_n; i++) {
    s1 = (s1 + raw[i]) % 65521;
    s2 = (s2 + s1) % 65521;
  }
  for (size_t off = 0; off < raw_n || off == 0;) {
    size_t n = raw_n - off < 65535 ? raw_n - off : 65535;
    z[zn++] = off + n == raw_n ? 1 : 0;
    z[zn++] = (uint8_t)n, z[zn++] = (uint8_t)(n >> 8);
    z[zn++] = (uint8_t)~n, z[zn++] = (uint8_t)(~n >> 8);
    memcpy(z + zn, raw + off, n);
    zn += n;
    off += n;
    if (n == 0)
      break;
  }
  put32(z + zn, (s2 << 16) | s1);
  zn += 4;
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  fwrite(sig, 1, 8, out);
  uint8_t ihdr[13];
  put32(ihdr, (uint32_t)side);
  put32(ihdr + 4, (uint32_t)side);
  ihdr[8] = 8, ihdr[9] = 2, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0;
  chunk(out, "IHDR", ihdr, 13);
  chunk(out, "IDAT", z, zn);
  chunk(out, "IEND", NULL, 0);
  free(raw), free(z);
  return true;
}

/* ---- SVG: one rect per run of equal colour in a row of cells ---- */

static void write_svg(FILE *out, const Grid *g, const SaSpec *s, int64_t S, int scale) {
  int64_t side = g->n * scale;
  fprintf(out,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%lld\" height=\"%lld\" shape-rendering=\"crispEdges\">\n"
          "<title>%s at seq %lld: queries down, keys across; blue kept, grey dropped by a dynamic stage, "
          "red tint: 64x64 tiles a tiled kernel skips</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
          (long long)side, (long long)side + 16, s->name, (long long)S);
  for (int64_t ci = 0; ci < g->n; ci++) {
    int64_t start = 0;
    uint8_t cur[3], nxt[3];
    cell_rgb(g, ci, 0, cur);
    for (int64_t cj = 1; cj <= g->n; cj++) {
      bool end = cj == g->n;
      if (!end)
        cell_rgb(g, ci, cj, nxt);
      if (end || memcmp(cur, nxt, 3) != 0) {
        if (!(cur[0] == 255 && cur[1] == 255 && cur[2] == 255))
          fprintf(out, "<rect x=\"%lld\" y=\"%lld\" width=\"%lld\" height=\"%d\" fill=\"#%02x%02x%02x\"/>\n",
                  (long long)(start * scale), (long long)(ci * scale), (long long)((cj - start) * scale), scale, cur[0],
                  cur[1], cur[2]);
        if (!end)
          memcpy(cur, nxt, 3);
        start = cj;
      }
    }
  }
  fprintf(out, "<text x=\"2\" y=\"%lld\" font-family=\"sans-serif\" font-size=\"11\">%s, seq %lld</text>\n</svg>\n",
          (long long)side + 12, s->name, (long long)S);
}

bool pic_write(FILE *out, const SaSpec *s, int64_t seq, uint64_t seed, bool png) {
  Grid g = {0};
  bool ok = build(&g, s, seq, seed);
  int scale = g.n >= 256 ? 2 : (int)(512 / (g.n > 0 ? g.n : 1));
  if (scale < 1)
    scale = 1;
  if (ok) {
    if (png)
      ok = write_png(out, &g, scale);
    else
      write_svg(out, &g, s, seq, scale);
  }
  free(g.allowed), free(g.kept), free(g.skip);
  return ok;
}
