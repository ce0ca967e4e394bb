#!/usr/bin/env bash
# make_ggml_fixtures.sh — build ggml_matmul_ref.c against the llama.cpp that
# scripts/build-llama-ref builds (pinned there), and write fixtures/mm_*.bin:
# golden matmul outputs from ggml's own quantizers and vec_dot kernels.
# usage: tests/reference/kernels/make_ggml_fixtures.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
"$root/scripts/build-llama-ref" >/dev/null
lb="$root/build-llama-ref/cmake/ggml/src"
inc="$(ls -d "$root"/build-llama-ref/llama_cpp_python-*/vendor/llama.cpp/ggml/include | head -1)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
gcc -O2 -I"$inc" "$here/ggml_matmul_ref.c" "$lb/libggml-cpu.a" "$lb/libggml-base.a" -lstdc++ -lm -fopenmp -lpthread \
  -o "$tmp/ggml_matmul_ref"
mkdir -p "$here/fixtures"
"$tmp/ggml_matmul_ref" "$here/fixtures"
echo "ggml fixtures written to $here/fixtures (llama.cpp $(cat "$root/build-llama-ref/PIN"))"
