/*
 * protocol.ts — a TypeScript client of kvasird's wire protocol (version 1,
 * docs/protocol.md), byte-compatible with ipc/ (frame.c, crypto.c, rpc.c):
 *
 *   frames    4-byte big-endian length + payload; 256 bytes max before the
 *             handshake completes, 8 MiB after;
 *   handshake HELLO "KVh1"|v|client_pk (37) -> REPLY "KVr1"|v|server_pk|
 *             ss_header_s2c|mac_s (93) -> FINISH "KVf1"|ss_header_c2s|mac_c (60),
 *             keys from crypto_kx mixed with the per-user secret via keyed
 *             BLAKE2b-256, exactly as in ipc/crypto.c;
 *   session   one crypto_secretstream_xchacha20poly1305 per direction; the
 *             final tag is a clean close;
 *   rpc       msgpack-rpc: [0,id,method,params] [1,id,error,result] [2,method,params].
 *
 * It has no dependency on VS Code, so node:test runs it against a real
 * daemon, and bridge.ts reuses it for Neovim.
 *
 * Invariants: every received frame passes the size cap and the stream's
 * authentication before it is decoded; after any failure the connection is
 * dead (every pending and later call rejects) — a tampered stream never
 * resynchronises; the client only sends requests and notifications, never
 * answers requests; a call whose AbortSignal fires sends `$/cancel {id}` once
 * and still waits for the daemon's response (or the connection's end).
 */
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { EventEmitter } from "events";
import { encode, decode } from "@msgpack/msgpack";
import sodium from "libsodium-wrappers";

export const PROTOCOL_VERSION = 1;
export const FRAME_MAX = 8 << 20;
export const HANDSHAKE_MAX = 256;
const SS_HDR = 24;
const SS_ABYTES = 17;
const HELLO_LEN = 37;
const REPLY_LEN = 93;

/* The KV_E* codes of base/base.h and the JSON-RPC-style codes of ipc.h. */
export const Codes = {
  EIO: -1, EFORMAT: -2, ENOMEM: -3, EINVAL: -4, ENOTFOUND: -5, EUNSUPPORTED: -6, ECANCELED: -7,
  ECRYPTO: -8, EBUSY: -9, ELIMIT: -10, EDENIED: -11,
  PARSE: -32700, INVALID: -32600, METHOD: -32601, PARAMS: -32602,
} as const;

export class KvasirError extends Error {
  code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
    this.name = "KvasirError";
  }
}

/* ------------------------------------------------------------------ paths */

function xdg(kind: "runtime" | "config", env: NodeJS.ProcessEnv): string {
  if (kind === "runtime") {
    const v = env.XDG_RUNTIME_DIR;
    if (v) return path.join(v, "kvasir");
    return `/tmp/kvasir-${process.getuid ? process.getuid() : 0}`;
  }
  const v = env.XDG_CONFIG_HOME;
  if (v) return path.join(v, "kvasir");
  return path.join(env.HOME || os.homedir() || "/tmp", ".config", "kvasir");
}

/* Same defaults as ipc_socket_path() / ipc_secret_path(). */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(xdg("runtime", env), "kvasird.sock");
}
export function defaultSecretPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(xdg("config", env), "keys", "secret");
}

