#include "logs/logs.h"
const char *log_version(void) { return "0.1.0"; }
