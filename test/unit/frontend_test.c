/* frontend_test: unit tests of the lexer, parser and checks, an allocation
 * failure sweep over the whole front end, and a seeded random-input run
 * that must never crash. Prints `N passed, M failed` last. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../compiler/compiler.h"

static int passed, failed;

#define CHECK(cond)                                                   \
  do {                                                                \
    if (cond) {                                                       \
      passed++;                                                       \
    } else {                                                          \
      failed++;                                                       \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                 \
  } while (0)

/* Runs the front end on text; returns the error count (0 on success). */
static int run(const char *text, FrontEnd *fe, FeStop stop, FILE *diag) {
  Diag d = {.out = diag};
  *fe = (FrontEnd){0};
  fe_run(fe, "t.sattn", text, strlen(text), stop, &d);
  return d.errors;
}

static void test_tokens(void) {
  FrontEnd fe;
  CHECK(run("attention a { shape seq=? } # c\n image=56x56 mean-0.5 1e-3", &fe, FE_STOP_TOKENS, NULL) == 0);
  TokenKind want[] = {TK_IDENT, TK_IDENT, TK_LBRACE, TK_IDENT, TK_IDENT, TK_EQ, TK_QUESTION, TK_RBRACE,
                      TK_IDENT, TK_EQ, TK_INT, TK_TIMES, TK_INT, TK_IDENT, TK_MINUS, TK_FLOAT, TK_FLOAT, TK_EOF};
  size_t n = sizeof want / sizeof *want;
  CHECK(fe.toks.n == n);
  for (size_t i = 0; i < n && i < fe.toks.n; i++)
    CHECK(fe.toks.toks[i].kind == want[i]);
  CHECK(fe.toks.toks[10].ival == 56);
  CHECK(fabs(fe.toks.toks[16].fval - 1e-3) < 1e-15);
  CHECK(fe.toks.toks[8].loc.line == 2 && fe.toks.toks[8].loc.col == 2);
  fe_free(&fe);
  CHECK(run("attention a { shape seq=99999999999999999999 }", &fe, FE_STOP_TOKENS, NULL) == 1);
  fe_free(&fe);
  CHECK(run("attention \x01", &fe, FE_STOP_TOKENS, NULL) == 1);
  fe_free(&fe);
}

static const char *const full =
    "attention all_terms {\n"
    "  shape batch=? heads=8 kv_heads=2 seq=4096 head_dim=64\n"
    "  layout bshd\n"
    "  precision input=bf16 score=fp32 softmax=fp32 accumulate=fp32 output=bf16\n"
    "  scale 0.1\n"
    "  pattern causal and window 512 dilation 2 and global [5, 0] and blocks 64 [0:0, 3:1]\n"
    "      and predict dim=16 bits=4 keep=top 10% seed=7\n"
    "      and filter { round bits=2 keep=mean+0.2 round qbits=4 kbits=2 keep=top 25 }\n"
    "      and nm 2:4\n"
    "  prune tokens=0.7 heads=0.75 values=0.2\n"
    "  progressive msb=6 lsb=4 threshold=0.1\n"
    "}\n"
    "attention second { shape heads=1 seq=7 head_dim=15 }\n";

static void test_parse(void) {
  FrontEnd fe;
  CHECK(run(full, &fe, FE_STOP_CHECK, stderr) == 0);
  CHECK(fe.file.count == 2);
  const SaSpec *s = &fe.file.first->spec;
  CHECK(strcmp(s->name, "all_terms") == 0);
  CHECK(s->batch == SA_DYNAMIC && s->heads == 8 && s->kv_heads == 2 && s->seq == 4096 && s->head_dim == 64);
  CHECK(s->layout == LAYOUT_BSHD && s->storage == DT_BF16 && s->output == DT_BF16);
  CHECK(s->scale == 0.1);
  CHECK(s->causal && s->has_window && s->window == 512 && s->dilation == 2);
  CHECK(s->n_global == 2 && s->global[0] == 0 && s->global[1] == 5);
  CHECK(s->block == 64 && s->n_block_pairs == 2 && s->block_pairs[1].q == 3 && s->block_pairs[1].k == 1);
  CHECK(s->has_predict && s->predict_dim == 16 && s->predict_bits == 4 && s->predict_seed == 7);
  CHECK(s->predict_keep.kind == KEEP_TOP_RATIO && fabs(s->predict_keep.value - 0.1) < 1e-12);
  CHECK(s->n_filter_rounds == 2 && s->filter[0].q_bits == 2 && s->filter[0].keep.kind == KEEP_MEAN);
  CHECK(s->filter[1].q_bits == 4 && s->filter[1].k_bits == 2 && s->filter[1].keep.kind == KEEP_TOP_COUNT);
  CHECK(s->nm_n == 2 && s->nm_m == 4);
  CHECK(s->token_keep == 0.7 && s->head_keep == 0.75 && s->value_keep == 0.2);
  CHECK(s->has_progressive && s->msb_bits == 6 && s->lsb_bits == 4 && s->requant_threshold == 0.1);
  const SaSpec *t = &fe.file.first->next->spec;
  CHECK(t->kv_heads == 1 && t->batch == 1 && fabs(t->scale - 1.0 / sqrt(15.0)) < 1e-15);
  CHECK(t->storage == DT_FP32 && !t->causal && t->token_keep == 1.0);
  fe_free(&fe);
}

