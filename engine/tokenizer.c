/*
 * tokenizer.c — text <-> token ids, reproducing llama.cpp's tokenizers:
 *  - special tokens are split out first (longest text first; control tokens
 *    only when parse_special, user-defined tokens always);
 *  - GPT-2 byte-level BPE: pre-tokenizer regex stages split the text into
 *    words, each word's bytes are mapped to GPT-2's printable code points,
 *    then merged by lowest merge rank (ties: leftmost), unknown symbols fall
 *    back to their bytes;
 *  - SentencePiece-style (llama.cpp "SPM"): spaces become U+2581, UTF-8
 *    characters are merged by highest vocabulary score (ties: leftmost),
 *    symbols that are not tokens fall back to <0xXX> byte tokens.
 * Output is bounded by the caller's capacity; input may be any bytes.
 */
#define _GNU_SOURCE /* memmem, qsort_r */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

typedef struct out_buf {
  int32_t *ids;
  size_t cap, n;
} out_buf;
static void emit(out_buf *o, int32_t id) {
  if (o->n < o->cap) o->ids[o->n] = id;
  o->n++;
}

static size_t utf8_len(uint8_t c) {
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) return 2;
  if ((c & 0xf0) == 0xe0) return 3;
  if ((c & 0xf8) == 0xf0) return 4;
  return 1;
}

/* GPT-2's byte -> code point map, as UTF-8 (2 bytes at most). */
static int byte_cp(int b) {
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
  int k = 0;
  for (int i = 0; i < b; i++)
    if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255))) k++;
  return 256 + k;
}
static size_t put_cp(char *o, int cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  o[0] = (char)(0xc0 | (cp >> 6));
  o[1] = (char)(0x80 | (cp & 0x3f));
  return 2;
}

/* Symbols being merged: spans of buf, in a doubly linked list. */
typedef struct sym {
  size_t off, len;
  int prev, next;
  int32_t id;
} sym;

typedef struct work {
  sym *s;
  size_t cap;
  char *buf;
  size_t bcap;
} work;

/* Room for nsym symbols and nbuf bytes of scratch (kept across pieces). */
static int grow(work *w, size_t nsym, size_t nbuf) {
  if (KV_GROW(w->s, w->cap, nsym) || KV_GROW(w->buf, w->bcap, nbuf)) return KV_ENOMEM;
  return 0;
}

static int32_t merge_rank(const eng_vocab *v, int32_t a, int32_t b) {
  if (a < 0 || b < 0) return -1;
  uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
  uint64_t k = key;
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  size_t m = v->mcap - 1;
  for (size_t j = k & m; v->mkey[j]; j = (j + 1) & m)
    if (v->mkey[j] == key) return v->mrank[j];
  return -1;
}

/* Split buf[0..n) into UTF-8 characters as initial symbols; returns count. */
static int init_syms(const eng_vocab *v, work *w, size_t n) {
  int ns = 0;
  for (size_t i = 0; i < n;) {
    size_t l = utf8_len((uint8_t)w->buf[i]);
    if (l > n - i) l = n - i;
    w->s[ns] = (sym){i, l, ns - 1, ns + 1, eng_vocab_find(v, w->buf + i, l)};
    ns++;
    i += l;
  }
  if (ns) w->s[ns - 1].next = -1;
  return ns;
}

static void bpe_word(const eng_vocab *v, work *w, size_t n, out_buf *o) {
  int ns = init_syms(v, w, n);
  if (!ns) return;
  for (;;) { /* lowest rank, leftmost */
    int best = -1;
    int32_t br = 0;
    for (int i = 0; i != -1 && w->s[i].next != -1; i = w->s[i].next) {
      int32_t r = merge_rank(v, w->s[i].id, w->s[w->s[i].next].id);
      if (r >= 0 && (best < 0 || r < br)) { best = i; br = r; }
    }
    if (best < 0) break;
    sym *a = &w->s[best], *b = &w->s[a->next];
    a->len += b->len;
    a->next = b->next;
    if (b->next != -1) w->s[b->next].prev = best;
    a->id = eng_vocab_find(v, w->buf + a->off, a->len);
  }
  for (int i = 0; i != -1; i = w->s[i].next) {
    if (w->s[i].id >= 0) { emit(o, w->s[i].id); continue; }
    for (size_t j = 0; j < w->s[i].len; j++) { /* byte fallback: each encoded char */
      size_t l = utf8_len((uint8_t)w->buf[w->s[i].off + j]);
      if (l > w->s[i].len - j) l = w->s[i].len - j;
      int32_t id = eng_vocab_find(v, w->buf + w->s[i].off + j, l);
      if (id >= 0) emit(o, id);
      else if (v->unk >= 0) emit(o, v->unk);
      j += l - 1;
    }
  }
}

