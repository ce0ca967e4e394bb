/*
 * policy — skeleton from the foundation issue; the policy issue fills it. Prefix: pol_
 */
#ifndef KVASIR_POLICY_H
#define KVASIR_POLICY_H
#include "base/base.h"
const char *pol_version(void);
#endif
