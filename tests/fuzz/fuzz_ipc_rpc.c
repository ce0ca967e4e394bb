/*
 * fuzz_ipc_rpc.c — the msgpack-rpc decoder on arbitrary bytes. A message
 * that decodes is re-encoded and decoded again, and must come back equal
 * (the encoder and decoder agree on everything the decoder accepts).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kv_err e;
  ipc_msg m;
  if (ipc_msg_decode(data, size, &m, &e) == 0) {
    uint8_t *b = NULL;
    size_t n = 0;
    int rc;
    if (m.type == IPC_REQUEST) rc = ipc_encode_request(m.id, m.method, m.params, &b, &n, &e);
    else if (m.type == IPC_NOTIFY) rc = ipc_encode_notify(m.method, m.params, &b, &n, &e);
    else rc = ipc_encode_response(m.id, m.error, m.result, &b, &n, &e);
    if (rc == 0) {
      ipc_msg m2;
      if (ipc_msg_decode(b, n, &m2, &e) != 0) abort();
      if (m2.type != m.type || m2.id != m.id) abort();
      if (m.method && strcmp(m.method, m2.method)) abort();
      if (m.params && !cJSON_Compare(m.params, m2.params, 1)) abort();
      ipc_msg_clear(&m2);
      free(b);
    }
    ipc_msg_clear(&m);
  }
  cJSON *v;
  if (ipc_unpack_json(data, size, &v, &e) == 0) cJSON_Delete(v);
  return 0;
}
