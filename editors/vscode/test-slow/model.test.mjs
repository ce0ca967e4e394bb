// model.test.mjs (slow) — the extension and the client with the real engine
// (KVASIR_TEST_MODEL, a small GGUF): inline completion items are exactly
// the daemon's `complete` answer for the same text/line/col (fetched
// independently over the protocol; generation is deterministic), a
// real-model ask streams and cites, and $/cancel interrupts the engine.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import Module, { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { startDaemon } from "../test/daemon.mjs";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const mockPath = path.join(here, "../test/vscode-mock.cjs");
const origResolve = Module._resolveFilename;
Module._resolveFilename = function (req, ...rest) {
  return req === "vscode" ? mockPath : origResolve.call(this, req, ...rest);
};
const vscode = require(mockPath);
const ext = require("../dist/extension.js");
const { KvasirClient, Codes } = require("../dist/protocol.js");

const model = process.env.KVASIR_TEST_MODEL;
let d, client;
const ctx = { subscriptions: [] };

before(async () => {
  d = await startDaemon({ stubMs: 0, model });
  Object.assign(vscode.__config, { socketPath: d.socketPath, secretPath: d.secretPath, statusPollSeconds: 3600, maxTokens: 16 });
  ext.activate(ctx);
  client = await KvasirClient.connect({ socketPath: d.socketPath, secretPath: d.secretPath });
  await client.call("repo.add", { path: d.repo, wait: true });
});
after(async () => {
  if (client) client.close();
  for (const s of ctx.subscriptions) s.dispose();
  if (d) await d.stop();
});

test("inline completion = the daemon's complete for the same cursor", async () => {
  const file = path.join(d.repo, "src/util.c");
  fs.writeFileSync(file, "int add_one(int x) { return x + 1; }\nint add_two(int x) { return ");
  const doc = vscode.__textDocument(file);
  const ref = await client.call("complete", { file, text: fs.readFileSync(file, "utf8"), line: 2, col: 28, max_tokens: 64 });
  assert.ok(ref.text.length > 0, JSON.stringify(ref));
  await new Promise((r) => setTimeout(r, 300)); // the status poll marks the daemon connected
  const items = await vscode.__registered.inline[0].provideInlineCompletionItems(doc, new vscode.Position(1, 28), {}, new vscode.CancellationTokenSource().token);
  assert.equal(items.length, 1);
  assert.equal(items[0].insertText, ref.text);
  assert.deepEqual([items[0].range.start.line, items[0].range.start.character], [1, 28]);
});

test("a real-model ask streams text and cites src/ledger.c", async () => {
  let streamed = "", cites = null;
  const r = await client.call("ask", { question: "where are the quarterly ledger totals reconciled?", repo: d.repo, max_tokens: 16 }, {
    onNotify: (m, p) => { if (m === "ask.token") streamed += p.text; else if (m === "ask.context") cites = p.citations; },
  });
  assert.equal(r.generator, "engine");
  assert.ok(streamed.length > 0);
  assert.equal(streamed, r.answer);
  assert.ok(cites.some((c) => c.path === "src/ledger.c" && c.start_line <= 4 && c.end_line >= 4), JSON.stringify(cites));
});

test("$/cancel interrupts the engine mid-generation", async () => {
  const ac = new AbortController();
  let n = 0;
  const p = client.call("ask", { question: "explain the ledger code in detail", repo: d.repo, max_tokens: 2000 }, {
    // the model's text arrives verified, a sentence at a time: cancel as soon as the facts are out and the
    // engine is at work, and count what still arrived
    signal: ac.signal, onNotify: (m, p) => { if (m === "ask.facts") ac.abort(); else if (m === "ask.token" && p.kind !== "facts") n++; },
  });
  await assert.rejects(p, (e) => e.code === Codes.ECANCELED);
  assert.ok(n < 10, `${n} token notifications`);
});
