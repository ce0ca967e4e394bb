/*
 * crypto.c — the per-user secret and the session: handshake + one
 * crypto_secretstream (XChaCha20-Poly1305) per direction. The message
 * layouts and derivations are specified in docs/protocol.md ("Handshake").
 *
 *   client -> server  HELLO  "KVh1" | version u8 | client_pk[32]          (37)
 *   server -> client  REPLY  "KVr1" | version u8 | server_pk[32]
 *                            | ss_header_s2c[24] | mac_s[32]              (93)
 *   client -> server  FINISH "KVf1" | ss_header_c2s[24] | mac_c[32]       (60)
 *
 *   th    = BLAKE2b-256("kvasir-hs-v1" | HELLO | server_pk)
 *   K_x   = BLAKE2b-256(key = secret, label_x | kx keys | th)
 *           for x in c2s, s2c, mac (crypto_kx gives c2s = client tx = server rx)
 *   mac_s = BLAKE2b-256(key = K_mac, "server" | th | ss_header_s2c)
 *   mac_c = BLAKE2b-256(key = K_mac, "client" | th | ss_header_s2c | ss_header_c2s)
 *
 * Invariants: ephemeral keys are wiped once the stream keys exist; a session
 * that saw one bad frame is dead (every later call fails), so a tampered
 * stream can never resynchronise; MACs are compared in constant time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "ipc/ipc.h"

#define HELLO_LEN 37
#define REPLY_LEN 93
#define FINISH_LEN 60
#define SS_HDR crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES

enum { ST_START, ST_SENT_HELLO, ST_SENT_REPLY, ST_READY, ST_DEAD };

struct ipc_session {
  int role, state;
  int peer_final;
  ipc_secret secret;
  uint8_t pk[crypto_kx_PUBLICKEYBYTES], sk[crypto_kx_SECRETKEYBYTES];
  uint8_t th[32], kmac[32], hdr_s2c[SS_HDR], hello[HELLO_LEN];
  crypto_secretstream_xchacha20poly1305_state tx, rx;
};

/* ---------------------------------------------------------------- secret */

int ipc_secret_load(ipc_secret *out, const char *path, int create, kv_err *err) {
  char def[4096];
  if (sodium_init() < 0) return kv_err_set(err, KV_ECRYPTO, "libsodium failed to initialise");
  if (!path) {
    if (ipc_secret_path(def, sizeof def)) return kv_err_set(err, KV_ELIMIT, "secret path too long");
    path = def;
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      char dir[4096];
      snprintf(dir, sizeof dir, "%s", path);
      char *slash = strrchr(dir, '/');
      if (slash && slash != dir) {
        *slash = 0;
        int rc = kv_mkdirs(dir, 0700, err);
        if (rc) return rc;
        chmod(dir, 0700);
      }
      int wfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (wfd < 0) {
        if (errno == EEXIST) continue; /* another process created it first */
        return kv_err_set(err, KV_EIO, "%s: cannot create: %s", path, strerror(errno));
      }
      uint8_t key[IPC_SECRET_BYTES];
      randombytes_buf(key, sizeof key);
      ssize_t w = write(wfd, key, sizeof key);
      int ok = w == (ssize_t)sizeof key && fsync(wfd) == 0;
      close(wfd);
      sodium_memzero(key, sizeof key);
      if (!ok) {
        unlink(path);
        return kv_err_set(err, KV_EIO, "%s: cannot write the secret", path);
      }
      continue;
    }
    if (fd < 0)
      return kv_err_set(err, errno == ENOENT ? KV_ENOTFOUND : KV_EIO, "%s: cannot open the secret: %s", path,
                        strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
      close(fd);
      return kv_err_set(err, KV_EIO, "%s: stat failed: %s", path, strerror(errno));
    }
    int rc = 0;
    if (!S_ISREG(st.st_mode))
      rc = kv_err_set(err, KV_ECRYPTO, "%s: the secret is not a regular file", path);
    else if (st.st_uid != getuid())
      rc = kv_err_set(err, KV_ECRYPTO, "%s: owned by uid %u, not by this user (%u)", path, (unsigned)st.st_uid,
                      (unsigned)getuid());
    else if (st.st_mode & 077)
      rc = kv_err_set(err, KV_ECRYPTO, "%s: mode %03o lets others read it; expected 0600 (chmod 600 it)", path,
                      (unsigned)(st.st_mode & 0777));
    else if (st.st_size != IPC_SECRET_BYTES)
      rc = kv_err_set(err, KV_ECRYPTO, "%s: size %lld bytes, expected %d", path, (long long)st.st_size,
                      IPC_SECRET_BYTES);
    if (!rc) {
      ssize_t r = read(fd, out->key, IPC_SECRET_BYTES);
      if (r != IPC_SECRET_BYTES) rc = kv_err_set(err, KV_EIO, "%s: short read of the secret", path);
    }
    close(fd);
    return rc;
  }
  return kv_err_set(err, KV_EIO, "%s: the secret vanished while being created", path);
}

