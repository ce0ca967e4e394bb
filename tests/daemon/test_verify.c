/* test_verify.c — the answer verifier: invented names never reach the
 * output (not even a piece of one), true ones do, word by word as soon as
 * they are complete; a sentence cut at an invented name is marked;
 * repetition stops the text; code blocks stay whole, and with
 * require_quotes every line of one must be a line of the repository's
 * code. The "repository" is a fixed list of names (and code lines) here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/verify_internal.h"

static const char *const repo_names[] = {"kv_buf_append", "ipc_handshake_server", "dmn_server", "server.c",
                                         "ipc/crypto.c:40-88", "handshake", "crypto_kx_server_session_keys",
                                         "secret", NULL};
static const char *const repo_lines[] = {"kv_buf_append(&b, p, n);", "return dmn_server(secret);", NULL};
static int asked, quotes_asked;

static int known(void *ud, const char *tok, size_t n, int kind) {
  (void)ud;
  asked++;
  if (kind == DMN_TOK_QUOTE) {
    quotes_asked++;
    for (int i = 0; repo_lines[i]; i++)
      if (strlen(repo_lines[i]) == n && !memcmp(repo_lines[i], tok, n)) return 1;
    return 0;
  }
  for (int i = 0; repo_names[i]; i++)
    if (strlen(repo_names[i]) == n && !memcmp(repo_names[i], tok, n)) return 1;
  return 0;
}

static char *run(const char *text, size_t step, dmn_verify_stats *st, int *stopped) {
  dmn_verifier v;
  dmn_verifier_init(&v, known, NULL);
  kv_buf out = KV_BUF_INIT;
  *stopped = 0;
  size_t n = strlen(text);
  for (size_t i = 0; i < n && !*stopped; i += step) {
    size_t k = i + step > n ? n - i : step;
    int rc = dmn_verifier_feed(&v, text + i, k, &out);
    assert_true(rc >= 0);
    if (rc == 1) *stopped = 1;
  }
  assert_int_equal(dmn_verifier_finish(&v, &out), 0);
  *st = v.st;
  dmn_verifier_free(&v);
  return kv_buf_detach(&out, NULL);
}

static char *feed_pieces(const char *const *pieces, int anchor, const char *const *never, dmn_verify_stats *st,
                         char **after);

static void count_tok(void *ud, const char *tok, size_t n, int kind) {
  (void)ud;
  (void)tok;
  (void)n;
  (void)kind;
}

static void test_tokens(void **s) {
  (void)s;
  struct { const char *text; int n; } cases[] = {
      {"plain prose with no code at all.", 0},
      {"the `ItemView` and a snake_case and camelCase word", 3},
      {"calls open( and Close() here", 2},
      {"see ipc/crypto.c:40-88 and server.c:12.", 2},
      {"e.g. this, i.e. that", 0},
      {"`a.b->c` then `x + y_z`", 2}, /* one-letter names are not checked */
      {"call .parseArgs() or .opts here", 1}, /* a method named alone, after its dot */
      {"and so on... Then", 0},
      {"see server.c:12FakeThing( now", 2}, /* glued to a location */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int n = dmn_code_tokens(cases[i].text, strlen(cases[i].text), count_tok, NULL);
    if (n != cases[i].n) fail_msg("'%s': %d tokens, expected %d", cases[i].text, n, cases[i].n);
  }
}

static void test_drops_invented(void **s) {
  (void)s;
  const char *text =
      "The daemon checks the peer in `ipc_handshake_server`. It uses a custom `Dispatchable` type. "
      "Keys come from crypto_kx_server_session_keys (see ipc/crypto.c:40-88).\n"
      "Then getItemView() returns the view.\n";
  for (size_t step = 1; step <= 7; step += 3) {
    dmn_verify_stats st;
    int stopped;
    char *out = run(text, step, &st, &stopped);
    assert_false(stopped);
    assert_non_null(strstr(out, "`ipc_handshake_server`"));
    assert_non_null(strstr(out, "ipc/crypto.c:40-88"));
    assert_null(strstr(out, "Dispatchable"));
    assert_null(strstr(out, "getItem"));
    assert_null(strstr(out, " type.")); /* nothing after the invented name */
    /* the words before it may be out already, then the cut is marked */
    const char *c = strstr(out, "custom");
    if (c) assert_memory_equal(c + 6, DMN_VERIFY_CUT, strlen(DMN_VERIFY_CUT));
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.cut, (c != NULL) + (strstr(out, "Then") != NULL));
    assert_int_equal(st.sentences, 4);
    free(out);
  }
}

