/*
 * mine_int.h — private to the logs module: the template miner's data
 * structures, shared by mine.c (mining, merging) and mine_io.c (save/load).
 */
#ifndef KVASIR_LOGS_MINE_INT_H
#define KVASIR_LOGS_MINE_INT_H
#include "logs/logs.h"

#include <stdint.h>

#define VAR 0u /* token id of a variable */

typedef struct tok {
  uint32_t off, len;
  uint8_t space; /* whitespace before it */
  uint8_t type;  /* LOG_P_* or NONE */
} tok;

typedef struct tpl {
  uint32_t n;
  uint32_t *ids;  /* token ids, VAR for variables */
  uint8_t *space;
  uint32_t parent; /* union-find; == own id when a root */
  uint32_t next;   /* next template in the same bucket; UINT32_MAX = sub-template */
  uint64_t bkey;   /* bucket it was created in */
  uint64_t size;
} tpl;

/* A pattern: one exact masked token sequence, and the template it maps to. */
typedef struct leaf {
  uint32_t tpl;    /* Drain cluster it joined (resolve through find()) */
  uint32_t final;  /* template after the last merge, 0 = use find(tpl) */
  uint32_t n;
  uint32_t *ids;
  uint64_t count;
} leaf;

typedef struct hslot {
  uint64_t h;
  uint32_t v;
} hslot;

struct log_miner {
  double sim;
  int max_tokens;
  /* interned strings */
  char **str;
  uint32_t *slen;
  uint32_t nstr, capstr;
  hslot *shash;
  uint32_t shcap;
  /* templates, index 0 unused */
  tpl *t;
  uint32_t nt, capt;
  /* buckets: key hash -> first template */
  hslot *bucket;
  uint32_t bcap, bn;
  /* exact masked sequence -> pattern (leaf), index 0 unused */
  hslot *cache;
  uint32_t ccap, cn;
  leaf *lv;
  uint32_t nl, capl;
  uint32_t merged_nl;  /* patterns when merge last ran: nothing new = no-op */
  /* (root template, split key) -> sub-template */
  hslot *subs;
  uint32_t subcap, subn;
  /* scratch */
  tok *toks;
  uint32_t *ids;
  uint32_t captok;
  char *text;
  size_t captext;
};

uint64_t log_m_fnv(const void *p, size_t n, uint64_t h);
int log_m_intern(log_miner *m, const char *s, uint32_t n, uint32_t *id);
hslot *log_m_map_find(hslot *tab, uint32_t cap, uint64_t h);
int log_m_map_put(hslot **tab, uint32_t *cap, uint32_t *cnt, uint64_t h, uint32_t v);
int log_m_new_leaf(log_miner *m, uint32_t tplid, const uint32_t *ids, uint32_t n, uint32_t *out);

/* The type masking gives a token on its own (LOG_P_NONE for a word). */
int log_m_type(const char *s, size_t n);

#endif
