/* arena.c: bump allocation for one compile. Nothing is freed alone; the
 * arena dies with the compile, so the front end never tracks lifetimes. */
#include <stdlib.h>
#include <string.h>

#include "compiler.h"

struct ArenaChunk {
  ArenaChunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

enum { CHUNK_MIN = 64 * 1024 };

void *arena_alloc(Arena *a, size_t size) {
  if (a->fail_at > 0 && ++a->count == a->fail_at) {
    a->failed = true;
    return NULL;
  }
  size = (size + 15) & ~(size_t)15;
  if (size == 0)
    size = 16;
  ArenaChunk *c = a->head;
  if (!c || c->cap - c->used < size) {
    size_t cap = size > CHUNK_MIN ? size : CHUNK_MIN;
    c = malloc(sizeof(ArenaChunk) + cap);
    if (!c) {
      a->failed = true;
      return NULL;
    }
    c->next = a->head;
    c->used = 0;
    c->cap = cap;
    a->head = c;
  }
  void *p = c->data + c->used;
  c->used += size;
  memset(p, 0, size);
  return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  if (p)
    memcpy(p, s, n);
  return p;
}

void arena_free(Arena *a) {
  ArenaChunk *c = a->head;
  while (c) {
    ArenaChunk *next = c->next;
    free(c);
    c = next;
  }
  a->head = NULL;
}
