# Thin wrapper over CMake + ctest; every target installs what it needs first.
#   make run    set up, build, start the daemon, index this repo, ask a question
#   make test   set up, build, CUDA compile check, ASan+UBSan unit tests, then all tests (not slow/gpu)
BUILD   ?= build
ASAN    ?= build-asan
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
CUDA_FLAG := $(shell [ -x /usr/local/cuda/bin/nvcc ] && [ -n "$$KVASIR_CUDA" ] && echo -DKVASIR_CUDA=ON)

.PHONY: all deps build run test sanitize bench fuzz cuda cuda-check clean help
all: build

help:
	@sed -n '2,3p' Makefile | sed 's/^# *//'

deps:
	@scripts/setup-deps --build-dir $(BUILD)

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CUDA_FLAG) $(CMAKE_FLAGS)

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run-demo $(BUILD)

# The full suite runs last so its summary is the last thing printed.
test: build
	@if [ -x /usr/local/cuda/bin/nvcc ]; then $(MAKE) cuda-check; fi
	$(MAKE) sanitize
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE 'slow|gpu'

# Compile the CUDA kernels once (nvcc present) and run the gpu tests, which
# skip cleanly without a GPU.
cuda-check:
	cmake -S . -B $(BUILD)-cuda -DKVASIR_CUDA=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)-cuda -j $(JOBS) --target kv_kernels_cuda test_cuda_probe
	cd $(BUILD)-cuda && ctest --output-on-failure -L gpu

sanitize: deps
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DKVASIR_SANITIZE=ON $(CMAKE_FLAGS)
	ln -sfn ../$(BUILD)/grammars $(ASAN)/grammars 2>/dev/null || true
	cmake --build $(ASAN) -j $(JOBS)
	cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -L unit

bench: build
	@scripts/setup-deps --bench --build-dir $(BUILD)
	@scripts/run-bench $(BUILD)

fuzz:
	@scripts/setup-deps --fuzz --build-dir $(BUILD)-fuzz
	CC=clang cmake -S . -B $(BUILD)-fuzz -DKVASIR_FUZZ=ON -DKVASIR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)
	cmake --build $(BUILD)-fuzz -j $(JOBS)
	@scripts/run-fuzz $(BUILD)-fuzz $${FUZZ_SECONDS:-60}

cuda:
	cmake -S . -B $(BUILD)-cuda -DKVASIR_CUDA=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD)-cuda -j $(JOBS)

clean:
	rm -rf $(BUILD) $(ASAN) $(BUILD)-fuzz $(BUILD)-cuda

# The VS Code extension (editors/vscode/kvasir.vsix): npm ci from the lock
# file when needed, esbuild bundle, vsce package.
.PHONY: vsix
vsix:
	@editors/vscode/scripts/ensure-deps
	cd editors/vscode && npm run --silent package
