/* sattn-accel: reads an accelerator stream (.sacc), validates it, and
 * prints its listing (the same text `sattnc --emit=accel-asm` prints for
 * the stream it makes) or runs it on the machine model.
 *
 *   sattn-accel FILE.sacc [--disassemble] [--run] [--config F] [--batch N]
 *               [--seed S] [--json]
 *
 * --run executes the stream on seeded Gaussian inputs (batch: the stream's
 * fixed batch, else 1) on the configuration of --config (default:
 * sattn/accel.h's) and prints cycles, time, memory
 * traffic and energy per instruction class; sattn-run --target=accel also
 * checks the result against the reference. Runs only the runtime library:
 * no compiler, no LLVM. Exit status: 0, 1 for a malformed stream or a
 * failed run (with the reason), 2 for bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/accel.h"
#include "sattn/reference.h"
#include "tool.h"

static int usage(FILE *f, int rc) {
  fputs("usage: sattn-accel FILE.sacc [--disassemble] [--run] [--config F] [--batch N] [--seed S] [--json]\n", f);
  return rc;
}

int main(int argc, char **argv) {
  const char *file = NULL, *config = NULL;
  bool run = false, dis = false, json = false;
  long long batch = 0; /* 0: the stream's, or 1 */
  uint64_t seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help"))
      return usage(stdout, 0);
    if (!strcmp(a, "--run"))
      run = true;
    else if (!strcmp(a, "--disassemble"))
      dis = true;
    else if (!strcmp(a, "--json"))
      json = true;
    else if ((!strcmp(a, "--config") || !strcmp(a, "--batch") || !strcmp(a, "--seed")) && i + 1 < argc) {
      const char *v = argv[++i];
      if (a[2] == 'c')
        config = v;
      else if (a[2] == 'b' && (batch = atoll(v)) < 1)
        return usage(stderr, 2);
      else if (a[2] == 's')
        seed = strtoull(v, NULL, 0);
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "sattn-accel: error: unknown option '%s'\n", a);
      return usage(stderr, 2);
    } else if (file) {
      return usage(stderr, 2);
    } else {
      file = a;
    }
  }
  if (!file)
    return usage(stderr, 2);
  if (!run)
    dis = true;
  size_t len, clen = 0;
  char *bytes = tool_read_file(file, &len), *ctext = config ? tool_read_file(config, &clen) : NULL;
  if (!bytes || (config && !ctext)) {
    free(bytes);
    free(ctext);
    return 1;
  }
  char err[256];
  SaAccelProgram *p = NULL;
  SaAccelConfig cfg;
  int rc = 1;
  SaStatus st = sa_accel_load(bytes, len, &p, err, sizeof err);
  if (st != SA_OK) {
    fprintf(stderr, "%s: error: %s: %s\n", file, sa_status_name(st), err);
    goto done;
  }
  if (dis) {
    char *text = sa_accel_disassemble(p);
    if (!text) {
      fputs("sattn-accel: error: out of memory\n", stderr);
      goto done;
    }
    fputs(text, stdout);
    free(text);
  }
  rc = 0;
  if (!run)
    goto done;
  rc = 1;
  sa_accel_config_default(&cfg);
  if (ctext && (st = sa_accel_config_parse(ctext, clen, &cfg, err, sizeof err)) != SA_OK) {
    fprintf(stderr, "%s: error: %s\n", config, err);
    goto done;
  }
  const SaSpec *s = sa_accel_spec(p);
  if (batch == 0)
    batch = s->batch != SA_DYNAMIC ? s->batch : 1;
  size_t nq = (size_t)(batch * s->heads * s->seq * s->head_dim), nkv = (size_t)(batch * s->kv_heads * s->seq * s->head_dim);
  float *q = malloc(nq * sizeof *q), *k = malloc(nkv * sizeof *k), *v = malloc(nkv * sizeof *v), *o = malloc(nq * sizeof *o);
  SaAccelStats t;
  if (!q || !k || !v || !o) {
    fputs("sattn-accel: error: out of memory\n", stderr);
  } else {
    for (size_t i = 0; i < nq; i++)
      q[i] = (float)sa_gaussian(&seed);
    for (size_t i = 0; i < nkv; i++)
      k[i] = (float)sa_gaussian(&seed), v[i] = (float)sa_gaussian(&seed);
    st = sa_accel_run(p, &cfg, q, k, v, o, batch, NULL, &t, err, sizeof err);
    if (st != SA_OK) {
      fprintf(stderr, "%s: error: %s: %s\n", file, sa_status_name(st), err);
    } else if (json) {
      printf("{\"kernel\": \"%s\", \"batch\": %lld, \"cycles\": %lld, \"seconds\": %.6g, \"compute_cycles\": %lld, "
             "\"dram_cycles\": %lld, \"dram_read_bytes\": %lld, \"dram_write_bytes\": %lld, \"dram_requests\": %lld, "
             "\"sram_bytes\": %lld, \"macs\": %lld, \"low_macs\": %lld, \"energy_pj\": %.1f, \"scores\": %lld, "
             "\"engine_rows\": %lld, \"requantized_rows\": %lld, \"classes\": {",
             s->name, batch, (long long)t.cycles, t.seconds, (long long)t.compute_cycles, (long long)t.dram_cycles,
             (long long)t.dram_read_bytes, (long long)t.dram_write_bytes, (long long)t.dram_requests,
             (long long)t.sram_bytes, (long long)t.macs,
             (long long)t.low_macs, t.energy_pj, (long long)t.pairs, (long long)t.rows, (long long)t.requantized_rows);
      for (int i = 0; i < SA_ACCEL_CLASSES; i++)
        printf("%s\"%s\": {\"instructions\": %lld, \"cycles\": %lld, \"dram_read_bytes\": %lld, \"macs\": %lld, "
               "\"low_macs\": %lld, \"energy_pj\": %.1f}",
               i ? ", " : "", t.cls[i].name, (long long)t.cls[i].instructions, (long long)t.cls[i].cycles,
               (long long)t.cls[i].dram_read_bytes, (long long)t.cls[i].macs, (long long)t.cls[i].low_macs,
               t.cls[i].energy_pj);
      printf("}}\n");
      rc = 0;
    } else {
      printf("%s: %lld cycles (%.4f ms at %.2f GHz): compute %lld, DRAM transfer %lld\n", s->name, (long long)t.cycles,
             1e3 * t.seconds, cfg.clock_ghz, (long long)t.compute_cycles, (long long)t.dram_cycles);
      printf("  DRAM read %lld B, written %lld B in %lld requests; SRAM %lld B; %lld MACs, %lld low-bit MACs; "
             "energy %.1f uJ; %lld scores per batch entry\n",
             (long long)t.dram_read_bytes, (long long)t.dram_write_bytes, (long long)t.dram_requests,
             (long long)t.sram_bytes, (long long)t.macs,
             (long long)t.low_macs, 1e-6 * t.energy_pj, (long long)t.pairs);
      if (t.rows)
        printf("  row engine: %lld query rows, %lld requantized\n", (long long)t.rows, (long long)t.requantized_rows);
      for (int i = 0; i < SA_ACCEL_CLASSES; i++)
        printf("  %-8s %10lld instructions %12lld cycles %14lld DRAM bytes %14lld MACs %10.2f uJ\n", t.cls[i].name,
               (long long)t.cls[i].instructions, (long long)t.cls[i].cycles,
               (long long)(t.cls[i].dram_read_bytes + t.cls[i].dram_write_bytes), (long long)t.cls[i].macs,
               1e-6 * t.cls[i].energy_pj);
      rc = 0;
    }
  }
  free(q), free(k), free(v), free(o);
done:
  sa_accel_free(p);
  free(bytes);
  free(ctext);
  return rc;
}
