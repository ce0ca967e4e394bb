/* test_cpu_features.c — run-time detection agrees with the kernel's view
 * (/proc/cpuinfo flags, an independent reader of the same cpuid bits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

static int cpuinfo_has(const char *flag) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return -1;
  char line[8192];
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "flags", 5)) continue;
    char *tok = strtok(strchr(line, ':') + 1, " \n");
    for (; tok; tok = strtok(NULL, " \n"))
      if (!strcmp(tok, flag)) found = 1;
    break;
  }
  fclose(f);
  return found;
}

static void test_matches_cpuinfo(void **st) {
  const krn_cpu *c = krn_cpu_features();
  if (cpuinfo_has("avx2") < 0) skip();
  assert_int_equal(c->avx2, cpuinfo_has("avx2"));
  assert_int_equal(c->fma, cpuinfo_has("fma"));
  assert_int_equal(c->avx512f, cpuinfo_has("avx512f"));
  assert_int_equal(c->avx512vnni, cpuinfo_has("avx512_vnni"));
}

static void test_isa_cap(void **st) {
  setenv("KVASIR_ISA", "scalar", 1);
  assert_string_equal(krn_isa_name(), "scalar");
  unsetenv("KVASIR_ISA");
  const krn_cpu *c = krn_cpu_features();
  assert_string_equal(krn_isa_name(), c->avx512f && c->avx512bw ? "avx512" : c->avx2 && c->fma ? "avx2" : "scalar");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matches_cpuinfo),
      cmocka_unit_test(test_isa_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
