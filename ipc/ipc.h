/*
 * ipc — the kvasir wire protocol (version IPC_PROTOCOL_VERSION, specified in
 * docs/protocol.md), shared by the daemon, the CLI, the editor bridge and the
 * tests. Prefix: ipc_.
 *
 * Three layers, each usable on its own:
 *   frames   4-byte big-endian length + payload, with a hard size cap
 *            (ipc_framer: an incremental decoder fed from a socket);
 *   session  the handshake (ephemeral X25519 via crypto_kx, mixed with the
 *            per-user secret in $XDG_CONFIG_HOME/kvasir/keys/secret) and
 *            then one crypto_secretstream per direction;
 *   rpc      msgpack-rpc messages ([0,id,method,params], [1,id,error,result],
 *            [2,method,params]) converted to and from cJSON trees so callers
 *            never touch msgpack objects.
 * On top of them, a blocking client (ipc_client) that connects, handshakes,
 * calls methods and streams notifications.
 *
 * Invariants: every byte from outside is bounds-checked; a decoder error
 * names the field or byte offset and never crashes; nothing here keeps
 * global state.
 */
#ifndef KVASIR_IPC_H
#define KVASIR_IPC_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IPC_PROTOCOL_VERSION 1
/* Largest frame payload accepted once the session is established. */
#define IPC_FRAME_MAX (8u << 20)
/* Largest frame accepted before the handshake completes. */
#define IPC_HANDSHAKE_MAX 256u
/* Largest plaintext message (frame minus the secretstream overhead). */
#define IPC_MSG_MAX (IPC_FRAME_MAX - 17u)
#define IPC_SECRET_BYTES 32

const char *ipc_version(void);

/* Default paths: "$XDG_RUNTIME_DIR/kvasir/kvasird.sock" and
 * "$XDG_CONFIG_HOME/kvasir/keys/secret". Return 0 or KV_ELIMIT. */
int ipc_socket_path(char *buf, size_t n);
int ipc_secret_path(char *buf, size_t n);

/* ---------------------------------------------------------------- frames */

/* Writes the 4-byte big-endian length header of a frame. */
void ipc_frame_header(uint8_t hdr[4], uint32_t len);

typedef struct ipc_framer ipc_framer;
/* An incremental frame decoder: feed() bytes as they arrive, then call
 * next() until it returns 0. `max` caps a frame's payload. */
int ipc_framer_new(ipc_framer **out, size_t max, kv_err *err);
void ipc_framer_free(ipc_framer *f);
void ipc_framer_set_max(ipc_framer *f, size_t max);
/* Appends n bytes. Fails (KV_ELIMIT) as soon as a header announces a frame
 * larger than the cap, before buffering it. */
int ipc_framer_feed(ipc_framer *f, const uint8_t *data, size_t n, kv_err *err);
/* 1 and the next frame's payload (valid until the next feed/next call),
 * 0 when no complete frame is buffered, negative on error. */
int ipc_framer_next(ipc_framer *f, const uint8_t **payload, size_t *len, kv_err *err);
/* 1 when a whole frame is buffered (next() would return it without I/O). */
int ipc_framer_ready(const ipc_framer *f);
/* Bytes buffered but not yet returned (a partial frame at EOF = truncation). */
size_t ipc_framer_pending(const ipc_framer *f);
/* Total bytes consumed so far (for error offsets). */
uint64_t ipc_framer_offset(const ipc_framer *f);

/* ---------------------------------------------------------------- secret */

typedef struct ipc_secret {
  uint8_t key[IPC_SECRET_BYTES];
} ipc_secret;

/* Loads the per-user secret from path (NULL = ipc_secret_path()). With
 * create != 0, a missing file is created (dir 0700, file 0600, random key).
 * Refuses a file that is not a regular file of exactly 32 bytes, is not
 * owned by this user, or is readable by group/others (KV_ECRYPTO). */
int ipc_secret_load(ipc_secret *out, const char *path, int create, kv_err *err);

/* --------------------------------------------------------------- session */

typedef struct ipc_session ipc_session;
enum { IPC_CLIENT = 0, IPC_SERVER = 1 };
enum { IPC_HS_CONTINUE = 0, IPC_HS_DONE = 1 };

int ipc_session_new(ipc_session **out, int role, const ipc_secret *secret, kv_err *err);
void ipc_session_free(ipc_session *s);
/* One handshake step. `in` is the peer's last handshake frame (NULL for the
 * client's first step). On return *out_len bytes of `out` (cap >=
 * IPC_HANDSHAKE_MAX) are to be sent as one frame (0 = nothing to send).
 * Returns IPC_HS_CONTINUE, IPC_HS_DONE or a negative error: KV_EFORMAT for
 * a malformed message, KV_ECRYPTO when the peer does not hold the secret.
 * Client: step(NULL) -> hello; step(reply) -> finish, DONE.
 * Server: step(hello) -> reply; step(finish) -> DONE. */
int ipc_session_step(ipc_session *s, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                     size_t *out_len, kv_err *err);
int ipc_session_established(const ipc_session *s);
/* Encrypts one message (n <= IPC_MSG_MAX) into out (cap >= n + 17); `final`
 * marks the last message of this direction (a clean close). */
