/* sema.c: checks that relate the parts of a spec, and defaults that depend
 * on other parts. Every rule here is listed in docs/spec-language.md and has
 * a negative test in test/frontend/invalid-*.sattn. */
#include <math.h>
#include <string.h>

#include "compiler.h"

enum {
  MAX_HEAD_DIM = 256,
  MAX_WINDOW = 1 << 24,
};
/* Elements in one of Q, K, V or O: keeps every index product of the kernels
 * (which use 64-bit offsets) and the reference far from overflow. */
#define MAX_ELEMENTS (INT64_C(1) << 40)

static bool local_term(const SaSpec *s) {
  return s->has_window || s->has_window2d || s->n_block_pairs > 0 || s->has_bigbird;
}

static void check_shape(FeSpec *fs, Diag *d) {
  SaSpec *s = &fs->spec;
  SpecLocs *at = &fs->at;
  int before = d->errors;
  if (!at->shape.line) {
    diag_error(d, at->name, "attention '%s' has no shape statement", s->name);
    return;
  }
  static const struct {
    const char *name;
    size_t loc;
  } required[] = {
      {"heads", offsetof(SpecLocs, heads)},
      {"seq", offsetof(SpecLocs, seq)},
      {"head_dim", offsetof(SpecLocs, head_dim)},
  };
  for (size_t i = 0; i < sizeof required / sizeof *required; i++)
    if (!((Loc *)((char *)at + required[i].loc))->line)
      diag_error(d, at->shape, "shape of '%s' needs %s=", s->name, required[i].name);
  if (d->errors != before)
    return;
  if (!at->kv_heads.line)
    s->kv_heads = s->heads;
  if (s->kv_heads > s->heads || s->heads % s->kv_heads != 0)
    diag_error(d, at->kv_heads, "kv_heads (%lld) must divide heads (%lld)", (long long)s->kv_heads,
               (long long)s->heads);
  if (s->head_dim > MAX_HEAD_DIM)
    diag_error(d, at->head_dim, "head_dim %lld is larger than allowed (at most %d)", (long long)s->head_dim,
               MAX_HEAD_DIM);
  /* With dynamic dims the run-time values are checked again by the runtime. */
  int64_t n = s->heads * s->head_dim;
  int64_t dims[] = {s->batch, s->seq};
  bool too_big = false;
  for (int i = 0; i < 2; i++) {
    if (dims[i] == SA_DYNAMIC)
      continue;
    if (dims[i] > MAX_ELEMENTS / n)
      too_big = true;
    else
      n *= dims[i];
  }
  if (too_big || n > MAX_ELEMENTS)
    diag_error(d, at->shape, "shape of '%s' is too large: more than 2^40 elements in one tensor", s->name);
  if (!at->scale.line)
    s->scale = 1.0 / sqrt((double)s->head_dim);
}

static void check_pattern(FeSpec *fs, Diag *d) {
  SaSpec *s = &fs->spec;
  SpecLocs *at = &fs->at;
  /* dense says "no pattern": anything beside it contradicts it. */
  if (at->dense.line) {
    const Loc others[] = {at->causal, at->window, at->window2d, at->global, at->blocks,
                          at->bigbird, at->nm, at->predict, at->filter};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
      if (others[i].line) {
        diag_error(d, others[i], "dense cannot be combined with other pattern terms");
        break;
      }
  }
  if (s->n_global > 0 && !local_term(s))
    diag_error(d, at->global,
               "global tokens widen a local pattern (window, window2d, blocks or bigbird); "
               "without one every key is already allowed");
  if (at->blocks.line && at->bigbird.line)
    diag_error(d, at->bigbird, "blocks and bigbird both set the block layout; use one");
  if (s->has_window && s->window > MAX_WINDOW)
    diag_error(d, at->window, "window %lld is larger than allowed (at most %d)", (long long)s->window,
               MAX_WINDOW);
  if (s->has_window && s->dilation > 1 && s->window / 2 * s->dilation > MAX_WINDOW)
    diag_error(d, at->window, "window %lld with dilation %lld spans more than %d tokens",
               (long long)s->window, (long long)s->dilation, MAX_WINDOW);
  if (s->has_predict && s->predict_dim > s->head_dim)
    diag_error(d, at->predict, "predict dim=%lld is larger than head_dim (%lld): the projection must reduce it",
               (long long)s->predict_dim, (long long)s->head_dim);
  if (s->seq == SA_DYNAMIC)
    return;
  /* With a fixed length, indices beyond it are certainly mistakes. */
  if (s->n_global > 0 && s->global[s->n_global - 1] >= s->seq)
    diag_error(d, at->global, "global token %lld is beyond the sequence (seq=%lld)",
               (long long)s->global[s->n_global - 1], (long long)s->seq);
  if (s->has_window2d && s->image_offset + s->image_h * s->image_w > s->seq)
    diag_error(d, at->window2d, "the %lldx%lld image at offset %lld does not fit in seq=%lld",
               (long long)s->image_h, (long long)s->image_w, (long long)s->image_offset, (long long)s->seq);
  if (s->n_block_pairs > 0 && !s->has_bigbird) {
    int64_t nb = (s->seq + s->block - 1) / s->block;
    for (int i = 0; i < s->n_block_pairs; i++)
      if (s->block_pairs[i].q >= nb || s->block_pairs[i].k >= nb) {
        diag_error(d, at->blocks, "block pair %lld:%lld is beyond the %lld blocks of seq=%lld",
                   (long long)s->block_pairs[i].q, (long long)s->block_pairs[i].k, (long long)nb,
                   (long long)s->seq);
        break;
      }
  }
}

bool fe_check_spec(FeSpec *fs, Diag *d) {
  int before = d->errors;
  check_shape(fs, d);
  if (d->errors == before)
    check_pattern(fs, d);
  return d->errors == before;
}

bool fe_check(FeFile *f, Diag *d) {
  int before = d->errors;
  for (FeSpec *fs = f->first; fs; fs = fs->next) {
    for (FeSpec *prev = f->first; prev != fs; prev = prev->next)
      if (strcmp(prev->spec.name, fs->spec.name) == 0) {
        diag_error(d, fs->at.name, "attention '%s' is defined twice (first at line %d)", fs->spec.name,
                   prev->at.name.line);
        break;
      }
    fe_check_spec(fs, d);
  }
  return d->errors == before;
}
