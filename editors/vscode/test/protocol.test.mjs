// protocol.test.mjs — the TypeScript client (dist/protocol.js, built from
// src/protocol.ts) against a real kvasird: handshake, repo.add with progress,
// ask streaming citations and tokens, $/cancel, and the session's rejection
// of tampered, replayed and wrong-key traffic. The daemon is the reference:
// its C implementation (ipc/) must accept everything this client sends.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { createRequire } from "node:module";
import { startDaemon } from "./daemon.mjs";

const require = createRequire(import.meta.url);
const { KvasirClient, KvasirError, Framer, frame, Codes } = require("../dist/protocol.js");

let d;
const clients = [];
async function connect(extra = {}) {
  const c = await KvasirClient.connect({ socketPath: d.socketPath, secretPath: d.secretPath, ...extra });
  clients.push(c);
  return c;
}
function closed(c) {
  return new Promise((resolve) => (c.isClosed ? resolve(null) : c.once("close", resolve)));
}

before(async () => {
  d = await startDaemon({ stubMs: 20 });
});
after(async () => {
  for (const c of clients) c.close();
  if (d) await d.stop();
});

test("framer: partial feeds, several frames per chunk, size cap", () => {
  const f = new Framer(16);
  const a = frame(Buffer.from("hello")), b = frame(Buffer.from("world!"));
  const all = Buffer.concat([a, b]);
  f.push(all.subarray(0, 3));
  assert.equal(f.next(), null);
  f.push(all.subarray(3, 11));
  assert.equal(f.next().toString(), "hello");
  assert.equal(f.next(), null);
  f.push(all.subarray(11));
  assert.equal(f.next().toString(), "world!");
  assert.equal(f.pending(), 0);
  assert.equal(f.consumed, all.length);
  // one byte at a time, and a frame split over many pieces
  const h = new Framer(1 << 20);
  const big = Buffer.alloc(300000, 7);
  big[299999] = 9;
  const stream = Buffer.concat([frame(Buffer.from("x")), frame(big), frame(Buffer.alloc(0))]);
  const got = [];
  for (let i = 0; i < 10; i++) { h.push(stream.subarray(i, i + 1)); for (let f = h.next(); f; f = h.next()) got.push(f); }
  for (let i = 10; i < stream.length; i += 4096) { h.push(stream.subarray(i, i + 4096)); for (let f = h.next(); f; f = h.next()) got.push(f); }
  assert.equal(got.length, 3);
  assert.equal(got[0].toString(), "x");
  assert.ok(got[1].equals(big));
  assert.equal(got[2].length, 0);
  assert.equal(h.pending(), 0);
  const g = new Framer(16);
  assert.throws(() => g.push(Buffer.from([0, 0, 0, 17])), (e) => e.code === Codes.ELIMIT && /offset 0/.test(e.message));
});

test("handshake with the C daemon, then status", async () => {
  const c = await connect();
  const st = await c.call("status");
  assert.equal(st.protocol, 1);
  assert.equal(typeof st.pid, "number");
  assert.equal(st.model.state, "stub");
});

test("repo.add streams index progress; ask streams citations then tokens", async () => {
  const c = await connect();
  const progress = [];
  const added = await c.call("repo.add", { path: d.repo, wait: true }, { onNotify: (m, p) => m === "progress" && progress.push(p) });
  assert.equal(added.index.files_indexed, 3);
  assert.ok(progress.length >= 1, "at least one progress notification");
  const last = progress[progress.length - 1];
  assert.equal(last.done, last.total);
  assert.equal(last.label, "index");

  const events = [];
  const call = c.call("ask", { question: "where are the quarterly ledger totals reconciled?", repo: d.repo, max_tokens: 6 },
    { onNotify: (m, p) => events.push([m, p]) });
  const res = await call;
  // notifications carry this call's id and arrive before the response
  assert.ok(events.length >= 2);
  for (const [, p] of events) assert.equal(p.id, call.id);
  assert.equal(events[0][0], "ask.context");
  const cites = events[0][1].citations;
  const ledger = cites.find((x) => x.path === "src/ledger.c");
  assert.ok(ledger, `src/ledger.c cited: ${JSON.stringify(cites)}`);
  // reconcile_ledger is defined on line 4 of src/ledger.c
  assert.ok(ledger.start_line <= 4 && ledger.end_line >= 4, JSON.stringify(ledger));
  assert.equal(ledger.symbol, "reconcile_ledger");
  const streamed = events.filter(([m]) => m === "ask.token").map(([, p]) => p.text).join("");
  assert.equal(streamed, res.answer, "streamed tokens concatenate to the final answer");
  assert.match(res.answer, /src\/ledger\.c:\d+-\d+/);
  assert.equal(res.tokens, 6);
  // context: everything the answer was given; citations: the places it names
  assert.deepEqual(res.context, cites);
  const named = res.citations.find((x) => x.path === "src/ledger.c");
  assert.ok(named && named.start_line <= 4 && named.end_line >= 4, JSON.stringify(res.citations));
  for (const c of res.citations) assert.ok(res.answer.includes(c.path), `cited ${c.path} is named in the answer`);
});