/* --------------------------------------------------------------- session */

int ipc_session_new(ipc_session **out, int role, const ipc_secret *secret, kv_err *err) {
  if (sodium_init() < 0) return kv_err_set(err, KV_ECRYPTO, "libsodium failed to initialise");
  ipc_session *s = sodium_malloc(sizeof *s);
  if (!s) return kv_err_set(err, KV_ENOMEM, "ipc session: out of memory");
  memset(s, 0, sizeof *s);
  s->role = role;
  s->secret = *secret;
  crypto_kx_keypair(s->pk, s->sk);
  *out = s;
  return 0;
}

void ipc_session_free(ipc_session *s) {
  if (s) sodium_free(s); /* sodium_free wipes the memory */
}

int ipc_session_established(const ipc_session *s) { return s->state == ST_READY; }
int ipc_session_peer_closed(const ipc_session *s) { return s->peer_final; }

static void hash_keyed(uint8_t out[32], const uint8_t *key, const char *label, const uint8_t *a, size_t an,
                       const uint8_t *b, size_t bn, const uint8_t *c, size_t cn) {
  crypto_generichash_state h;
  crypto_generichash_init(&h, key, key ? 32 : 0, 32);
  crypto_generichash_update(&h, (const uint8_t *)label, strlen(label));
  if (an) crypto_generichash_update(&h, a, an);
  if (bn) crypto_generichash_update(&h, b, bn);
  if (cn) crypto_generichash_update(&h, c, cn);
  crypto_generichash_final(&h, out, 32);
}

/* Derives th, the stream keys and K_mac from the kx session keys. */
static void derive(ipc_session *s, const uint8_t *hello, const uint8_t *server_pk, const uint8_t *c2s,
                   const uint8_t *s2c, uint8_t kc2s[32], uint8_t ks2c[32]) {
  hash_keyed(s->th, NULL, "kvasir-hs-v1", hello, HELLO_LEN, server_pk, 32, NULL, 0);
  hash_keyed(kc2s, s->secret.key, "c2s", c2s, 32, s->th, 32, NULL, 0);
  hash_keyed(ks2c, s->secret.key, "s2c", s2c, 32, s->th, 32, NULL, 0);
  uint8_t both[64];
  memcpy(both, c2s, 32);
  memcpy(both + 32, s2c, 32);
  hash_keyed(s->kmac, s->secret.key, "mac", both, 64, s->th, 32, NULL, 0);
  sodium_memzero(both, sizeof both);
  sodium_memzero(s->sk, sizeof s->sk);
}

static int dead(ipc_session *s, int code, kv_err *err, const char *what) {
  s->state = ST_DEAD;
  return kv_err_set(err, code, "handshake: %s", what);
}

