/*
 * logs — skeleton from the foundation issue; the logs issue fills it. Prefix: log_
 */
#ifndef KVASIR_LOGS_H
#define KVASIR_LOGS_H
#include "base/base.h"
const char *log_version(void);
#endif