static void test_wrong_location_dropped(void **s) {
  (void)s;
  dmn_verify_stats st;
  int stopped;
  char *out = run("It is in server.c:9999 somewhere. The secret is mixed in.", 5, &st, &stopped);
  assert_null(strstr(out, "9999"));
  assert_non_null(strstr(out, "The secret is mixed in."));
  assert_int_equal(st.dropped, 1);
  free(out);
}

static void test_repetition_stops(void **s) {
  (void)s;
  const char *text =
      "The handshake runs first. The above code can also be simplified. The above code can also be simplified. "
      "The above code can also be simplified. More.";
  dmn_verify_stats st;
  int stopped;
  char *out = run(text, 4, &st, &stopped);
  assert_true(stopped);
  assert_true(st.repeated);
  const char *first = strstr(out, "simplified");
  assert_non_null(first);
  assert_null(strstr(first + 1, "simplified")); /* shown once */
  assert_null(strstr(out, "More"));
  free(out);
  /* a run-on unit that loops without a sentence end */
  kv_buf loop = KV_BUF_INIT;
  for (int i = 0; i < 40; i++) kv_buf_puts(&loop, "and then it goes round again ");
  out = run(loop.data, 9, &st, &stopped);
  assert_true(stopped);
  const char *once = strstr(out, "round again");
  assert_true(once == NULL || strstr(once + 1, "round again") == NULL); /* a loop is shown at most once */
  assert_true(strlen(out) < 2 * 29);
  free(out);
  kv_buf_free(&loop);
}

static void test_code_block_judged(void **s) {
  (void)s;
  const char *text = "Like this:\n```c\nkv_buf_append(&b, p, n);\n```\nAnd:\n```c\nmade_up_call(x);\n```\nDone.";
  dmn_verify_stats st;
  int stopped;
  char *out = run(text, 3, &st, &stopped);
  assert_non_null(strstr(out, "```c\nkv_buf_append(&b, p, n);\n```\n"));
  assert_null(strstr(out, "made_up_call"));
  assert_non_null(strstr(out, "Done."));
  free(out);
}

/* A code block goes line by line, each line once complete and checked; a
 * line naming unknown code ends it: the block is closed, then marked. */
static void test_code_block_lines(void **s) {
  (void)s;
  const char *const pieces[] = {"```c\n", "kv_buf_app", "end(&b, p, n);", "\n", "made_up_call(x);\n",
                                "more(y);\n```\n", "Done. ", NULL};
  char *after[7];
  const char *const never[] = {"made_up", "more(", NULL};
  dmn_verify_stats st;
  char *out = feed_pieces(pieces, 0, never, &st, after);
  assert_string_equal(after[0], "");           /* the fence alone is not shown */
  assert_string_equal(after[2], "");           /* nor a line before it ends */
  assert_string_equal(after[3], "```c\nkv_buf_append(&b, p, n);\n");
  assert_string_equal(after[4], "```c\nkv_buf_append(&b, p, n);\n" DMN_VERIFY_CUT_BLOCK);
  assert_string_equal(out, "```c\nkv_buf_append(&b, p, n);\n" DMN_VERIFY_CUT_BLOCK "\nDone. ");
  assert_int_equal(st.cut, 1);
  assert_int_equal(st.dropped, 1);
  for (int i = 0; i < 7; i++) free(after[i]);
  free(out);
}

/* The text fed in `step`-byte pieces to a verifier with require_quotes =
 * quotes; its output (malloc'd) and stats. */
static char *run_quotes(const char *text, size_t step, int quotes, dmn_verify_stats *st) {
  dmn_verifier v;
  dmn_verifier_init(&v, known, NULL);
  v.require_quotes = quotes;
  kv_buf out = KV_BUF_INIT;
  for (size_t i = 0, n = strlen(text); i < n; i += step)
    assert_true(dmn_verifier_feed(&v, text + i, n - i < step ? n - i : step, &out) >= 0);
  assert_int_equal(dmn_verifier_finish(&v, &out), 0);
  *st = v.st;
  dmn_verifier_free(&v);
  return kv_buf_detach(&out, NULL);
}

