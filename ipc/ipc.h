/*
 * ipc — skeleton from the foundation issue; the ipc issue fills it. Prefix: ipc_
 */
#ifndef KVASIR_IPC_H
#define KVASIR_IPC_H
#include "base/base.h"
const char *ipc_version(void);
#endif
