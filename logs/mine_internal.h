/*
 * mine_internal.h — private to the logs module: the template miner's data
 * structures, shared by mine.c (mining, merging) and mine_io.c (save/load).
 */
#ifndef KVASIR_LOGS_MINE_INTERNAL_H
#define KVASIR_LOGS_MINE_INTERNAL_H
#include "logs/logs.h"

#include <stdint.h>

#define VAR 0u /* token id of a variable */

typedef struct log_tok {
  uint32_t off, len;
  uint8_t space; /* whitespace before it */
  uint8_t type;  /* LOG_P_* or NONE */
} log_tok;

typedef struct log_tpl {
  uint32_t n;
  uint32_t *ids;  /* token ids, VAR for variables */
  uint8_t *space;
  uint32_t parent; /* union-find; == own id when a root */
  uint32_t next;   /* next template in the same bucket; UINT32_MAX = sub-template */
  uint64_t bkey;   /* bucket it was created in */
  uint64_t size;
} log_tpl;

/* A pattern: one exact masked token sequence, and the template it maps to. */
typedef struct log_leaf {
  uint32_t tpl;    /* Drain cluster it joined (resolve through find()) */
  uint32_t final;  /* template after the last merge, 0 = use find(tpl) */
  uint32_t n;
  uint32_t *ids;
  uint64_t count;
} log_leaf;

typedef struct log_hslot {
  uint64_t h;
  uint32_t v;
} log_hslot;

struct log_miner {
  double sim;
  log_rules off; /* LOG_R_* switched off (not saved: a store mines with every rule) */
  int max_tokens;
  /* interned strings */
  char **str;
  uint32_t *slen;
  uint32_t nstr;
  size_t capstr, capslen;
  log_hslot *shash;
  uint32_t shcap;
  /* templates, index 0 unused */
  log_tpl *t;
  uint32_t nt;
  size_t capt;
  /* buckets: key hash -> first template */
  log_hslot *bucket;
  uint32_t bcap, bn;
  /* exact masked sequence -> pattern (leaf), index 0 unused */
  log_hslot *cache;
  uint32_t ccap, cn;
  log_leaf *lv;
  uint32_t nl;
  size_t capl;
  uint32_t merged_nl;  /* patterns when merge last ran: nothing new = no-op */
  /* (root template, split key) -> sub-template */
  log_hslot *subs;
  uint32_t subcap, subn;
  /* scratch */
  log_tok *toks;
  uint32_t *ids;
  size_t captok, capids;
  char *text;
  size_t captext;
};

int log_m_intern(log_miner *m, const char *s, uint32_t n, uint32_t *id);
log_hslot *log_m_map_find(log_hslot *tab, uint32_t cap, uint64_t h);
int log_m_map_put(log_hslot **tab, uint32_t *cap, uint32_t *cnt, uint64_t h, uint32_t v);
int log_m_new_leaf(log_miner *m, uint32_t tplid, const uint32_t *ids, uint32_t n, uint32_t *out);

/* The type masking gives a token on its own (LOG_P_NONE for a word). */
int log_m_type(const char *s, size_t n);

#endif
