#include "engine/engine.h"
const char *eng_version(void) { return "0.1.0"; }