/* Encode raw bytes into GPT-2 code points, then BPE. */
static int bpe_piece(const eng_vocab *v, work *w, const char *p, size_t n, out_buf *o) {
  if (grow(w, n + 1, 2 * n + 1)) return KV_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += put_cp(w->buf + k, byte_cp((uint8_t)p[i]));
  bpe_word(v, w, k, o);
  return 0;
}

/* Apply regex stage `st` to [p, p+n): matches and the gaps between them are
 * pieces, each handed to the next stage (llama.cpp's unicode_regex_split). */
static int bpe_split(const eng_vocab *v, work *w, int st, const char *p, size_t n, out_buf *o, void *md) {
  if (st == v->n_re) return bpe_piece(v, w, p, n, o);
  const pcre2_code *re = v->re[st];
  size_t pos = 0, prev = 0;
  int rc;
  while (pos < n) {
    int m = pcre2_match(re, (PCRE2_SPTR)p, n, pos, 0, md, NULL);
    if (m < 0) break;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t s = ov[0], e = ov[1];
    if (e <= s) { pos = s + 1; continue; }
    if (s > prev && (rc = bpe_split(v, w, st + 1, p + prev, s - prev, o, md))) return rc;
    if ((rc = bpe_split(v, w, st + 1, p + s, e - s, o, md))) return rc;
    prev = pos = e;
  }
  if (n > prev) return bpe_split(v, w, st + 1, p + prev, n - prev, o, md);
  return 0;
}

static void spm_text(const eng_vocab *v, work *w, size_t n, out_buf *o) {
  int ns = init_syms(v, w, n);
  if (!ns) return;
  for (;;) { /* highest score, leftmost */
    int best = -1;
    float bs = 0;
    for (int i = 0; i != -1 && w->s[i].next != -1; i = w->s[i].next) {
      const sym *b = &w->s[w->s[i].next];
      int32_t id = eng_vocab_find(v, w->buf + w->s[i].off, w->s[i].len + b->len);
      if (id >= 0 && (best < 0 || v->score[id] > bs)) { best = i; bs = v->score[id]; }
    }
    if (best < 0) break;
    sym *a = &w->s[best], *b = &w->s[a->next];
    a->len += b->len;
    a->next = b->next;
    if (b->next != -1) w->s[b->next].prev = best;
    a->id = eng_vocab_find(v, w->buf + a->off, a->len);
  }
  for (int i = 0; i != -1; i = w->s[i].next) {
    if (w->s[i].id >= 0) { emit(o, w->s[i].id); continue; }
    for (size_t j = 0; j < w->s[i].len; j++) {
      int32_t id = v->byte_tok[(uint8_t)w->buf[w->s[i].off + j]];
      emit(o, id >= 0 ? id : (v->unk >= 0 ? v->unk : 0));
    }
  }
}

static int spm_piece(const eng_vocab *v, work *w, const char *p, size_t n, int prefix, out_buf *o) {
  if (grow(w, 3 * n + 4, 3 * n + 4)) return KV_ENOMEM;
  size_t k = 0;
  if (prefix) { memcpy(w->buf, "\xe2\x96\x81", 3); k = 3; }
  for (size_t i = 0; i < n; i++) {
    if (p[i] == ' ') { memcpy(w->buf + k, "\xe2\x96\x81", 3); k += 3; }
    else w->buf[k++] = p[i];
  }
  spm_text(v, w, k, o);
  return 0;
}

/* Copy [p, p+n) to a buffer with invalid UTF-8 replaced by U+FFFD, one per
 * bad byte, exactly as llama.cpp's unicode_cpts_from_utf8 does before BPE
 * (lead and continuation bits only; no overlong or surrogate checks). */
