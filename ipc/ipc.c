#include "ipc/ipc.h"
const char *ipc_version(void) { return "0.1.0"; }
