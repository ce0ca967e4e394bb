/*
 * indexer — skeleton from the foundation issue; the indexer issue fills it. Prefix: idx_
 */
#ifndef KVASIR_INDEXER_H
#define KVASIR_INDEXER_H
#include "base/base.h"
const char *idx_version(void);
#endif
