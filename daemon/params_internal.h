/*
 * params.h — reading a request's params (params.c). Internal to the daemon.
 */
#ifndef KVASIR_DAEMON_PARAMS_H
#define KVASIR_DAEMON_PARAMS_H

#include <stdint.h>

#include <cjson/cJSON.h>

/* params may be a map, [map] (rpcrequest-style argument lists) or positional
 * [a, b, ...] where `index` names the position (-1: no positional form).
 * Any shape is tolerated: a missing or mistyped value reads as absent. */
const char *dmn_param_str(const cJSON *params, const char *key, int index);
int dmn_param_int(const cJSON *params, const char *key, int index, int def);
/* A number of the map form only (0 when absent): times in ms, ids. */
int64_t dmn_param_i64(const cJSON *params, const char *key);

#endif