/* With require_quotes a block shows only lines the repository holds
 * (indentation aside): a line made of known names in a new order is cut
 * like an invented name; without it only the names are judged. */
static void test_code_block_quotes(void **s) {
  (void)s;
  const char *text = "See:\n```c\n    kv_buf_append(&b, p, n);\nreturn dmn_server(secret);\n```\n"
                     "And:\n```c\nkv_buf_append(&b, p, n);\nreturn kv_buf_append(secret);\n}\n```\nDone.";
  for (int quotes = 0; quotes < 2; quotes++) {
    dmn_verify_stats st;
    quotes_asked = 0;
    char *o = run_quotes(text, 5, quotes, &st);
    assert_non_null(strstr(o, "```c\n    kv_buf_append(&b, p, n);\nreturn dmn_server(secret);\n```\n"));
    assert_non_null(strstr(o, "Done."));
    if (quotes) {
      /* the second block: its first line holds, the made-up one is cut */
      assert_non_null(strstr(o, "```c\nkv_buf_append(&b, p, n);\n" DMN_VERIFY_CUT_BLOCK));
      assert_null(strstr(o, "return kv_buf_append(secret)"));
      assert_int_equal(st.cut, 1);
      assert_int_equal(quotes_asked, 3); /* the repeated line is asked once; after the cut, nothing */
    } else {
      assert_non_null(strstr(o, "return kv_buf_append(secret);\n}\n```"));
      assert_int_equal(quotes_asked, 0);
    }
    free(o);
  }
}

/* Fences indented up to three spaces (a block inside a list item) and ~~~
 * fences are blocks too, and their lines are quotes to check; a comment
 * line (an elision `// ...`) is the writer's own and is not. */
static void test_code_block_fences(void **s) {
  (void)s;
  const char *text = "1. Call it:\n   ~~~c\n   // ... set up b first\n   kv_buf_append(&b, p, n);\n"
                     "   return kv_buf_append(secret);\n   ~~~\nDone.";
  dmn_verify_stats st;
  quotes_asked = 0;
  char *o = run_quotes(text, 7, 1, &st);
  assert_non_null(strstr(o, "   ~~~c\n   // ... set up b first\n   kv_buf_append(&b, p, n);\n"));
  assert_null(strstr(o, "return kv_buf_append(secret)"));
  /* the cut block is closed by its own fence, indentation and all */
  char want[256];
  snprintf(want, sizeof want, "kv_buf_append(&b, p, n);\n   ~~~%s", DMN_VERIFY_CUT_BLOCK + 3);
  assert_non_null(strstr(o, want));
  assert_int_equal(st.cut, 1);
  assert_int_equal(quotes_asked, 2); /* not the comment, nothing after the cut */
  assert_non_null(strstr(o, "Done."));
  free(o);
}

static void test_anchor(void **s) {
  (void)s;
  dmn_verifier v;
  dmn_verifier_init(&v, known, NULL);
  v.require_anchor = 1;
  kv_buf out = KV_BUF_INIT;
  const char *t = "The server checks the MAC address of the client. It calls `ipc_handshake_server` first.\n";
  assert_true(dmn_verifier_feed(&v, t, strlen(t), &out) >= 0);
  dmn_verifier_finish(&v, &out);
  assert_null(strstr(kv_buf_str(&out), "MAC address"));
  assert_non_null(strstr(kv_buf_str(&out), "It calls `ipc_handshake_server` first."));
  assert_int_equal(v.st.unanchored, 1);
  assert_int_equal(v.st.dropped, 1);
  dmn_verifier_free(&v);
  kv_buf_free(&out);
}

static void test_known_asked_once(void **s) {
  (void)s;
  asked = 0;
  dmn_verify_stats st;
  int stopped;
  char *out = run("One `dmn_server` here. Two `dmn_server` there. Three `dmn_server` again.", 6, &st, &stopped);
  assert_int_equal(asked, 1);
  assert_int_equal(st.tokens, 3);
  free(out);
}

/* Feeds the pieces one by one; after each, what is out is checked against
 * the texts that must never appear; returns the final output. */
