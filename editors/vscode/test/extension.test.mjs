// extension.test.mjs — the bundled extension (dist/extension.js) driven
// through a recording mock of the `vscode` API (vscode-mock.cjs) against a
// real kvasird: the chat view receives streamed answers and citations,
// clicking a citation opens the file at the line, an edit cancels, a down
// daemon offers to start it, the status bar shows the tier, inline
// completions debounce and cancel.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import Module, { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { startDaemon, writeTestLog } from "./daemon.mjs";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const mockPath = path.join(here, "vscode-mock.cjs");
const origResolve = Module._resolveFilename;
Module._resolveFilename = function (req, ...rest) {
  return req === "vscode" ? mockPath : origResolve.call(this, req, ...rest);
};
const vscode = require(mockPath);
const ext = require("../dist/extension.js");
const { KvasirClient } = require("../dist/protocol.js");

let d, posts, onMessage, view;
const ctx = { subscriptions: [] };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(cond, ms = 10000, what = "condition") {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
function editorOn(rel, l0, l1) {
  const doc = vscode.__textDocument(path.join(d.repo, rel));
  const sel = new vscode.Selection(new vscode.Position(l0, 0), new vscode.Position(l1, doc.lineAt(l1).text.length));
  vscode.window.activeTextEditor = { document: doc, selection: sel };
  return doc;
}
const since = (n) => posts.slice(n);

before(async () => {
  d = await startDaemon({ stubMs: 20 });
  // first with a socket nobody listens on: the "daemon down" path
  Object.assign(vscode.__config, { socketPath: path.join(d.dir, "nobody.sock"), secretPath: d.secretPath, statusPollSeconds: 3600, maxTokens: 6 });
  ext.activate(ctx);
  const provider = vscode.__registered.webviews.get("kvasir.chat");
  posts = [];
  view = {
    webview: {
      options: {}, html: "", cspSource: "vscode-resource:",
      postMessage: async (m) => { posts.push(m); return true; },
      onDidReceiveMessage: (fn) => { onMessage = fn; return { dispose() {} }; },
    },
    show() {}, onDidDispose() {},
  };
  provider.resolveWebviewView(view);
  onMessage({ type: "ready" });
  // index the repo from outside the extension (the extension's own index command is UI-bound)
  const c = await KvasirClient.connect({ socketPath: d.socketPath, secretPath: d.secretPath });
  await c.call("repo.add", { path: d.repo, wait: true });
  c.close();
});
after(async () => {
  ext.deactivate();
  for (const s of ctx.subscriptions) s.dispose(); // as VS Code does on unload
  if (d) await d.stop();
});

test("chat view html: nonce CSP, no remote content, no innerHTML", () => {
  const html = view.webview.html;
  const nonce = html.match(/script-src 'nonce-([A-Za-z0-9+\/=]+)'/);
  assert.ok(nonce, "script-src limited to a nonce");
  assert.match(html, /default-src 'none'/);
  assert.ok(html.includes(`<script nonce="${nonce[1]}">`));
  assert.doesNotMatch(html, /innerHTML|https?:\/\//);
  assert.doesNotMatch(html, /\son(click|load|error)=/);
});

test("daemon down: status bar says off, an ask offers to start the daemon", async () => {
  await until(() => /off/.test(vscode.window._status.text), 5000, "status bar off");
  assert.match(vscode.window._status.tooltip, /not running/);
  editorOn("src/ledger.c", 2, 5);
  const n = posts.length;
  await vscode.commands.executeCommand("kvasir.askText", "anything", "repository");
  const err = vscode.__log.errors.at(-1);
  assert.match(err.m, /not running/);
  assert.deepEqual(err.items, ["Start the daemon"]);
  const e = since(n).find((m) => m.type === "error");
  assert.ok(e && e.canStart, JSON.stringify(since(n)));
  vscode.__config.socketPath = d.socketPath; // "start" it: point at the real one
});

test("ask about selection streams into the chat view with citations", async () => {
  editorOn("src/ledger.c", 2, 5);
  vscode.__answers.inputBox.push("where are the quarterly ledger totals reconciled?");
  const n = posts.length;
  await vscode.commands.executeCommand("kvasir.askSelection");
  const got = since(n);
  const user = got.find((m) => m.type === "user");
  assert.match(user.text, /\(src\/ledger\.c:3-6\)$/);
  const ctx = got.find((m) => m.type === "context");
  const cite = ctx.citations.find((c) => c.path === "src/ledger.c");
  assert.ok(cite && cite.start_line <= 4 && cite.end_line >= 4, JSON.stringify(ctx));
  assert.equal(ctx.repo, d.repo);
  const answers = got.filter((m) => m.type === "answer");
  assert.ok(answers.length >= 3, `streamed ${answers.length} updates`);
  const final = answers.at(-1).segments;
  const link = final.find((s) => s.path === "src/ledger.c");
  assert.ok(link, JSON.stringify(final));
  // the link may be the grounded lead's definition line or the citation's first line: inside the cited range
  assert.ok(link.line >= cite.start_line && link.line <= cite.end_line, JSON.stringify({ link, cite }));
  assert.match(got.find((m) => m.type === "done").footer, /answered by flash \(stub\)/);  // the policy tier that answered, and its model
  assert.match(vscode.window._status.text, /flash/);
  assert.equal(vscode.__log.contexts["kvasir.asking"], false);
});

test("a follow-up question continues the chat view's conversation", async () => {
  editorOn("src/ledger.c", 2, 5);
  vscode.__answers.inputBox.push("and who calls it?");
  const n = posts.length;
  await vscode.commands.executeCommand("kvasir.askSelection");
  const done = since(n).find((m) => m.type === "done");
  assert.match(done.footer, /turn [2-9] of this conversation/);  // the daemon saw the earlier turn
});

test("clicking a citation opens the file at the line; paths outside the repo are refused", async () => {
  onMessage({ type: "open", path: "src/ledger.c", line: 4, repo: d.repo });
  await until(() => vscode.__log.shown.length > 0, 5000, "showTextDocument");
  assert.deepEqual(vscode.__log.shown.at(-1), { file: path.join(d.repo, "src/ledger.c"), line: 3 });
  const before = vscode.__log.shown.length;
  onMessage({ type: "open", path: "../../etc/passwd", line: 1, repo: d.repo });
  await until(() => vscode.__log.warnings.some((w) => /not in the repository/.test(w.m)), 5000, "refusal");
  assert.equal(vscode.__log.shown.length, before);
});

test("editing the asked-about document cancels the answer", async () => {
  vscode.__config.maxTokens = 4000;
  const doc = editorOn("src/ledger.c", 2, 5);
  const n = posts.length;
  const t0 = Date.now();
  const p = vscode.commands.executeCommand("kvasir.askText", "ledger totals", "file");
  await until(() => since(n).some((m) => m.type === "answer"), 10000, "first token");
  assert.equal(vscode.__log.contexts["kvasir.asking"], true);
  for (const fn of vscode.__listeners.changeDoc) fn({ document: doc, contentChanges: [{ text: "x" }] });
  await p;
  assert.ok(Date.now() - t0 < 4000, `canceled after ${Date.now() - t0} ms`);
  assert.equal(since(n).find((m) => m.type === "done").footer, "canceled");
  vscode.__config.maxTokens = 6;
});

test("the view's stop button cancels too", async () => {
  vscode.__config.maxTokens = 4000;
  const n = posts.length;
  const p = vscode.commands.executeCommand("kvasir.askText", "ledger totals", "repository");
  await until(() => since(n).some((m) => m.type === "answer"), 10000, "first token");
  onMessage({ type: "cancel" });
  await p;
  assert.equal(since(n).find((m) => m.type === "done").footer, "canceled");
  vscode.__config.maxTokens = 6;
});

test("why would this escalate? shows the policy decision", async () => {
  editorOn("src/ledger.c", 0, 0);
  vscode.__answers.inputBox.push("why is this slow?");
  const n = posts.length;
  await vscode.commands.executeCommand("kvasir.explain");
  const info = since(n).find((m) => m.type === "info");
  assert.ok(info, JSON.stringify(since(n)));
  assert.match(info.lines[0], /^tier: \w+/);
  assert.ok(info.lines.some((l) => l.startsWith("• ")));
});

test("inline completions: debounced, cancellable, sent to the daemon", async () => {
  const provider = vscode.__registered.inline[0];
  const doc = editorOn("src/util.c", 0, 0);
  const stats = async () => {
    const c = await KvasirClient.connect({ socketPath: d.socketPath, secretPath: d.secretPath });
    const s = await c.call("cache.stats");
    c.close();
    return s.completes;
  };
  const c0 = await stats();
  // cancelled while debouncing: nothing is sent
  const cts = new vscode.CancellationTokenSource();
  const p = provider.provideInlineCompletionItems(doc, new vscode.Position(0, 10), {}, cts.token);
  cts.cancel();
  assert.deepEqual(await p, []);
  assert.equal(await stats(), c0);
  // not cancelled: one `complete` (no model here, so no items)
  const items = await provider.provideInlineCompletionItems(doc, new vscode.Position(0, 10), {}, new vscode.CancellationTokenSource().token);
  assert.deepEqual(items, []);
  assert.equal(await stats(), c0 + 1);
});

test("triage a log file: clusters ranked, the anomaly first, its line cited and openable", async () => {
  const file = path.join(d.dir, "app.log");
  const want = writeTestLog(file);
  const n = posts.length;
  await vscode.commands.executeCommand("kvasir.triageLog", vscode.Uri.file(file));
  const info = since(n).find((m) => m.type === "info");
  assert.ok(info, JSON.stringify(since(n)));
  assert.match(info.lines[0], /^1\. \[\w+\] ERROR ×3  db connection to <\*> refused after <\*> retries$/);
  assert.deepEqual(info.citations[0], { path: file, start_line: want.errorLine, end_line: want.errorLine, symbol: want.template });
  assert.match(since(n).filter((m) => m.type === "done").at(-1).footer, /^53 records, 2 cluster\(s\)$/);
  onMessage({ type: "open", path: info.citations[0].path, line: info.citations[0].start_line, repo: info.repo });
  await until(() => vscode.__log.shown.some((x) => x.file === file), 5000, "the log opened");
  assert.equal(vscode.__log.shown.at(-1).line, want.errorLine - 1);
});

test("ask about the repository with no editor open uses the workspace folder's git root", async () => {
  vscode.window.activeTextEditor = undefined;
  vscode.workspace.workspaceFolders = [{ uri: vscode.Uri.file(path.join(d.repo, "src")) }];
  const n = posts.length;
  await vscode.commands.executeCommand("kvasir.askText", "ledger totals", "repository");
  const ctx = since(n).filter((m) => m.type === "context").at(-1);
  assert.equal(ctx.repo, d.repo);
  assert.match(since(n).find((m) => m.type === "done").footer, /answered by flash/);  // the policy tier that answered
  vscode.workspace.workspaceFolders = [];
});
