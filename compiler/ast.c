/* ast.c: prints checked specs as one `key value` line each, for
 * `sattnc --emit=ast` and for tests of the front end. */
#include <string.h>

#include "compiler.h"

static void print_dim(FILE *out, const char *name, int64_t v) {
  if (v == SA_DYNAMIC)
    fprintf(out, " %s=?", name);
  else
    fprintf(out, " %s=%lld", name, (long long)v);
}

static void print_keep(FILE *out, SaKeep k) {
  switch (k.kind) {
  case KEEP_ALL: fputs("all", out); break;
  case KEEP_TOP_RATIO: fprintf(out, "top %g%%", k.value * 100.0); break;
  case KEEP_TOP_COUNT: fprintf(out, "top %lld", (long long)k.value); break;
  case KEEP_MEAN: fprintf(out, "mean%+g", k.value); break;
  }
}

void fe_print_ast(FILE *out, const FeFile *f, const char *only) {
  for (const FeSpec *fs = f->first; fs; fs = fs->next) {
    const SaSpec *s = &fs->spec;
    if (only && strcmp(only, s->name) != 0)
      continue;
    fprintf(out, "attention %s (line %d)\n  shape", s->name, s->line);
    print_dim(out, "batch", s->batch);
    print_dim(out, "heads", s->heads);
    print_dim(out, "kv_heads", s->kv_heads);
    print_dim(out, "seq", s->seq);
    print_dim(out, "head_dim", s->head_dim);
    fprintf(out, "\n  layout %s\n", s->layout == LAYOUT_BHSD ? "bhsd" : "bshd");
    fprintf(out, "  precision input=%s score=%s softmax=%s accumulate=%s output=%s\n",
            sa_dtype_name(s->storage), sa_dtype_name(s->score), sa_dtype_name(s->softmax),
            sa_dtype_name(s->accumulate), sa_dtype_name(s->output));
    fprintf(out, "  scale %.9g\n", s->scale);
    if (s->causal)
      fputs("  causal\n", out);
    if (s->has_window)
      fprintf(out, "  window %lld dilation %lld\n", (long long)s->window, (long long)s->dilation);
    if (s->has_window2d)
      fprintf(out, "  window2d image=%lldx%lld size=%lldx%lld offset=%lld\n", (long long)s->image_h,
              (long long)s->image_w, (long long)s->win_h, (long long)s->win_w, (long long)s->image_offset);
    if (s->n_global) {
      fputs("  global", out);
      for (int i = 0; i < s->n_global; i++)
        fprintf(out, " %lld", (long long)s->global[i]);
      fputc('\n', out);
    }
    if (s->n_block_pairs) {
      fprintf(out, "  blocks %lld", (long long)s->block);
      for (int i = 0; i < s->n_block_pairs; i++)
        fprintf(out, " %lld:%lld", (long long)s->block_pairs[i].q, (long long)s->block_pairs[i].k);
      fputc('\n', out);
    }
    if (s->has_bigbird)
      fprintf(out, "  bigbird block=%lld window=%lld random=%lld global=%lld seed=%llu\n", (long long)s->block,
              (long long)s->bb_window, (long long)s->bb_random, (long long)s->bb_global,
              (unsigned long long)s->bb_seed);
    if (s->has_predict) {
      fprintf(out, "  predict dim=%lld bits=%d seed=%llu keep=", (long long)s->predict_dim, s->predict_bits,
              (unsigned long long)s->predict_seed);
      print_keep(out, s->predict_keep);
      fputc('\n', out);
    }
    for (int i = 0; i < s->n_filter_rounds; i++) {
      fprintf(out, "  filter round qbits=%d kbits=%d keep=", s->filter[i].q_bits, s->filter[i].k_bits);
      print_keep(out, s->filter[i].keep);
      fputc('\n', out);
    }
    if (s->nm_m)
      fprintf(out, "  nm %d:%d\n", s->nm_n, s->nm_m);
    if (s->token_keep < 1 || s->head_keep < 1 || s->value_keep < 1)
      fprintf(out, "  prune tokens=%g heads=%g values=%g\n", s->token_keep, s->head_keep, s->value_keep);
    if (s->has_progressive)
      fprintf(out, "  progressive msb=%d lsb=%d threshold=%g\n", s->msb_bits, s->lsb_bits,
              s->requant_threshold);
  }
}
