/*
 * wordpiece.c — BERT's tokenizer (tokenizer.ggml.model "bert"), as the
 * Hugging Face `tokenizers` BertNormalizer + BertPreTokenizer + WordPiece
 * of an uncased model compute it:
 *  - clean: U+0000, U+FFFD (and invalid UTF-8, read as U+FFFD) and control
 *    characters are dropped, every whitespace becomes a space;
 *  - CJK ideographs are surrounded by spaces;
 *  - accents stripped (NFD, then non-spacing marks dropped) and lower-cased;
 *  - words split at whitespace, every punctuation character its own word;
 *  - each word (100 characters at most, else [UNK]) cut greedily into the
 *    longest vocabulary pieces, continuation pieces spelled "##…"; a word
 *    with a part no piece matches is one [UNK];
 *  - [CLS] … [SEP] around the result when special tokens are asked for.
 * Unicode coverage is a table, not the full database: decomposition and
 * case cover Latin-1, Latin Extended-A, Greek and Cyrillic (and Hangul
 * syllables, whose NFD is arithmetic); punctuation is
 * ASCII's plus the Latin-1, General Punctuation, CJK and full-width
 * punctuation blocks. Text outside those blocks passes through as is, which
 * is what the full tables do for most of it (tests/engine/test_eng_bert
 * holds it to `tokenizers`). Output is bounded by the caller's capacity.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

/* Next code point of s[*i..n) (invalid UTF-8: U+FFFD, one byte consumed). */
static uint32_t next_cp(const unsigned char *s, size_t n, size_t *i) {
  uint32_t c = s[*i];
  size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
  if (!k || *i + k > n) { (*i)++; return 0xfffd; }
  if (k == 1) { (*i)++; return c; }
  c &= 0x7f >> k;
  for (size_t j = 1; j < k; j++) {
    if ((s[*i + j] & 0xc0) != 0x80) { (*i)++; return 0xfffd; }
    c = c << 6 | (s[*i + j] & 0x3f);
  }
  static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (c < min[k] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) { (*i)++; return 0xfffd; }
  *i += k;
  return c;
}

static size_t put_utf8(char *o, uint32_t c) {
  if (c < 0x80) { o[0] = (char)c; return 1; }
  if (c < 0x800) { o[0] = (char)(0xc0 | c >> 6); o[1] = (char)(0x80 | (c & 0x3f)); return 2; }
  if (c < 0x10000) {
    o[0] = (char)(0xe0 | c >> 12); o[1] = (char)(0x80 | ((c >> 6) & 0x3f)); o[2] = (char)(0x80 | (c & 0x3f));
    return 3;
  }
  o[0] = (char)(0xf0 | c >> 18); o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((c >> 6) & 0x3f)); o[3] = (char)(0x80 | (c & 0x3f));
  return 4;
}

static int is_ws(uint32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
         c == 0x202f || c == 0x205f || c == 0x3000;
}
/* Cc and Cf, less the whitespace controls. */
static int is_control(uint32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return 0;
  return c < 0x20 || (c >= 0x7f && c < 0xa0) || c == 0xad || (c >= 0x200b && c <= 0x200f) ||
         (c >= 0x202a && c <= 0x202e) || (c >= 0x2060 && c <= 0x2064) || c == 0xfeff;
}
static int is_punct(uint32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return 1;
  return c == 0xa1 || c == 0xa7 || c == 0xab || c == 0xb6 || c == 0xb7 || c == 0xbb || c == 0xbf ||
         (c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205e) || (c >= 0x3001 && c <= 0x3003) ||
         (c >= 0x3008 && c <= 0x3011) || (c >= 0x3014 && c <= 0x301f) || (c >= 0xff01 && c <= 0xff0f && c != 0xff04 &&
         c != 0xff0b) || (c >= 0xff1a && c <= 0xff20 && c != 0xff1c && c != 0xff1d && c != 0xff1e);
}
static int is_cjk(uint32_t c) {
  return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x20000 && c <= 0x2a6df) ||
         (c >= 0x2a700 && c <= 0x2b73f) || (c >= 0x2b740 && c <= 0x2b81f) || (c >= 0x2b820 && c <= 0x2ceaf) ||
         (c >= 0xf900 && c <= 0xfaff) || (c >= 0x2f800 && c <= 0x2fa1f);
}

/* Base letters of U+00C0..U+017F after NFD (0: keep the character). */
static const char LATIN[] =
    "AAAAAA\0CEEEEIIII" "\0NOOOOO\0\0UUUUY\0\0" "aaaaaa\0ceeeeiiii" "\0nooooo\0\0uuuuy\0y"
    "AaAaAaCcCcCcCcDd" "\0\0EeEeEeEeEeGgGg" "GgGgHh\0\0IiIiIiIi" "I\0\0\0JjKk\0LlLlLl\0"
    "\0\0\0NnNnNn\0\0\0OoOo" "Oo\0\0RrRrRrSsSsSs" "SsTtTt\0\0UuUuUuUu" "UuUuWwYyYZzZzZz\0";
/* Greek and Cyrillic letters whose NFD has a mark: their base, lower-cased
 * (generated from Python's unicodedata). */
