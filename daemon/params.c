/*
 * params.c — reading a request's params, whatever shape the client sent:
 * a map (preferred), [map] (rpcrequest-style argument lists) or positional
 * [a, b, ...]. Every handler reads its params only through these, so a
 * missing key, a wrong type or an out-of-range number reads as absent (or
 * the default) and never crashes a handler.
 *
 * Invariants: pure functions of their arguments; no allocation; callable
 * from any thread.
 */
#include "daemon/params_internal.h"

static const cJSON *param(const cJSON *params, const char *key, int index) {
  if (cJSON_IsObject(params)) return cJSON_GetObjectItemCaseSensitive(params, key);
  if (!cJSON_IsArray(params)) return NULL;
  const cJSON *first = cJSON_GetArrayItem(params, 0);
  if (cJSON_IsObject(first)) return cJSON_GetObjectItemCaseSensitive(first, key);
  return index >= 0 ? cJSON_GetArrayItem(params, index) : NULL;
}

const char *dmn_param_str(const cJSON *params, const char *key, int index) {
  const cJSON *v = param(params, key, index);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

int dmn_param_int(const cJSON *params, const char *key, int index, int def) {
  const cJSON *v = param(params, key, index);
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
  if (!cJSON_IsNumber(v) || v->valuedouble < -2e9 || v->valuedouble > 2e9) return def;
  return (int)v->valuedouble;
}

int64_t dmn_param_i64(const cJSON *params, const char *key) {
  const cJSON *v = cJSON_IsObject(params) ? cJSON_GetObjectItemCaseSensitive(params, key) : NULL;
  /* the range test also refuses NaN, whose conversion would be undefined */
  return cJSON_IsNumber(v) && v->valuedouble > -9e18 && v->valuedouble < 9e18 ? (int64_t)v->valuedouble : 0;
}
