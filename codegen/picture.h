/* picture.h: a spec's attention pattern as a picture (see picture.c). */
#ifndef SATTN_PICTURE_H
#define SATTN_PICTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sattn/spec.h"

/* Draws head 0 of `s` at sequence length `seq` to out: SVG, or PNG when
 * `png`. Dynamic patterns select on seeded Gaussian inputs (`seed`).
 * False when out of memory. */
bool pic_write(FILE *out, const SaSpec *s, int64_t seq, uint64_t seed, bool png);

#endif
