#include "indexer/indexer.h"
const char *idx_version(void) { return "0.1.0"; }