static char *utf8_fix(const char *p, size_t n, size_t *out_n) {
  char *o = malloc(3 * n + 1);
  if (!o) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    uint8_t c = (uint8_t)p[i];
    size_t l = 0;
    if (!(c & 0x80)) l = 1;
    else if ((c & 0xe0) == 0xc0) l = 2;
    else if ((c & 0xf0) == 0xe0) l = 3;
    else if ((c & 0xf8) == 0xf0) l = 4;
    if (l > 1 && (c & 0x40) == 0) l = 0;
    if (l > n - i) l = 0;
    for (size_t j = 1; j < l; j++)
      if (((uint8_t)p[i + j] & 0xc0) != 0x80) l = 0;
    if (!l) {
      memcpy(o + k, "\xef\xbf\xbd", 3);
      k += 3;
      i++;
      continue;
    }
    memcpy(o + k, p + i, l);
    k += l;
    i += l;
  }
  *out_n = k;
  return o;
}

/* A fragment of the input: raw text span or a special token id. */
typedef struct frag {
  size_t off, len;
  int32_t id; /* -1: raw */
} frag;

static int partition(const eng_vocab *v, const char *text, size_t len, int parse_special, frag **out, size_t *nf) {
  size_t cap = 0, n = 1;
  frag *f = NULL;
  if (KV_GROW(f, cap, 16)) return KV_ENOMEM;
  f[0] = (frag){0, len, -1};
  for (int si = 0; si < v->n_special; si++) {
    int32_t id = v->special[si];
    if (!parse_special && v->ttype[id] != TT_USER) continue;
    const eng_str *t = &v->text[id];
    for (size_t i = 0; i < n; i++) {
      if (f[i].id >= 0 || f[i].len < t->n) continue;
      const char *base = text + f[i].off;
      const char *hit = memmem(base, f[i].len, t->p, t->n);
      if (!hit) continue;
      size_t l = (size_t)(hit - base), r_off = f[i].off + l + t->n, r_len = f[i].len - l - t->n;
      if (KV_GROW(f, cap, n + 2)) { free(f); return KV_ENOMEM; }
      /* replace f[i] by [left?] [special] [right?]; right is re-scanned next */
      size_t ins = (l ? 1 : 0) + 1 + (r_len ? 1 : 0);
      memmove(f + i + ins, f + i + 1, (n - i - 1) * sizeof *f);
      size_t j = i;
      if (l) f[j++] = (frag){f[i].off, l, -1};
      f[j++] = (frag){0, 0, id};
      if (r_len) f[j++] = (frag){r_off, r_len, -1};
      n += ins - 1;
      i = j - 1 - (r_len ? 1 : 0); /* loop ++ lands on the right remainder */
    }
  }
  *out = f;
  *nf = n;
  return 0;
}

int eng_tokenize(const eng_model *m, const char *text, size_t len, int add_special, int parse_special,
                 int32_t *out, size_t cap, size_t *n_out, kv_err *err) {
  const eng_vocab *v = &m->vocab;
  out_buf o = {out, cap, 0};
  frag *f = NULL;
  size_t nf = 0;
  work w = {0};
  pcre2_match_data *md = NULL;
  int rc = 0;
  *n_out = 0;
  if (!text && len) return kv_err_set(err, KV_EINVAL, "eng_tokenize: NULL text");
  if (v->kind == VOCAB_WPM) return eng__wpm_tokenize(v, text, len, add_special, out, cap, n_out, err);
  if (add_special && v->add_bos) emit(&o, v->bos);
  if (!len) goto done;
  if (partition(v, text, len, parse_special, &f, &nf)) { rc = KV_ENOMEM; goto done; }
  if (v->kind == VOCAB_BPE && !(md = pcre2_match_data_create(4, NULL))) { rc = KV_ENOMEM; goto done; }
  int prev_special = 1;
  for (size_t i = 0; i < nf && !rc; i++) {
    if (f[i].id >= 0) { emit(&o, f[i].id); prev_special = 1; continue; }
    if (v->kind == VOCAB_BPE) {
      size_t fn;
      char *fx = utf8_fix(text + f[i].off, f[i].len, &fn);
      rc = fx ? bpe_split(v, &w, 0, fx, fn, &o, md) : KV_ENOMEM;
      free(fx);
    }
    else rc = spm_piece(v, &w, text + f[i].off, f[i].len, v->add_space_prefix && prev_special, &o);
    prev_special = 0;
  }
done:
  free(f);
  free(w.s);
  free(w.buf);
  if (md) pcre2_match_data_free(md);
  if (rc) return kv_err_set(err, rc, "eng_tokenize: out of memory");
  *n_out = o.n;
  if (o.n > cap) return kv_err_set(err, KV_ELIMIT, "eng_tokenize: %zu tokens do not fit in %zu", o.n, cap);
  return 0;
}

