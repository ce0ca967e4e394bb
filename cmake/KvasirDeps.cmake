# Finds every system dependency through pkg-config. A missing one stops the
# configure step with the Debian package that provides it, so the fix is one
# `apt-get install` (or `make deps`) away.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package 'pkg-config' (or run `make deps`)")
endif()

# kvasir_dep(<target-name> <pkg-config module> <debian package>)
macro(kvasir_dep name module debpkg)
  pkg_check_modules(${name} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "kvasir: missing dependency '${module}' (pkg-config). "
                        "Install the Debian package '${debpkg}' (or run `make deps`).")
  endif()
  message(STATUS "kvasir: ${module} ${${name}_VERSION}")
endmacro()

kvasir_dep(SQLITE3   sqlite3      libsqlite3-dev)
kvasir_dep(LIBGIT2   libgit2      libgit2-dev)
kvasir_dep(TREESIT   tree-sitter  libtree-sitter-dev)
kvasir_dep(SODIUM    libsodium    libsodium-dev)
kvasir_dep(MSGPACK   msgpack      libmsgpack-dev)
kvasir_dep(LIBUV     libuv        libuv1-dev)
kvasir_dep(CURL      libcurl      libcurl4-openssl-dev)
kvasir_dep(YAML      yaml-0.1     libyaml-dev)
kvasir_dep(ZSTD      libzstd      libzstd-dev)
kvasir_dep(CMOCKA    cmocka       libcmocka-dev)
kvasir_dep(ZLIB      zlib         zlib1g-dev)
kvasir_dep(CJSON     libcjson     libcjson-dev)
kvasir_dep(PCRE2     libpcre2-8   libpcre2-dev)

# FTS5 must be compiled into the system SQLite: the indexer and the logs
# store depend on it. Checked by running a tiny program at configure time.
include(CheckCSourceRuns)
set(CMAKE_REQUIRED_INCLUDES ${SQLITE3_INCLUDE_DIRS})
set(CMAKE_REQUIRED_LIBRARIES ${SQLITE3_LINK_LIBRARIES})
check_c_source_runs([=[
#include <sqlite3.h>
int main(void) {
  sqlite3 *db; if (sqlite3_open(":memory:", &db)) return 1;
  int rc = sqlite3_exec(db, "CREATE VIRTUAL TABLE t USING fts5(x, tokenize='trigram')", 0, 0, 0);
  sqlite3_close(db); return rc != 0;
}]=] KVASIR_SQLITE_HAS_FTS5)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_LIBRARIES)
if(NOT KVASIR_SQLITE_HAS_FTS5)
  message(FATAL_ERROR "kvasir: the system SQLite lacks FTS5 (with the trigram tokenizer, SQLite >= 3.34). "
                      "Install Debian's 'libsqlite3-dev' (bookworm or newer).")
endif()

find_package(Threads REQUIRED)

if(KVASIR_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    message(FATAL_ERROR "kvasir: KVASIR_CUDA=ON but nvcc was not found (expected /usr/local/cuda/bin/nvcc)")
  endif()
  enable_language(CUDA)
endif()
