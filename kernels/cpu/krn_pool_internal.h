/*
 * krn_pool_internal.h — the thread pool's struct, shared by pool.c and
 * matmul.c (which keeps its activation scratch and chosen ISA in the pool).
 * See pool.c for the protocol between the caller and the workers.
 */
#ifndef KVASIR_KRN_POOL_INTERNAL_H
#define KVASIR_KRN_POOL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"


struct krn_pool {
  int n;          /* threads including the caller */
  int isa;        /* KRN_ISA_* chosen at create time (KVASIR_ISA honoured) */
  pthread_t *th;  /* n-1 workers */
  /* job state, written by the caller before opening a job */
  void (*fn)(void *, int);
  void *ctx;
  uint32_t gen;   /* caller-only counter, 24 bits used */
  _Alignas(64) _Atomic uint64_t claim;
  _Alignas(64) _Atomic int done;
  _Alignas(64) _Atomic uint32_t seq; /* futex word: bumped per job and at stop */
  _Atomic int sleepers;
  _Atomic int stop;
  _Atomic int running;   /* a krn_pool_run job is open (nested/concurrent calls run inline) */
  _Atomic int scratch_busy; /* a matmul owns `scratch` (others allocate their own) */
  /* caller-only scratch for quantized activations */
  void *scratch;
  size_t scratch_cap;
};

/* 1 if the caller now owns the scratch, 0 if another matmul holds it. */
int krn__pool_scratch_acquire(krn_pool *p);
void krn__pool_scratch_release(krn_pool *p);
void *krn__pool_scratch(krn_pool *p, size_t bytes);

#endif