static char *feed_pieces(const char *const *pieces, int anchor, const char *const *never, dmn_verify_stats *st,
                         char **after /* out after each piece, or NULL */) {
  dmn_verifier v;
  dmn_verifier_init(&v, known, NULL);
  v.require_anchor = anchor;
  kv_buf out = KV_BUF_INIT;
  for (int i = 0; pieces[i]; i++) {
    assert_true(dmn_verifier_feed(&v, pieces[i], strlen(pieces[i]), &out) >= 0);
    for (int k = 0; never && never[k]; k++)
      if (strstr(kv_buf_str(&out), never[k])) fail_msg("'%s' out after piece %d: '%s'", never[k], i, kv_buf_str(&out));
    if (after) after[i] = strdup(kv_buf_str(&out));
  }
  assert_int_equal(dmn_verifier_finish(&v, &out), 0);
  for (int k = 0; never && never[k]; k++) assert_null(strstr(kv_buf_str(&out), never[k]));
  *st = v.st;
  dmn_verifier_free(&v);
  return kv_buf_detach(&out, NULL);
}

/* Words leave as soon as the next white space shows they are complete; a
 * name split across pieces leaves whole, once it is complete and known. */
static void test_word_release(void **s) {
  (void)s;
  const char *const pieces[] = {" It", " appends", " with", " `kv", "_buf", "_app", "end`", " and", " then",
                                " kv_buf", "_append", "(", "b", ")", " again", ".", " Done", NULL};
  char *after[17];
  dmn_verify_stats st;
  char *out = feed_pieces(pieces, 0, NULL, &st, after);
  assert_string_equal(after[0], "");            /* " It": not known to be a whole word yet */
  assert_string_equal(after[1], " It");          /* the space before "appends" ends it */
  assert_string_equal(after[3], " It appends with");
  assert_string_equal(after[6], " It appends with"); /* the span is shut but not followed yet */
  assert_string_equal(after[7], " It appends with `kv_buf_append`");
  assert_string_equal(after[9], " It appends with `kv_buf_append` and then");
  assert_string_equal(after[12], " It appends with `kv_buf_append` and then"); /* kv_buf_append(b: a call, open */
  assert_string_equal(after[14], " It appends with `kv_buf_append` and then kv_buf_append(b)");
  /* "again." may still become the chain "again.x": held */
  assert_string_equal(after[15], " It appends with `kv_buf_append` and then kv_buf_append(b)");
  assert_string_equal(after[16], " It appends with `kv_buf_append` and then kv_buf_append(b) again. "); /* the unit is whole */
  assert_string_equal(out, " It appends with `kv_buf_append` and then kv_buf_append(b) again. Done");
  assert_int_equal(st.cut, 0);
  assert_int_equal(st.dropped, 0);
  assert_int_equal(st.tokens, 2); /* each token judged once, though the unit was looked at 17 times */
  for (int i = 0; i < 17; i++) free(after[i]);
  free(out);
}

/* An invented name is never out, not a piece of it, however it is split;
 * what was out before it is followed by the cut mark, and the rest of its
 * sentence never comes; the next sentence is judged on its own. */
static void test_invented_never_out(void **s) {
  (void)s;
  const char *text = "The loop calls kv_buf_appendx to grow the buffer. Then `dmn_server` runs.";
  const char *const never[] = {"kv_buf", "appendx", "grow the", NULL};
  size_t n = strlen(text);
  for (size_t cut1 = 1; cut1 < n; cut1 += 2)
    for (size_t cut2 = cut1 + 1; cut2 < n; cut2 += 5) {
      char *a = strndup(text, cut1), *b = strndup(text + cut1, cut2 - cut1), *c = strdup(text + cut2);
      const char *const pieces[] = {a, b, c, NULL};
      dmn_verify_stats st;
      char *out = feed_pieces(pieces, 0, never, &st, NULL);
      const char *mark = strstr(out, DMN_VERIFY_CUT);
      /* either the sentence went whole (judged complete) or its start, then the mark */
      if (mark) {
        assert_true(!strncmp(out, "The loop calls", (size_t)(mark - out)));
        assert_int_equal(st.cut, 1);
      } else {
        assert_int_equal(st.cut, 0);
      }
      assert_non_null(strstr(out, "Then `dmn_server` runs."));
      assert_int_equal(st.dropped, 1);
      assert_int_equal(st.unknown, 1);
      free(out);
      free(a);
      free(b);
      free(c);
    }
}