static int check_magic(const uint8_t *in, const char *magic, int with_version, ipc_session *s, kv_err *err) {
  if (memcmp(in, magic, 4) != 0) return dead(s, KV_EFORMAT, err, "bad magic at byte offset 0");
  if (with_version && in[4] != IPC_PROTOCOL_VERSION) {
    s->state = ST_DEAD;
    return kv_err_set(err, KV_EUNSUPPORTED, "handshake: protocol version %u at byte offset 4, expected %d", in[4],
                      IPC_PROTOCOL_VERSION);
  }
  return 0;
}

int ipc_session_step(ipc_session *s, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                     size_t *out_len, kv_err *err) {
  *out_len = 0;
  if (cap < IPC_HANDSHAKE_MAX) return kv_err_set(err, KV_EINVAL, "handshake: output buffer too small");
  uint8_t kx_rx[32], kx_tx[32], kc2s[32], ks2c[32];
  int rc = 0;
  if (s->role == IPC_CLIENT && s->state == ST_START) {
    memcpy(out, "KVh1", 4);
    out[4] = IPC_PROTOCOL_VERSION;
    memcpy(out + 5, s->pk, 32);
    memcpy(s->hello, out, HELLO_LEN); /* kept until the reply arrives */
    *out_len = HELLO_LEN;
    s->state = ST_SENT_HELLO;
    return IPC_HS_CONTINUE;
  }
  if (s->role == IPC_CLIENT && s->state == ST_SENT_HELLO) {
    if (!in || in_len != REPLY_LEN) return dead(s, KV_EFORMAT, err, "reply has the wrong length");
    if ((rc = check_magic(in, "KVr1", 1, s, err))) return rc;
    if (crypto_kx_client_session_keys(kx_rx, kx_tx, s->pk, s->sk, in + 5) != 0)
      return dead(s, KV_ECRYPTO, err, "bad server public key");
    derive(s, s->hello, in + 5, kx_tx, kx_rx, kc2s, ks2c);
    uint8_t mac[32];
    hash_keyed(mac, s->kmac, "server", s->th, 32, in + 37, SS_HDR, NULL, 0);
    if (sodium_memcmp(mac, in + 37 + SS_HDR, 32) != 0) {
      rc = dead(s, KV_ECRYPTO, err, "the daemon does not hold this user's secret (server MAC mismatch)");
      goto wipe;
    }
    if (crypto_secretstream_xchacha20poly1305_init_pull(&s->rx, in + 37, ks2c) != 0) {
      rc = dead(s, KV_ECRYPTO, err, "bad stream header from the server");
      goto wipe;
    }
    memcpy(out, "KVf1", 4);
    crypto_secretstream_xchacha20poly1305_init_push(&s->tx, out + 4, kc2s);
    hash_keyed(out + 4 + SS_HDR, s->kmac, "client", s->th, 32, in + 37, SS_HDR, out + 4, SS_HDR);
    *out_len = FINISH_LEN;
    s->state = ST_READY;
    rc = IPC_HS_DONE;
    goto wipe;
  }
  if (s->role == IPC_SERVER && s->state == ST_START) {
    if (!in || in_len != HELLO_LEN) return dead(s, KV_EFORMAT, err, "hello has the wrong length");
    if ((rc = check_magic(in, "KVh1", 1, s, err))) return rc;
    if (crypto_kx_server_session_keys(kx_rx, kx_tx, s->pk, s->sk, in + 5) != 0)
      return dead(s, KV_ECRYPTO, err, "bad client public key");
    derive(s, in, s->pk, kx_rx, kx_tx, kc2s, ks2c);
    memcpy(out, "KVr1", 4);
    out[4] = IPC_PROTOCOL_VERSION;
    memcpy(out + 5, s->pk, 32);
    crypto_secretstream_xchacha20poly1305_init_push(&s->tx, out + 37, ks2c);
    memcpy(s->hdr_s2c, out + 37, SS_HDR);
    hash_keyed(out + 37 + SS_HDR, s->kmac, "server", s->th, 32, s->hdr_s2c, SS_HDR, NULL, 0);
    /* Keep K_c2s for the FINISH step in the slot of the kx key we wiped. */
    memcpy(s->sk, kc2s, 32);
    *out_len = REPLY_LEN;
    s->state = ST_SENT_REPLY;
    rc = IPC_HS_CONTINUE;
    goto wipe;
  }
  if (s->role == IPC_SERVER && s->state == ST_SENT_REPLY) {
    if (!in || in_len != FINISH_LEN) return dead(s, KV_EFORMAT, err, "finish has the wrong length");
    if ((rc = check_magic(in, "KVf1", 0, s, err))) return rc;
    uint8_t mac[32];
    hash_keyed(mac, s->kmac, "client", s->th, 32, s->hdr_s2c, SS_HDR, in + 4, SS_HDR);
    if (sodium_memcmp(mac, in + 4 + SS_HDR, 32) != 0)
      return dead(s, KV_ECRYPTO, err, "the client does not hold this user's secret (client MAC mismatch)");
    if (crypto_secretstream_xchacha20poly1305_init_pull(&s->rx, in + 4, s->sk) != 0)
      return dead(s, KV_ECRYPTO, err, "bad stream header from the client");
    sodium_memzero(s->sk, sizeof s->sk);
    sodium_memzero(s->kmac, sizeof s->kmac);
    s->state = ST_READY;
    return IPC_HS_DONE;
  }
  return dead(s, KV_EINVAL, err, "step called in the wrong state");
wipe:
  sodium_memzero(kx_rx, sizeof kx_rx);
  sodium_memzero(kx_tx, sizeof kx_tx);
  sodium_memzero(kc2s, sizeof kc2s);
  sodium_memzero(ks2c, sizeof ks2c);
  return rc;
}

