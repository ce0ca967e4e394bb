/*
 * rules.c — names of the heuristics that can be switched off (LOG_R_* in
 * logs.h), for the benchmark's command line and its reports. The order of
 * NAMES is the order of the bits; a name never changes meaning.
 */
#include "logs/logs.h"

#include <string.h>

static const char *const NAMES[LOG_R_COUNT] = {
    "h_odd_first", "h_absorb_comp", "h_dash_msg",  "h_bracket_ts", "h_trail",     "h_idshare",    "ts_yy_slash",
    "ts_yymmdd",   "ts_mmdd",       "ts_dotted",   "m_ts_in_msg",  "m_keyval",    "m_colons",     "m_path_whole",
    "m_var_fill",  "m_compat",      "m_near_dups", "m_skeleton",   "m_list_sep",  "m_freq_split", "m_split_typed",
    "h_dash_anchor", "h_delim",     "h_logfmt",    "h_signed",
    "h_mixed",     "h_time_shape", "m_esc_quote", "m_closed_vocab", "m_time_piece", "h_best_fit", "h_trailer", "h_msg_shape", "h_fanout", "m_unit_var",
};

const char *log_rule_name(int i) { return i >= 0 && i < LOG_R_COUNT ? NAMES[i] : NULL; }

int log_rules_parse(const char *names, log_rules *mask, kv_err *err) {
  *mask = 0;
  if (!names || !*names) return 0;
  const char *p = names;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    int found = 0;
    if (l == 3 && !memcmp(p, "all", 3)) *mask = UINT64_MAX >> (64 - LOG_R_COUNT), found = 1;
    for (int i = 0; i < LOG_R_COUNT && !found; i++)
      if (strlen(NAMES[i]) == l && !memcmp(NAMES[i], p, l)) *mask |= (log_rules)1 << i, found = 1;
    if (!found && l) return kv_err_set(err, KV_EINVAL, "logs: unknown rule '%.*s' (see log_rule_name)", (int)l, p);
    p += l;
    if (*p == ',') p++;
  }
  return 0;
}
