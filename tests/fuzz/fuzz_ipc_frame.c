/*
 * fuzz_ipc_frame.c — the frame decoder and the server side of the handshake
 * on arbitrary bytes: the input is fed to an ipc_framer in pieces whose sizes
 * come from the input itself, and every frame that comes out is handed to a
 * server session as a handshake message (then, if one ever completed, as a
 * ciphertext). Nothing may crash, leak or overrun.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kv_err e;
  ipc_framer *f;
  if (size == 0) return 0;
  size_t chunk = (size_t)data[0] % 64 + 1;
  data++;
  size--;
  if (ipc_framer_new(&f, IPC_HANDSHAKE_MAX * 4, &e)) return 0;
  ipc_secret k;
  memset(k.key, 0x42, sizeof k.key);
  ipc_session *s;
  if (ipc_session_new(&s, IPC_SERVER, &k, &e)) {
    ipc_framer_free(f);
    return 0;
  }
  int done = 0, failed = 0;
  for (size_t off = 0; off < size && !failed; off += chunk) {
    size_t n = size - off < chunk ? size - off : chunk;
    if (ipc_framer_feed(f, data + off, n, &e)) break;
    const uint8_t *p;
    size_t len;
    int rc;
    while ((rc = ipc_framer_next(f, &p, &len, &e)) == 1) {
      uint8_t out[IPC_FRAME_MAX > 4096 ? 4096 : IPC_FRAME_MAX];
      size_t on;
      if (!done) {
        rc = ipc_session_step(s, p, len, out, sizeof out, &on, &e);
        if (rc < 0) failed = 1;
        if (rc == IPC_HS_DONE) done = 1;
      } else {
        int fin;
        if (len <= sizeof out + 17 && ipc_session_open(s, p, len, out, sizeof out, &on, &fin, &e)) failed = 1;
      }
      if (failed) break;
    }
    if (rc < 0) break;
  }
  (void)ipc_framer_pending(f);
  ipc_session_free(s);
  ipc_framer_free(f);
  return 0;
}
