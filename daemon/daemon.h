/*
 * daemon — kvasird: event loop, router, jobs. Skeleton from the foundation
 * issue; the daemon issue fills it. Prefix: dmn_
 */
#ifndef KVASIR_DAEMON_H
#define KVASIR_DAEMON_H
#include "base/base.h"
int dmn_main(int argc, char **argv);
#endif