test("$/cancel stops a streaming ask within a few tokens", async () => {
  const c = await connect();
  const ac = new AbortController();
  let tokens = 0;
  const t0 = Date.now();
  const p = c.call("ask", { question: "ledger totals", repo: d.repo, max_tokens: 4000 }, {
    signal: ac.signal,
    onNotify: (m) => {
      if (m === "ask.token" && ++tokens === 2) ac.abort();
    },
  });
  await assert.rejects(p, (e) => e instanceof KvasirError && e.code === Codes.ECANCELED && /cancel/.test(e.message));
  const ms = Date.now() - t0;
  assert.ok(ms < 3000, `canceled after ${ms} ms (4000 tokens at 20 ms would take 80 s)`);
  assert.ok(tokens < 20, `${tokens} tokens arrived`);
  // the connection survives a cancel
  const st = await c.call("status");
  assert.ok(st.jobs.canceled >= 1);
});

// The daemon counts a failure after the handshake in bad_frames and one
// before it in rejected; the tests assert both counters and the logged reason.
async function rejections(c) {
  const st = await c.call("status");
  return st.bad_frames + 1000 * st.rejected; // bad_frames only may move
}
function logCount(re) {
  return (d.log().match(re) || []).length;
}

test("a tampered frame from the TS side is rejected and closes only that connection", async () => {
  const watcher = await connect();
  const before = await rejections(watcher);
  const logged = logCount(/bad frame: open: authentication failed/g);
  const c = await connect();
  const sealed = c.sealRaw([0, 99, "status", {}]);
  sealed[sealed.length >> 1] ^= 0x01; // flip one bit of the ciphertext
  let answered = false;
  c.on("message", () => (answered = true));
  c.writeRaw(frame(sealed));
  await closed(c);
  assert.equal(answered, false, "the daemon must not answer a tampered request");
  assert.equal(await rejections(watcher), before + 1);
  assert.equal(logCount(/bad frame: open: authentication failed/g), logged + 1);
});

test("a replayed frame is rejected", async () => {
  const watcher = await connect();
  const before = await rejections(watcher);
  const c = await connect();
  let answers = 0;
  c.on("message", () => answers++);
  const f = frame(c.sealRaw([2, "noop", {}]));
  c.writeRaw(f);
  c.writeRaw(f);
  await closed(c);
  assert.equal(answers, 0);
  assert.equal(await rejections(watcher), before + 1);
});

test("a frame over the 8 MiB cap is refused before its payload", async () => {
  const watcher = await connect();
  const c = await connect();
  const hdr = Buffer.alloc(4);
  hdr.writeUInt32BE((8 << 20) + 1);
  const before = await rejections(watcher);
  c.writeRaw(hdr);
  await closed(c);
  assert.equal(await rejections(watcher), before + 1);
  assert.match(d.log(), /oversize frame/);
});

test("a client without the user's secret fails the handshake", async () => {
  const other = path.join(d.dir, "other-secret");
  fs.writeFileSync(other, Buffer.alloc(32, 7), { mode: 0o600 });
  const watcher = await connect();
  const before = (await watcher.call("status")).rejected;
  await assert.rejects(connect({ secretPath: other }), (e) => e.code === Codes.ECRYPTO && /server MAC mismatch/.test(e.message));
  // the daemon sees the client give up mid-handshake: one rejected connection
  let after = before;
  for (let i = 0; i < 100 && after === before; i++) {
    await new Promise((r) => setTimeout(r, 20));
    after = (await watcher.call("status")).rejected;
  }
  assert.equal(after, before + 1);
});

test("a secret readable by others is refused with a fix", async () => {
  const loose = path.join(d.dir, "loose-secret");
  fs.copyFileSync(d.secretPath, loose);
  fs.chmodSync(loose, 0o644);
  await assert.rejects(connect({ secretPath: loose }), (e) => e.code === Codes.ECRYPTO && /chmod 600/.test(e.message));
});

test("missing key and daemon down give clear errors", async () => {
  await assert.rejects(connect({ secretPath: path.join(d.dir, "nope") }), (e) => e.code === Codes.ENOTFOUND && /key is missing/.test(e.message));
  await assert.rejects(connect({ socketPath: path.join(d.dir, "no.sock") }), (e) => e.code === Codes.ENOTFOUND && /kvasir daemon/.test(e.message));
});

test("unknown method and bad params come back as errors with codes", async () => {
  const c = await connect();
  await assert.rejects(c.call("no.such.method"), (e) => e.code === Codes.METHOD);
  await assert.rejects(c.call("ask", { repo: d.repo }), (e) => e.code === Codes.PARAMS && /question/.test(e.message));
});

test("policy.explain answers with the tier", async () => {
  const c = await connect();
  const r = await c.call("policy.explain", { repo: d.repo, kind: "ask", question: "why?" });
  assert.equal(typeof r.tier, "string");
  assert.ok(Array.isArray(r.reasons) && r.reasons.length > 0);
});

test("complete answers (no model: empty text with a note)", async () => {
  const c = await connect();
  const r = await c.call("complete", { file: path.join(d.repo, "src/util.c"), line: 1, col: 10 });
  assert.equal(typeof r.text, "string");
});