int ipc_session_seal(ipc_session *s, const uint8_t *m, size_t n, int final, uint8_t *out, size_t cap,
                     size_t *out_len, kv_err *err) {
  if (s->state != ST_READY) return kv_err_set(err, KV_EINVAL, "seal: session not established");
  if (n > IPC_MSG_MAX) return kv_err_set(err, KV_ELIMIT, "seal: message of %zu bytes exceeds %u", n, IPC_MSG_MAX);
  if (cap < n + SS_ABYTES) return kv_err_set(err, KV_EINVAL, "seal: output buffer too small");
  unsigned long long cl = 0;
  uint8_t tag = final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
  crypto_secretstream_xchacha20poly1305_push(&s->tx, out, &cl, m, n, NULL, 0, tag);
  *out_len = (size_t)cl;
  return 0;
}

int ipc_session_open(ipc_session *s, const uint8_t *c, size_t n, uint8_t *out, size_t cap, size_t *out_len,
                     int *final, kv_err *err) {
  *final = 0;
  if (s->state != ST_READY) return kv_err_set(err, KV_ECRYPTO, "open: session not established or broken");
  if (s->peer_final) {
    s->state = ST_DEAD;
    return kv_err_set(err, KV_ECRYPTO, "open: frame after the peer's final message");
  }
  if (n < SS_ABYTES) {
    s->state = ST_DEAD;
    return kv_err_set(err, KV_ECRYPTO, "open: frame of %zu bytes is shorter than the %d-byte tag", n, SS_ABYTES);
  }
  if (cap < n - SS_ABYTES) return kv_err_set(err, KV_EINVAL, "open: output buffer too small");
  unsigned long long ml = 0;
  uint8_t tag = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(&s->rx, out, &ml, &tag, c, n, NULL, 0) != 0) {
    s->state = ST_DEAD;
    return kv_err_set(err, KV_ECRYPTO, "open: authentication failed (tampered, replayed or reordered frame)");
  }
  if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
    s->peer_final = 1;
    *final = 1;
  }
  *out_len = (size_t)ml;
  return 0;
}