/* Each line: input, then the error count expected. */
static void test_errors(void) {
  static const struct {
    const char *text;
    int errors;
  } cases[] = {
      {"", 1},
      {"attention", 1},
      {"attention a { shape heads=2 seq=3 head_dim=4 } attention a { shape heads=2 seq=3 head_dim=4 }", 1},
      {"attention a { shape heads=0 seq=3 head_dim=4 }", 1},
      {"attention a { shape heads=2 seq=3 head_dim=4 pattern nm 4:2 }", 1},
      {"attention a { shape heads=2 seq=3 }", 1},
      /* sema reports every spec's errors, not only the first */
      {"attention a { shape heads=3 kv_heads=2 seq=3 head_dim=4 } attention b { shape heads=2 seq=3 head_dim=999 }",
       2},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    FrontEnd fe;
    int e = run(cases[i].text, &fe, FE_STOP_CHECK, NULL);
    if (e != cases[i].errors)
      fprintf(stderr, "case %zu: %d errors, want %d\n", i, e, cases[i].errors);
    CHECK(e == cases[i].errors);
    fe_free(&fe);
  }
}

/* Every allocation the front end makes may fail: each failure must give a
 * clean error, never a crash or a false success. */
static void test_allocation_failures(void) {
  int sweeps = 0;
  for (long n = 1; n < 200; n++) {
    FrontEnd fe = {0};
    fe.arena.fail_at = n;
    Diag d = {.out = NULL};
    bool ok = fe_run(&fe, "t", full, strlen(full), FE_STOP_CHECK, &d);
    bool failed_alloc = fe.arena.count >= n;
    fe_free(&fe);
    if (!failed_alloc) { /* n is past the last allocation: success expected */
      CHECK(ok && d.errors == 0);
      break;
    }
    sweeps++;
    CHECK(!ok && d.errors >= 1);
  }
  CHECK(sweeps > 0);
}

static uint64_t rng = 0x1234567;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Random bytes and random token soup: any outcome but a crash is fine, and
 * a rejected input must have said why. */
static void test_random_inputs(void) {
  static const char *const words[] = {"attention", "a", "{", "}", "shape", "heads", "=", "4", "seq", "?",
                                      "head_dim", "pattern", "nm", "2", ":", "filter", "round", "bits",
                                      "keep", "top", "%", "mean", "+", "-", "window", "and", "global", "[",
                                      "]", ",", "blocks", "window2d", "image", "3x3", "size", "prune",
                                      "tokens", "0.5", "progressive", "msb", "bigbird", "block", "predict",
                                      "dim", "1e308", "99999999999"};
  size_t nw = sizeof words / sizeof *words;
  char buf[4096];
  int rejected_silently = 0;
  for (int iter = 0; iter < 3000; iter++) {
    size_t n = 0;
    if (iter % 3 == 0) {
      size_t len = next_rand() % 300;
      for (size_t i = 0; i < len; i++)
        buf[n++] = (char)(next_rand() % 256);
    } else {
      int count = (int)(next_rand() % 60);
      for (int i = 0; i < count && n < sizeof buf - 64; i++) {
        const char *w = words[next_rand() % nw];
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s ", w);
      }
    }
    buf[n] = 0;
    FrontEnd fe = {0};
    Diag d = {.out = NULL};
    bool ok = fe_run(&fe, "r", buf, n, FE_STOP_CHECK, &d);
    if (!ok && d.errors == 0)
      rejected_silently++;
    fe_free(&fe);
  }
  CHECK(rejected_silently == 0);
}

/* Deep and long inputs: nothing recursive in the grammar grows the stack
 * with the input, and long lists are bounded. */
static void test_big_inputs(void) {
  size_t n = 2 * 1024 * 1024;
  char *text = malloc(n + 1);
  memset(text, '{', n);
  text[n] = 0;
  FrontEnd fe;
  CHECK(run(text, &fe, FE_STOP_CHECK, NULL) == 1);
  fe_free(&fe);
  size_t off = (size_t)sprintf(text, "attention a { shape heads=1 seq=? head_dim=4 pattern window 3 and global [");
  for (int i = 0; i < 70000; i++)
    off += (size_t)sprintf(text + off, "%d,", i);
  sprintf(text + off - 1, "] }");
  CHECK(run(text, &fe, FE_STOP_CHECK, NULL) == 1); /* more than the list limit */
  fe_free(&fe);
  free(text);
}

int main(void) {
  test_tokens();
  test_parse();
  test_errors();
  test_allocation_failures();
  test_random_inputs();
  test_big_inputs();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