/* Loads the per-user secret with the checks of ipc_secret_load (never creates it). */
export function loadSecret(file: string): Uint8Array {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (e: any) {
    if (e && e.code === "ENOENT")
      throw new KvasirError(Codes.ENOTFOUND, `${file}: the key is missing; start the daemon once (\`kvasir daemon\`) to create it`);
    throw new KvasirError(Codes.EIO, `${file}: cannot open the secret: ${e && e.message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new KvasirError(Codes.ECRYPTO, `${file}: the secret is not a regular file`);
    if (process.getuid && st.uid !== process.getuid())
      throw new KvasirError(Codes.ECRYPTO, `${file}: owned by uid ${st.uid}, not by this user (${process.getuid()})`);
    if (st.mode & 0o077)
      throw new KvasirError(Codes.ECRYPTO, `${file}: mode ${(st.mode & 0o777).toString(8)} lets others read it; expected 0600 (chmod 600 it)`);
    if (st.size !== 32) throw new KvasirError(Codes.ECRYPTO, `${file}: size ${st.size} bytes, expected 32`);
    const key = Buffer.alloc(32);
    if (fs.readSync(fd, key, 0, 32, 0) !== 32) throw new KvasirError(Codes.EIO, `${file}: short read of the secret`);
    return new Uint8Array(key);
  } finally {
    fs.closeSync(fd);
  }
}

/* ----------------------------------------------------------------- frames */

export function frame(payload: Uint8Array): Buffer {
  const b = Buffer.alloc(4 + payload.length);
  b.writeUInt32BE(payload.length, 0);
  b.set(payload, 4);
  return b;
}

/* Incremental decoder: push() bytes, then next() until it returns null.
 * Chunks are joined only once a whole frame is buffered, so a large frame
 * arriving in many pieces is copied O(1) times, not once per piece. */
export class Framer {
  private chunks: Buffer[] = [];
  private total = 0;
  consumed = 0;
  constructor(public max: number) {}
  push(data: Buffer): void {
    if (data.length === 0) return;
    this.chunks.push(data);
    this.total += data.length;
    this.check();
  }
  /* The first n buffered bytes as one contiguous buffer (n <= total). */
  private head(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks, this.total)];
    return this.chunks[0];
  }
  private check(): number {
    if (this.total < 4) return -1;
    const n = this.head(4).readUInt32BE(0);
    if (n > this.max)
      throw new KvasirError(Codes.ELIMIT, `frame at byte offset ${this.consumed}: length ${n} exceeds the cap of ${this.max} bytes`);
    return n;
  }
  next(): Buffer | null {
    const n = this.check();
    if (n < 0 || this.total - 4 < n) return null;
    const b = this.head(4 + n);
    const p = b.subarray(4, 4 + n);
    if (b.length === 4 + n) this.chunks.shift();
    else this.chunks[0] = b.subarray(4 + n);
    this.total -= 4 + n;
    this.consumed += 4 + n;
    return p;
  }
  pending(): number {
    return this.total;
  }
  /* Removes and returns everything buffered (handing over to another framer). */
  drain(): Buffer {
    const b = Buffer.concat(this.chunks, this.total);
    this.chunks = [];
    this.total = 0;
    return b;
  }
}

/* -------------------------------------------------------------- handshake */

function cat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const te = new TextEncoder();

/* BLAKE2b-256(key, label | parts...) — hash_keyed() of crypto.c. */
function hk(key: Uint8Array | null, label: string, ...parts: Uint8Array[]): Uint8Array {
  return sodium.crypto_generichash(32, cat(te.encode(label), ...parts), key);
}

/* The client side of one session (handshake + both secretstreams). */
export class ClientSession {
  private pk!: Uint8Array;
  private sk!: Uint8Array;
  private hello!: Uint8Array;
  private tx: any = null;
  private rx: any = null;
  dead = false;
  peerFinal = false;

  constructor(private secret: Uint8Array) {}

  start(): Uint8Array {
    const kp = sodium.crypto_kx_keypair();
    this.pk = kp.publicKey;
    this.sk = kp.privateKey;
    this.hello = cat(te.encode("KVh1"), new Uint8Array([PROTOCOL_VERSION]), this.pk);
    return this.hello;
  }

  /* Consumes the server's REPLY and returns the FINISH message. */
  finish(reply: Uint8Array): Uint8Array {
    const fail = (code: number, msg: string): never => {
      this.dead = true;
      throw new KvasirError(code, `handshake: ${msg}`);
    };
    if (reply.length !== REPLY_LEN) fail(Codes.EFORMAT, `reply has the wrong length (${reply.length}, expected ${REPLY_LEN})`);
    if (Buffer.from(reply.subarray(0, 4)).toString("latin1") !== "KVr1") fail(Codes.EFORMAT, "bad magic at byte offset 0");
    if (reply[4] !== PROTOCOL_VERSION)
      fail(Codes.EUNSUPPORTED, `protocol version ${reply[4]} at byte offset 4, expected ${PROTOCOL_VERSION}`);
    const serverPk = reply.subarray(5, 37);
    const hdrS2c = reply.subarray(37, 37 + SS_HDR);
    const macS = reply.subarray(37 + SS_HDR, 37 + SS_HDR + 32);
    let keys: { sharedRx: Uint8Array; sharedTx: Uint8Array };
    try {
      keys = sodium.crypto_kx_client_session_keys(this.pk, this.sk, serverPk);
    } catch {
      return fail(Codes.ECRYPTO, "bad server public key");
    }
    const c2s = keys.sharedTx, s2c = keys.sharedRx;
    const th = hk(null, "kvasir-hs-v1", this.hello, serverPk);
    const kc2s = hk(this.secret, "c2s", c2s, th);
    const ks2c = hk(this.secret, "s2c", s2c, th);
    const kmac = hk(this.secret, "mac", c2s, s2c, th);
    sodium.memzero(this.sk);
    const mac = hk(kmac, "server", th, hdrS2c);
    if (!sodium.memcmp(mac, macS)) fail(Codes.ECRYPTO, "the daemon does not hold this user's secret (server MAC mismatch)");
    this.rx = sodium.crypto_secretstream_xchacha20poly1305_init_pull(hdrS2c, ks2c);
    const push = sodium.crypto_secretstream_xchacha20poly1305_init_push(kc2s);
    this.tx = push.state;
    const macC = hk(kmac, "client", th, hdrS2c, push.header);
    sodium.memzero(kc2s);
    sodium.memzero(ks2c);
    sodium.memzero(kmac);
    return cat(te.encode("KVf1"), push.header, macC);
  }

  get ready(): boolean {
    return this.tx !== null && !this.dead;
  }

  seal(m: Uint8Array, final = false): Uint8Array {
    if (!this.ready) throw new KvasirError(Codes.EINVAL, "seal: session not established");
    if (m.length > FRAME_MAX - SS_ABYTES)
      throw new KvasirError(Codes.ELIMIT, `seal: message of ${m.length} bytes exceeds ${FRAME_MAX - SS_ABYTES}`);
    const tag = final
      ? sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
      : sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
    return sodium.crypto_secretstream_xchacha20poly1305_push(this.tx, m, null, tag);
  }

  open(c: Uint8Array): { message: Uint8Array; final: boolean } {
    const die = (msg: string): never => {
      this.dead = true;
      throw new KvasirError(Codes.ECRYPTO, `open: ${msg}`);
    };
    if (this.dead || !this.rx) die("session not established or broken");
    if (this.peerFinal) die("frame after the peer's final message");
    if (c.length < SS_ABYTES) die(`frame of ${c.length} bytes is shorter than the ${SS_ABYTES}-byte tag`);
    let r: any;
    try {
      r = sodium.crypto_secretstream_xchacha20poly1305_pull(this.rx, c, null);
    } catch {
      r = false;
    }
    if (!r) return die("authentication failed (tampered, replayed or reordered frame)");
    const final = r.tag === sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    if (final) this.peerFinal = true;
    return { message: r.message, final };
  }
}

/* -------------------------------------------------------------------- rpc */

export type Notify = (method: string, params: any) => void;

export interface CallOptions {
  onNotify?: Notify;     /* notifications whose params.id is this call's id */
  signal?: AbortSignal;  /* abort = `$/cancel {id}`; the promise still settles from the daemon */
  timeoutMs?: number;    /* reject (and cancel) after this long; 0 = never */
}

export interface ConnectOptions {
  socketPath?: string;
  secretPath?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;    /* for connect + handshake (default 10 s) */
}

interface Pending {
  method: string;
  resolve: (v: any) => void;
  reject: (e: Error) => void;
  onNotify?: Notify;
  cancelled: boolean;
  cleanup: () => void;
}

/*
 * A connected client. Events: "message" (every decoded msgpack-rpc array),
 * "notification" (method, params), "close" (error | null).
 */
export class KvasirClient extends EventEmitter {
  private framer = new Framer(FRAME_MAX);
  private pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;
  private constructor(private sock: net.Socket, private session: ClientSession) {
    super();
  }

  static async connect(opts: ConnectOptions = {}): Promise<KvasirClient> {
    await sodium.ready;
    const env = opts.env || process.env;
    const sockPath = opts.socketPath || defaultSocketPath(env);
    const secretPath = opts.secretPath || defaultSecretPath(env);
    const secret = loadSecret(secretPath);
    const session = new ClientSession(secret);
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(sockPath);
      s.once("connect", () => resolve(s));
      s.once("error", (e: any) => {
        const code = e && (e.code === "ENOENT" || e.code === "ECONNREFUSED") ? Codes.ENOTFOUND : Codes.EIO;
        reject(new KvasirError(code, `the daemon is not running (${sockPath}: ${e && e.code}); start it with \`kvasir daemon\``));
      });
    });
    const timeout = opts.timeoutMs ?? 10000;
    try {
      const hs = new Framer(HANDSHAKE_MAX);
      const reply = await new Promise<Buffer>((resolve, reject) => {
        const t = setTimeout(() => done(new KvasirError(Codes.EBUSY, `handshake: no answer within ${timeout} ms`)), timeout);
        const onData = (d: Buffer) => {
          try {
            hs.push(d);
            const f = hs.next();
            if (f) done(null, Buffer.from(f));
          } catch (e: any) {
            done(e);
          }
        };
        const onEnd = () => done(new KvasirError(Codes.ECRYPTO, "handshake: the daemon closed the connection (wrong secret or protocol version?)"));
        const onErr = (e: Error) => done(new KvasirError(Codes.EIO, `handshake: ${e.message}`));
        function done(e: Error | null, f?: Buffer) {
          clearTimeout(t);
          sock.off("data", onData);
          sock.off("end", onEnd);
          sock.off("error", onErr);
          if (e) reject(e);
          else resolve(f!);
        }
        sock.on("data", onData);
        sock.on("end", onEnd);
        sock.on("error", onErr);
        sock.write(frame(session.start()));
      });
      sock.write(frame(session.finish(reply)));
      const c = new KvasirClient(sock, session);
      if (hs.pending()) c.onData(hs.drain());
      sock.on("data", (d: Buffer) => c.onData(d));
      sock.on("end", () => c.fail(session.peerFinal ? null : new KvasirError(Codes.EIO, "the daemon closed the connection without a final message")));
      sock.on("error", (e) => c.fail(new KvasirError(Codes.EIO, `daemon socket: ${e.message}`)));
      sock.on("close", () => c.fail(null));
      return c;
    } catch (e) {
      sock.destroy();
      throw e;
    } finally {
      sodium.memzero(secret);
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onData(d: Buffer): void {
    if (this.closed) return;
    try {
      this.framer.push(d);
      for (let f = this.framer.next(); f; f = this.framer.next()) {
        const { message, final } = this.session.open(f);
        if (final && message.length === 0) {
          this.fail(null);
          return;
        }
        this.dispatch(message);
      }
    } catch (e: any) {
      this.fail(e instanceof KvasirError ? e : new KvasirError(Codes.EFORMAT, String(e && e.message)));
    }
  }

  private dispatch(m: Uint8Array): void {
    let msg: any;
    try {
      msg = decode(m);
    } catch (e: any) {
      throw new KvasirError(Codes.EFORMAT, `msgpack: ${e && e.message}`);
    }
    if (!Array.isArray(msg) || typeof msg[0] !== "number") throw new KvasirError(Codes.EFORMAT, "rpc: message is not a msgpack-rpc array");
    this.emit("message", msg);
    if (msg[0] === 1 && msg.length === 4) {
      const p = this.pending.get(msg[1]);
      if (!p) return; /* stale response (e.g. after a timeout) */
      this.pending.delete(msg[1]);
      p.cleanup();
      if (msg[2] != null) {
        const err = msg[2];
        const code = typeof err === "object" && !Array.isArray(err) ? err.code : Array.isArray(err) ? err[0] : Codes.EIO;
        const text = typeof err === "object" && !Array.isArray(err) ? err.message : Array.isArray(err) ? err[1] : String(err);
        p.reject(new KvasirError(typeof code === "number" ? code : Codes.EIO, String(text)));
      } else {
        p.resolve(msg[3]);
      }
    } else if (msg[0] === 2 && msg.length === 3 && typeof msg[1] === "string") {
      const params = msg[2];
      const id = params && typeof params === "object" && !Array.isArray(params) ? params.id : undefined;
      const p = typeof id === "number" ? this.pending.get(id) : undefined;
      if (p && p.onNotify) {
        try {
          p.onNotify(msg[1], params);
        } catch {
          /* a listener's bug must not kill the connection */
        }
      }
      this.emit("notification", msg[1], params);
    } /* requests from the daemon: none are defined; ignored */
  }

  private fail(e: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.session.dead = true;
    const err = e || new KvasirError(Codes.ECANCELED, "the daemon closed the connection");
    for (const p of this.pending.values()) {
      p.cleanup();
      p.reject(err);
    }
    this.pending.clear();
    this.sock.destroy();
    this.emit("close", e);
  }

  private sendMessage(obj: unknown): void {
    if (this.closed) throw new KvasirError(Codes.EIO, "the connection to the daemon is closed");
    this.sock.write(frame(this.session.seal(encode(obj))));
  }

  /* Sends any msgpack-rpc message as is (the bridge relays its peer's ids). */
  send(msg: unknown[]): void {
    this.sendMessage(msg);
  }

  notify(method: string, params: unknown = {}): void {
    this.sendMessage([2, method, params]);
  }

  cancel(id: number): void {
    const p = this.pending.get(id);
    if (!p || p.cancelled || this.closed) return;
    p.cancelled = true;
    this.notify("$/cancel", { id });
  }

  /* Calls method; resolves with the result, rejects with a KvasirError. */
  call(method: string, params: unknown = {}, opts: CallOptions = {}): Promise<any> & { id: number } {
    const id = (this.nextId = (this.nextId + 1) >>> 0 || 1);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const promise = new Promise<any>((resolve, reject) => {
      if (this.closed) {
        reject(new KvasirError(Codes.EIO, "the connection to the daemon is closed"));
        return;
      }
      const p: Pending = {
        method, resolve, reject, onNotify: opts.onNotify, cancelled: false,
        cleanup: () => {
          if (timer) clearTimeout(timer);
          if (onAbort && opts.signal) opts.signal.removeEventListener("abort", onAbort);
        },
      };
      this.pending.set(id, p);
      try {
        this.sendMessage([0, id, method, params]);
      } catch (e) {
        this.pending.delete(id);
        reject(e);
        return;
      }
      if (opts.signal) {
        onAbort = () => this.cancel(id);
        if (opts.signal.aborted) onAbort();
        else opts.signal.addEventListener("abort", onAbort);
      }
      if (opts.timeoutMs && opts.timeoutMs > 0) {
        timer = setTimeout(() => {
          this.cancel(id);
          this.pending.delete(id);
          p.cleanup();
          reject(new KvasirError(Codes.EBUSY, `${method}: no answer within ${opts.timeoutMs} ms`));
        }, opts.timeoutMs);
      }
    }) as Promise<any> & { id: number };
    promise.id = id;
    return promise;
  }

  /* Sends the final message (a clean close) and closes. */
  close(): void {
    if (this.closed) return;
    try {
      this.sock.write(frame(this.session.seal(new Uint8Array(0), true)));
    } catch {
      /* closing anyway */
    }
    this.closed = true;
    for (const p of this.pending.values()) {
      p.cleanup();
      p.reject(new KvasirError(Codes.ECANCELED, "the client closed the connection"));
    }
    this.pending.clear();
    this.sock.end();
    this.emit("close", null);
  }

  /* For tests: writes raw bytes to the socket, bypassing the session. */
  writeRaw(b: Uint8Array): void {
    this.sock.write(b);
  }
  /* For tests: seals a message so a test can corrupt it before writeRaw. */
  sealRaw(obj: unknown): Uint8Array {
    return this.session.seal(encode(obj));
  }
}
