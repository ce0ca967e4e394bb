/* test_cuda_probe.c — the CUDA backend links and reports devices; skips
 * (exit 77) on a machine without a GPU or driver. */
#include <stdio.h>

int krn_cuda_device_count(void);

int main(void) {
  int n = krn_cuda_device_count();
  if (n <= 0) {
    printf("no CUDA device: skipped\n");
    return 77;
  }
  printf("%d CUDA device(s)\n", n);
  return 0;
}
