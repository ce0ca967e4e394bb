/*
 * yaml.c — turns one YAML document into a pol_yaml_node tree with 1-based
 * line:column marks so that config.c can name the exact place of every
 * schema error. Built on libyaml's event parser. Invariants: anchors are
 * ignored, aliases are refused (no billion-laughs expansion), nesting is
 * capped at TREE_MAX_DEPTH and the node count at TREE_MAX_NODES, so a hostile
 * file costs bounded memory and time; duplicate keys are an error; only the
 * first document is read.
 */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "policy/internal.h"

#define TREE_MAX_DEPTH 32
#define TREE_MAX_NODES 100000
#define TREE_MAX_BYTES (1u << 20)
#define TREE_MAX_KEYS 1024

void pol_yaml_free(pol_yaml_node *n) {
  if (!n) return;
  for (size_t i = 0; i < n->n; i++) pol_yaml_free(n->items[i]);
  free(n->items);
  free(n->value);
  free(n);
}

static int push_child(pol_yaml_node *parent, pol_yaml_node *child) {
  return KV_PUSH(parent->items, parent->n, parent->cap, child);
}

static pol_yaml_node *new_node(pol_yaml_type t, const yaml_event_t *ev) {
  pol_yaml_node *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->type = t;
  n->line = (int)ev->start_mark.line + 1;
  n->col = (int)ev->start_mark.column + 1;
  return n;
}

/* A mapping: at most TREE_MAX_KEYS pairs, no key twice (a repeated key would
 * silently override the first, which a policy file must never do). */
static int check_keys(const pol_yaml_node *map, const char *name, kv_err *err) {
  size_t pairs = map->n / 2;
  if (pairs > TREE_MAX_KEYS)
    return kv_err_set(err, KV_ELIMIT, "%s:%d:%d: more than %d keys in one mapping", name, map->line, map->col, TREE_MAX_KEYS);
  for (size_t i = 0; i < pairs; i++) {
    const pol_yaml_node *k = map->items[2 * i];
    if (k->type != POL_YAML_SCALAR) continue;
    for (size_t j = 0; j < i; j++) {
      const pol_yaml_node *e = map->items[2 * j];
      if (e->type == POL_YAML_SCALAR && !strcmp(e->value, k->value))
        return kv_err_set(err, KV_EFORMAT, "%s:%d:%d: duplicate key '%.64s' (first at line %d)", name, k->line, k->col,
                          k->value, e->line);
    }
  }
  return KV_OK;
}

int pol_yaml_parse(const char *buf, size_t len, const char *name, pol_yaml_node **root, kv_err *err) {
  *root = NULL;
  if (len > TREE_MAX_BYTES) return kv_err_set(err, KV_ELIMIT, "%s: larger than %u bytes", name, TREE_MAX_BYTES);
  yaml_parser_t ps;
  if (!yaml_parser_initialize(&ps)) return kv_err_set(err, KV_ENOMEM, "%s: yaml parser init failed", name);
  yaml_parser_set_input_string(&ps, (const unsigned char *)buf, len);
  pol_yaml_node *stack[TREE_MAX_DEPTH + 1];
  size_t depth = 0, nodes = 0;
  int rc = KV_OK, done = 0, docs = 0;
  pol_yaml_node *top = NULL;
  while (!done && rc == KV_OK) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&ps, &ev)) {
      rc = kv_err_set(err, KV_EFORMAT, "%s:%zu:%zu: %s%s%s", name, ps.problem_mark.line + 1, ps.problem_mark.column + 1,
                      ps.problem ? ps.problem : "syntax error", ps.context ? " " : "", ps.context ? ps.context : "");
      break;
    }
    pol_yaml_node *n = NULL;
    switch (ev.type) {
    case YAML_STREAM_END_EVENT: done = 1; break;
    case YAML_DOCUMENT_START_EVENT:
      if (++docs > 1) done = 1; /* only the first document */
      break;
    case YAML_DOCUMENT_END_EVENT: done = 1; break;
    case YAML_ALIAS_EVENT:
      rc = kv_err_set(err, KV_EFORMAT, "%s:%zu:%zu: aliases are not allowed", name, ev.start_mark.line + 1,
                      ev.start_mark.column + 1);
      break;
    case YAML_SCALAR_EVENT:
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
      if (++nodes > TREE_MAX_NODES) {
        rc = kv_err_set(err, KV_ELIMIT, "%s:%zu:%zu: more than %d nodes", name, ev.start_mark.line + 1,
                        ev.start_mark.column + 1, TREE_MAX_NODES);
        break;
      }
      n = new_node(ev.type == YAML_SCALAR_EVENT ? POL_YAML_SCALAR : ev.type == YAML_SEQUENCE_START_EVENT ? POL_YAML_SEQ : POL_YAML_MAP,
                   &ev);
      if (!n) { rc = kv_err_set(err, KV_ENOMEM, "%s: out of memory", name); break; }
      if (ev.type == YAML_SCALAR_EVENT) {
        n->value = malloc(ev.data.scalar.length + 1);
        if (!n->value) { pol_yaml_free(n); rc = kv_err_set(err, KV_ENOMEM, "%s: out of memory", name); break; }
        memcpy(n->value, ev.data.scalar.value, ev.data.scalar.length);
        n->value[ev.data.scalar.length] = 0;
        n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
      }
      if (depth == 0) {
        if (top) pol_yaml_free(top);
        top = n;
      } else if (push_child(stack[depth - 1], n) != 0) {
        pol_yaml_free(n);
        rc = kv_err_set(err, KV_ENOMEM, "%s: out of memory", name);
        break;
      }
      if (ev.type != YAML_SCALAR_EVENT) {
        if (depth >= TREE_MAX_DEPTH) {
          rc = kv_err_set(err, KV_ELIMIT, "%s:%zu:%zu: nested deeper than %d", name, ev.start_mark.line + 1,
                          ev.start_mark.column + 1, TREE_MAX_DEPTH);
          break;
        }
        stack[depth++] = n;
      }
      break;
    case YAML_MAPPING_END_EVENT:
      if (depth > 0 && (rc = check_keys(stack[depth - 1], name, err)) != KV_OK) break;
      /* fall through */
    case YAML_SEQUENCE_END_EVENT:
      if (depth > 0) depth--;
      break;
    default: break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&ps);
  if (rc != KV_OK) { pol_yaml_free(top); return rc; }
  *root = top;
  return KV_OK;
}