int ipc_session_seal(ipc_session *s, const uint8_t *m, size_t n, int final, uint8_t *out, size_t cap,
                     size_t *out_len, kv_err *err);
/* Decrypts one frame into out (cap >= n - 17). A tampered, replayed,
 * reordered or cross-session frame fails with KV_ECRYPTO, and so does every
 * frame after a failure or after the final one. *final is set when the peer
 * closed its stream cleanly. */
int ipc_session_open(ipc_session *s, const uint8_t *c, size_t n, uint8_t *out, size_t cap, size_t *out_len,
                     int *final, kv_err *err);
/* Whether the peer sent its final message (EOF without it = truncation). */
int ipc_session_peer_closed(const ipc_session *s);

/* ------------------------------------------------------------------- rpc */

enum { IPC_REQUEST = 0, IPC_RESPONSE = 1, IPC_NOTIFY = 2 };

/* Error codes on the wire: the KV_E* codes of base.h, plus these. */
enum {
  IPC_ERR_PARSE = -32700,
  IPC_ERR_INVALID = -32600,
  IPC_ERR_METHOD = -32601,
  IPC_ERR_PARAMS = -32602,
};

/* A decoded message. Strings and trees are owned by the message. */
typedef struct ipc_msg {
  int type;        /* IPC_REQUEST / IPC_RESPONSE / IPC_NOTIFY */
  uint32_t id;     /* request and response */
  char *method;    /* request and notification */
  cJSON *params;   /* request and notification: array or map (never NULL) */
  cJSON *error;    /* response: NULL or {"code":int,"message":str} */
  cJSON *result;   /* response: NULL when error is set, else any value */
} ipc_msg;

/* Decodes exactly one msgpack-rpc message occupying all n bytes. Nesting is
 * capped at 64 levels; extension types, non-string map keys and trailing
 * bytes are errors naming the byte offset or field. */
int ipc_msg_decode(const uint8_t *buf, size_t n, ipc_msg *out, kv_err *err);
void ipc_msg_clear(ipc_msg *m);

/* Encoders produce malloc'd msgpack bytes. Trees are not consumed. */
int ipc_encode_request(uint32_t id, const char *method, const cJSON *params, uint8_t **out, size_t *len,
                       kv_err *err);
int ipc_encode_response(uint32_t id, const cJSON *error, const cJSON *result, uint8_t **out, size_t *len,
                        kv_err *err);
int ipc_encode_notify(const char *method, const cJSON *params, uint8_t **out, size_t *len, kv_err *err);
/* Any cJSON tree to msgpack bytes, and back (the back direction is used by
 * the bridge and the tests). */
int ipc_pack_json(const cJSON *v, uint8_t **out, size_t *len, kv_err *err);
int ipc_unpack_json(const uint8_t *buf, size_t n, cJSON **out, kv_err *err);

/* {"code": code, "message": msg} */
cJSON *ipc_error_new(int code, const char *msg);
/* Reads code/message out of an error value (tolerates [code, msg] too). */
int ipc_error_parse(const cJSON *error, int *code, const char **msg);

/* ---------------------------------------------------------------- client */

typedef struct ipc_client ipc_client;

/* Connects to sock_path (NULL = ipc_socket_path()) and handshakes using the
 * secret at secret_path (NULL = ipc_secret_path(), never created here).
 * KV_ENOTFOUND when no daemon listens there; KV_ECRYPTO when the daemon
 * cannot prove it holds the user's secret. */
int ipc_client_connect(ipc_client **out, const char *sock_path, const char *secret_path, kv_err *err);
/* Sends the final message (a clean close) and closes. NULL is fine. */
void ipc_client_close(ipc_client *c);
int ipc_client_fd(const ipc_client *c);
uint32_t ipc_client_next_id(ipc_client *c);

/* Called for each notification while a call waits. Returning nonzero asks
 * the client to cancel the call ($/cancel) and keep waiting for its end. */
typedef int (*ipc_notify_fn)(void *ud, const char *method, const cJSON *params);

/* Calls method with params (NULL = empty array; not consumed) and waits for
 * the response, passing notifications to fn. On success *result (may be
 * NULL to discard) receives the result tree (caller frees). A remote error
 * returns its code (negative) with its message in err. timeout_ms <= 0
 * waits forever. */
int ipc_client_call(ipc_client *c, const char *method, const cJSON *params, ipc_notify_fn fn, void *ud,
                    int timeout_ms, cJSON **result, kv_err *err);
int ipc_client_notify(ipc_client *c, const char *method, const cJSON *params, kv_err *err);
/* Raw plaintext messages (already msgpack-encoded), for the bridge. */
int ipc_client_send(ipc_client *c, const uint8_t *msg, size_t n, kv_err *err);
/* Receives one decrypted message (malloc'd). 0 ok, KV_ECANCELED on a clean
 * close by the daemon, KV_EBUSY on timeout, other negatives on error. */
int ipc_client_recv(ipc_client *c, uint8_t **msg, size_t *n, int timeout_ms, kv_err *err);
/* 1 when a whole message is already buffered: poll() on the fd will not say
 * so, so an event loop must drain these before waiting again. */
int ipc_client_buffered(const ipc_client *c);

#ifdef __cplusplus
}
#endif
#endif