static int unhex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int eng_token_piece(const eng_model *m, int32_t id, char *buf, size_t n) {
  const eng_vocab *v = &m->vocab;
  if (id < 0 || id >= v->n) return KV_EINVAL;
  const eng_str *t = &v->text[id];
  size_t k = 0;
#define PUT(c) do { if (k < n) buf[k] = (char)(c); k++; } while (0)
  if (v->ttype[id] == TT_CONTROL || v->ttype[id] == TT_UNKNOWN) {
    for (size_t i = 0; i < t->n; i++) PUT(t->p[i]);
    return (int)k;
  }
  if (v->kind == VOCAB_SPM) {
    if (v->ttype[id] == TT_BYTE && t->n == 6 && unhex(t->p[3]) >= 0 && unhex(t->p[4]) >= 0) {
      PUT(unhex(t->p[3]) * 16 + unhex(t->p[4]));
      return (int)k;
    }
    for (size_t i = 0; i < t->n; i++) {
      if (i + 2 < t->n && !memcmp(t->p + i, "\xe2\x96\x81", 3)) { PUT(' '); i += 2; }
      else PUT(t->p[i]);
    }
    return (int)k;
  }
  if (v->ttype[id] == TT_USER) { /* user-defined BPE tokens are stored as plain text */
    for (size_t i = 0; i < t->n; i++) PUT(t->p[i]);
    return (int)k;
  }
  for (size_t i = 0; i < t->n;) { /* GPT-2 code points back to bytes */
    uint8_t c = (uint8_t)t->p[i];
    int cp;
    if (c < 0x80) { cp = c; i += 1; }
    else if ((c & 0xe0) == 0xc0 && i + 1 < t->n) { cp = ((c & 0x1f) << 6) | (t->p[i + 1] & 0x3f); i += 2; }
    else { PUT(c); i += 1; continue; }
    int b = -1;
    if (cp < 256 && byte_cp(cp) == cp) b = cp;
    else for (int x = 0; x < 256; x++) if (byte_cp(x) == cp) { b = x; break; }
    PUT(b >= 0 ? b : '?');
  }
#undef PUT
  return (int)k;
}

int eng_detokenize(const eng_model *m, const int32_t *ids, size_t n, char **out, size_t *len, kv_err *err) {
  kv_buf b = KV_BUF_INIT;
  char small[256];
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= m->vocab.n) {
      kv_buf_free(&b);
      return kv_err_set(err, KV_EINVAL, "eng_detokenize: token %zu = %d is out of range", i, ids[i]);
    }
    int l = eng_token_piece(m, ids[i], small, sizeof small);
    if ((size_t)l <= sizeof small) {
      (void)kv_buf_append(&b, small, (size_t)l);
      continue;
    }
    char *big = malloc((size_t)l); /* a piece longer than any real token: render it at its size */
    if (!big) {
      kv_buf_free(&b);
      return kv_err_set(err, KV_ENOMEM, "eng_detokenize: out of memory");
    }
    (void)kv_buf_append(&b, big, (size_t)eng_token_piece(m, ids[i], big, (size_t)l));
    free(big);
  }
  size_t k = b.len;
  if (!kv_buf_ok(&b) || !(*out = kv_buf_detach(&b, NULL))) {
    kv_buf_free(&b);
    return kv_err_set(err, KV_ENOMEM, "eng_detokenize: out of memory");
  }
  if (len) *len = k;
  return 0;
}

int32_t eng_token_bos(const eng_model *m) { return m->vocab.bos; }
int32_t eng_token_eos(const eng_model *m) { return m->vocab.eos; }
int eng_token_fim(const eng_model *m, int32_t *pre, int32_t *suf, int32_t *mid) {
  *pre = m->vocab.fim[0];
  *suf = m->vocab.fim[1];
  *mid = m->vocab.fim[2];
  return *pre >= 0 ? 0 : KV_ENOTFOUND;
}
int eng_n_vocab(const eng_model *m) { return m->vocab.n; }
int eng_token_is_eog(const eng_model *m, int32_t id) {
  return id >= 0 && (id == m->vocab.eos || id == m->vocab.eot);
}