/* With an anchor required, prose waits for the unit's first known name and
 * then leaves with it; words after it leave one by one. */
static void test_anchor_words(void **s) {
  (void)s;
  const char *const pieces[] = {"It", " calls", " the", " `ipc_handshake_server`", " first", " and", " stops",
                                ". No", " code", " here", " at", " all.", NULL};
  char *after[12];
  const char *const never[] = {"No code", NULL};
  dmn_verify_stats st;
  char *out = feed_pieces(pieces, 1, never, &st, after);
  assert_string_equal(after[3], ""); /* no name yet: held */
  assert_string_equal(after[4], "It calls the `ipc_handshake_server`");
  assert_string_equal(after[5], "It calls the `ipc_handshake_server` first");
  assert_string_equal(out, "It calls the `ipc_handshake_server` first and stops. ");
  assert_int_equal(st.unanchored, 1);
  for (int i = 0; i < 12; i++) free(after[i]);
  free(out);
}

/* A unit is held while it says again what was shown; a repeat never shows. */
static void test_repeat_held(void **s) {
  (void)s;
  const char *const pieces[] = {"See `dmn_server` for the loop.", " See", " `dmn_server`", " for", " the", " loop.",
                                " More", NULL};
  const char *const never[] = {"loop. See", NULL};
  dmn_verify_stats st;
  char *out = feed_pieces(pieces, 0, never, &st, NULL);
  assert_string_equal(out, "See `dmn_server` for the loop. ");
  assert_true(st.repeated);
  free(out);
}

/* Random text from a fixed vocabulary (known and invented names, spans,
 * calls, locations, sentence and line ends, fences; a third of the words
 * glued to the next), fed in random pieces: no invented name is ever out,
 * whatever the split, not even for a moment. */
static void test_random_splits(void **s) {
  (void)s;
  static const char *const words[] = {"the", "server", "`dmn_server`", "kv_buf_append(", ")", "`made_up_fn`",
                                      "made_up_fn", "FakeThing(", "ghost.c:12", "server.c:9999", "ipc/crypto.c:40-88",
                                      "`kv_buf_append`", ".", ". ", "\n", "`", "``", "```", ",", "handshake", "e.g.",
                                      "`ghostName`", "secret", ".fakeMethod()"};
  unsigned r = 12345;
  for (int round = 0; round < 400; round++) {
    kv_buf text = KV_BUF_INIT;
    int nw = 5 + (int)((r = r * 1103515245u + 12345u) >> 16) % 40;
    for (int w = 0; w < nw; w++) {
      r = r * 1103515245u + 12345u;
      kv_buf_puts(&text, words[(r >> 16) % (sizeof words / sizeof words[0])]);
      if ((r >> 8) % 3) kv_buf_putc(&text, ' ');
    }
    const char *const never[] = {"made_up", "FakeThing", "ghost", "9999", "fakeMethod", NULL};
    dmn_verify_stats st;
    const char *pieces[64];
    char *owned[64];
    size_t np = 0, off = 0;
    while (off < text.len && np < 63) {
      r = r * 1103515245u + 12345u;
      size_t k = 1 + (r >> 16) % 9;
      if (off + k > text.len || np == 62) k = text.len - off;
      owned[np] = strndup(text.data + off, k);
      pieces[np] = owned[np];
      np++;
      off += k;
    }
    pieces[np] = NULL;
    char *out = feed_pieces(pieces, round % 2, never, &st, NULL);
    free(out);
    for (size_t i = 0; i < np; i++) free(owned[i]);
    kv_buf_free(&text);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tokens),           cmocka_unit_test(test_drops_invented),
      cmocka_unit_test(test_wrong_location_dropped), cmocka_unit_test(test_repetition_stops),
      cmocka_unit_test(test_code_block_judged), cmocka_unit_test(test_known_asked_once),
      cmocka_unit_test(test_anchor),           cmocka_unit_test(test_word_release),
      cmocka_unit_test(test_invented_never_out), cmocka_unit_test(test_anchor_words),
      cmocka_unit_test(test_repeat_held),      cmocka_unit_test(test_random_splits),
      cmocka_unit_test(test_code_block_lines), cmocka_unit_test(test_code_block_quotes),
      cmocka_unit_test(test_code_block_fences),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
