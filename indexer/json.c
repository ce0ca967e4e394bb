/*
 * json.c — the indexer's results as JSON, written once for every caller
 * (the CLI's `kvasir index --json`, the daemon's repo.add / repo.sync).
 */
#include "internal.h"

#include <cjson/cJSON.h>

cJSON *idx_sync_stats_json(const idx_sync_stats *st) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddNumberToObject(o, "files", (double)st->files);
  cJSON_AddNumberToObject(o, "files_indexed", (double)st->files_indexed);
  cJSON_AddNumberToObject(o, "bytes_indexed", (double)st->bytes_indexed);
  cJSON_AddNumberToObject(o, "paths_changed", (double)st->paths_changed);
  cJSON_AddNumberToObject(o, "blobs_parsed", (double)st->blobs_parsed);
  cJSON_AddNumberToObject(o, "blobs_reused", (double)st->blobs_reused);
  cJSON_AddNumberToObject(o, "symbols", (double)st->symbols);
  cJSON_AddNumberToObject(o, "refs", (double)st->refs);
  cJSON_AddNumberToObject(o, "chunks", (double)st->chunks);
  cJSON_AddBoolToObject(o, "full_walk", st->full_walk);
  cJSON_AddBoolToObject(o, "head_moved", st->head_moved);
  cJSON_AddNumberToObject(o, "seconds", st->seconds);
  cJSON *sk = cJSON_AddObjectToObject(o, "skipped");
  for (int r = 1; r < IDX_SKIP__COUNT; r++)
    if (st->skipped[r]) cJSON_AddNumberToObject(sk, idx_skip_name(r), (double)st->skipped[r]);
  cJSON *no = cJSON_AddObjectToObject(o, "notes");
  for (int r = 1; r < IDX_NOTE__COUNT; r++)
    if (st->noted[r]) cJSON_AddNumberToObject(no, idx_note_name(r), (double)st->noted[r]);
  return o;
}
