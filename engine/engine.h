/*
 * engine — GGUF models on the CPU: reader, tokenizers, architectures,
 * sampler, chat templates and the KV memory. Prefix: eng_ (kvm_ for KV memory).
 * (Skeleton from the foundation issue; the engine issue fills it.)
 */
#ifndef KVASIR_ENGINE_H
#define KVASIR_ENGINE_H
#include "base/base.h"
const char *eng_version(void);
#endif
