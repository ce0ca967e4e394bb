#include "policy/policy.h"
const char *pol_version(void) { return "0.1.0"; }
