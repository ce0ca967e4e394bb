// cuda_probe.cu — the CUDA backend's entry point. Built only with
// -DKVASIR_CUDA=ON. krn_cuda_device_count() returns 0 (not an error) when no
// GPU or driver is present, so GPU tests can skip cleanly.
#include <cuda_runtime.h>

extern "C" int krn_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}