static const uint16_t GRCY[][2] = {
    {0x385, 0xa8}, {0x386, 0x3b1}, {0x388, 0x3b5}, {0x389, 0x3b7}, {0x38a, 0x3b9}, {0x38c, 0x3bf}, {0x38e, 0x3c5},
    {0x38f, 0x3c9}, {0x390, 0x3b9}, {0x3aa, 0x3b9}, {0x3ab, 0x3c5}, {0x3ac, 0x3b1}, {0x3ad, 0x3b5}, {0x3ae, 0x3b7},
    {0x3af, 0x3b9}, {0x3b0, 0x3c5}, {0x3ca, 0x3b9}, {0x3cb, 0x3c5}, {0x3cc, 0x3bf}, {0x3cd, 0x3c5}, {0x3ce, 0x3c9},
    {0x3d3, 0x3d2}, {0x3d4, 0x3d2}, {0x400, 0x435}, {0x401, 0x435}, {0x403, 0x433}, {0x407, 0x456}, {0x40c, 0x43a},
    {0x40d, 0x438}, {0x40e, 0x443}, {0x419, 0x438}, {0x439, 0x438}, {0x450, 0x435}, {0x451, 0x435}, {0x453, 0x433},
    {0x457, 0x456}, {0x45c, 0x43a}, {0x45d, 0x438}, {0x45e, 0x443}};

/* NFD's base (accents stripped) then lower case, for the blocks the table covers. */
static uint32_t fold(uint32_t c) {
  if (c >= 0xc0 && c <= 0x17f && LATIN[c - 0xc0]) c = (unsigned char)LATIN[c - 0xc0];
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xc0 && c <= 0xde && c != 0xd7)) return c + 32;
  if (c >= 0x100 && c <= 0x17f) {
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return c & 1 ? c + 1 : c;
    if (c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17f) return c & 1 ? c : c + 1;
    return c;
  }
  if (c >= 0x385 && c <= 0x45e)
    for (size_t i = 0; i < sizeof GRCY / sizeof *GRCY; i++)
      if (GRCY[i][0] == c) return GRCY[i][1];
  if (c >= 0x391 && c <= 0x3ab && c != 0x3a2) return c + 32;
  if (c >= 0x400 && c <= 0x40f) return c + 80;
  if (c >= 0x410 && c <= 0x42f) return c + 32;
  return c;
}
static int is_mark(uint32_t c) { return (c >= 0x300 && c <= 0x36f); }

typedef struct wp_out {
  int32_t *ids;
  size_t cap, n;
} wp_out;
static void wp_emit(wp_out *o, int32_t id) {
  if (o->n < o->cap) o->ids[o->n] = id;
  o->n++;
}

/* One word (UTF-8 in w, nc code points) into pieces; buf holds 2 + n bytes. */
static void wp_word(const eng_vocab *v, const char *w, size_t n, size_t nc, char *buf, wp_out *o) {
  if (nc > 100) { wp_emit(o, v->unk); return; }
  size_t n0 = o->n;
  for (size_t start = 0; start < n;) {
    size_t end = n;
    int32_t id = -1;
    while (end > start) {
      size_t k = 0;
      if (start > 0) buf[k++] = '#', buf[k++] = '#';
      memcpy(buf + k, w + start, end - start);
      if ((id = eng_vocab_find(v, buf, k + end - start)) >= 0) break;
      do end--; while (end > start && ((unsigned char)w[end] & 0xc0) == 0x80);
    }
    if (id < 0) { o->n = n0; wp_emit(o, v->unk); return; }
    wp_emit(o, id);
    start = end;
  }
}

int eng__wpm_tokenize(const eng_vocab *v, const char *text, size_t len, int add_special, int32_t *out,
                      size_t cap, size_t *n_out, kv_err *err) {
  wp_out o = {out, cap, 0};
  /* normalized text: at most 3 bytes out per input byte (a space either side;
   * a 3-byte Hangul syllable becomes 3 jamo of 3 bytes) */
  char *t = malloc(3 * len + 1), *buf = malloc(len + 3);
  if (!t || !buf) {
    free(t);
    free(buf);
    return kv_err_set(err, KV_ENOMEM, "eng_tokenize: out of memory");
  }
  size_t tn = 0;
  for (size_t i = 0; i < len;) {
    uint32_t c = next_cp((const unsigned char *)text, len, &i);
    if (c == 0 || c == 0xfffd || is_control(c)) continue;
    if (is_ws(c)) { t[tn++] = ' '; continue; }
    if (c >= 0xac00 && c <= 0xd7a3) { /* Hangul syllables: NFD is arithmetic (L V [T] jamo) */
      const uint32_t S = c - 0xac00;
      tn += put_utf8(t + tn, 0x1100 + S / 588);
      tn += put_utf8(t + tn, 0x1161 + (S % 588) / 28);
      if (S % 28) tn += put_utf8(t + tn, 0x11a7 + S % 28);
      continue;
    }
    c = fold(c);
    if (is_mark(c)) continue;
    if (is_cjk(c) || is_punct(c)) {
      t[tn++] = ' ';
      tn += put_utf8(t + tn, c);
      t[tn++] = ' ';
    } else tn += put_utf8(t + tn, c);
  }
  if (add_special && v->cls >= 0) wp_emit(&o, v->cls);
  for (size_t i = 0; i < tn;) {
    while (i < tn && t[i] == ' ') i++;
    size_t a = i, nc = 0;
    while (i < tn && t[i] != ' ') {
      if (((unsigned char)t[i] & 0xc0) != 0x80) nc++;
      i++;
    }
    if (i > a) wp_word(v, t + a, i - a, nc, buf, &o);
  }
  if (add_special && v->sep >= 0) wp_emit(&o, v->sep);
  free(t);
  free(buf);
  *n_out = o.n;
  if (o.n > cap) return kv_err_set(err, KV_ELIMIT, "eng_tokenize: %zu tokens do not fit in %zu", o.n, cap);
  return 0;
}
