// logic.test.mjs — unit tests of src/logic.ts (bundled as dist/logic.js):
// ask params per scope, citation validation, answer-text links, status bar.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const L = require("../dist/logic.js");

const sel = { file: "/r/src/a.c", relPath: "src/a.c", startLine: 3, endLine: 5, text: "int x;\nint y;", languageId: "c" };

test("askParams: selection carries the lines and the file", () => {
  const p = L.askParams("  what is x? ", "selection", { repo: "/r", file: "/r/src/a.c", selection: sel, maxTokens: 99 });
  assert.equal(p.question, "what is x?\n\nAbout src/a.c:3-5:\n```c\nint x;\nint y;\n```");
  assert.equal(p.repo, "/r");
  assert.equal(p.file, "/r/src/a.c");
  assert.equal(p.max_tokens, 99);
});

test("askParams: file and repository scopes", () => {
  const f = L.askParams("why?", "file", { repo: "/r", file: "/r/src/a.c", selection: sel });
  assert.equal(f.question, "why?\n\n(About the file src/a.c.)");
  assert.equal(f.file, "/r/src/a.c");
  const r = L.askParams("why?", "repository", { repo: "/r", file: "/r/src/a.c", selection: sel });
  assert.deepEqual(r, { question: "why?", repo: "/r" });
});

test("parseCitations keeps well-formed entries and clamps lines", () => {
  const got = L.parseCitations([
    { path: "a.c", start_line: 4, end_line: 9, symbol: "f", score: 1.5 },
    { path: "b.c", start_line: 0, end_line: -3 },
    { path: "", start_line: 1 },
    { start_line: 1 },
    null, 7, "x",
    { path: "c.c", start_line: "12", end_line: 10 },
  ]);
  assert.deepEqual(got, [
    { path: "a.c", start_line: 4, end_line: 9, symbol: "f", score: 1.5 },
    { path: "b.c", start_line: 1, end_line: 1 },
    { path: "c.c", start_line: 12, end_line: 12 },
  ]);
  assert.deepEqual(L.parseCitations({ path: "a.c" }), []);
  assert.deepEqual(L.parseCitations(undefined), []);
});

test("citationFile resolves against the repository", () => {
  assert.equal(L.citationFile("/r/", "src/a.c"), "/r/src/a.c");
  assert.equal(L.citationFile("/r", "/abs/a.c"), "/abs/a.c");
  assert.equal(L.citationFile(undefined, "a.c"), "a.c");
});

test("linkify finds path:line and path:start-end references", () => {
  const s = L.linkify("See src/ledger.c:1-8 and util.c:3, not v1.2 or 10:30.");
  assert.deepEqual(s, [
    { text: "See " },
    { text: "src/ledger.c:1-8", path: "src/ledger.c", line: 1 },
    { text: " and " },
    { text: "util.c:3", path: "util.c", line: 3 },
    { text: ", not v1.2 or 10:30." },
  ]);
  assert.deepEqual(L.linkify(""), []);
  assert.deepEqual(L.linkify("plain"), [{ text: "plain" }]);
  // concatenating the segments gives back the text
  const t = "a/b-c_d.test.ts:0 x.y:9-10";
  assert.equal(L.linkify(t).map((x) => x.text).join(""), t);
  assert.equal(L.linkify(t)[0].line, 1);
});

test("statusText: down, no key, indexing, tier", () => {
  assert.match(L.statusText({ state: "down" }).text, /off/);
  assert.match(L.statusText({ state: "down" }).tooltip, /start/);
  assert.match(L.statusText({ state: "no-key" }).text, /no key/);
  const st = { version: "0.1.0", pid: 4, repos: 2, model: { state: "loaded" }, jobs: { active: 1, running_background: 1 } };
  assert.match(L.statusText({ state: "connected", status: st }).text, /indexing/);
  assert.match(L.statusText({ state: "connected", status: st, indexing: { done: 3, total: 10 } }).text, /3\/10/);
  const t = L.statusText({ state: "connected", status: { ...st, jobs: {} }, tier: "flash" });
  assert.equal(t.text, "$(hubot) kvasir · flash");
  assert.match(t.tooltip, /model loaded/);
  assert.match(t.tooltip, /last answer: flash/);
});

test("answeredBy and errorText", () => {
  assert.equal(L.answeredBy({ tier: "deep", generator: "engine" }), "deep");
  assert.equal(L.answeredBy({ tier: "pro", model: "tiny-pro", generator: "engine" }), "pro (tiny-pro)"); // the model that answered
  const t = L.statusText({ state: "connected", status: { model: { state: "loaded" } }, tier: L.answeredBy({ tier: "pro", model: "m7" }) });
  assert.equal(t.text, "$(hubot) kvasir · pro (m7)");
  assert.equal(L.answeredBy({ generator: "none" }), "no model");
  assert.equal(L.answeredBy(null), null);
  assert.deepEqual(L.errorText({ code: -5, message: "the daemon is not running (x); start it" }), { text: "the daemon is not running (x); start it", canStart: true });
  assert.equal(L.errorText({ code: -5, message: "/x is not inside a registered repository" }).canStart, false);
  assert.equal(L.errorText(new Error("boom")).text, "boom");
});

test("logStoreName makes a plain store name", () => {
  assert.equal(L.logStoreName("/var/log/app.log"), "editor-app.log");
  assert.equal(L.logStoreName("/x/.hidden log?.txt"), "editor-.hidden_log_.txt");
  assert.ok(L.logStoreName("/x/" + "a".repeat(200)).length <= 64);
  assert.doesNotMatch(L.logStoreName("/a/b/c"), /\//);
});

test("sparkline scales bins to the fullest one, a space for an empty bin", () => {
  assert.equal(L.sparkline([0, 0, 3]), "  █");
  assert.equal(L.sparkline([1, 2, 4, 8, 0]), "▁▂▄█ ");
  assert.equal(L.sparkline([0, 0]), "  ");
  assert.equal(L.sparkline(undefined), "");
  assert.equal(L.sparkline([null, "x", 5]), "  █");
});

test("triageView lists clusters and cites their first line", () => {
  const v = L.triageView({ items: [
    { kind: "new", score: 25.7, template: "db <*> refused", level: "ERROR", count: 3, first_file: "/l/app.log", first_line: 51, bins: [0, 0, 3], why: "rare" },
    { kind: "burst", template: "x", level: "INFO", count: 50, first_file: "/l/app.log", first_line: 0, bins: [0, 0, 0], why: "" },
    null,
  ] });
  assert.deepEqual(v.lines, ["1. [new] ERROR ×3  db <*> refused", "   rare", "     █", "2. [burst] INFO ×50  x"]);
  assert.deepEqual(v.citations, [
    { path: "/l/app.log", start_line: 51, end_line: 51, symbol: "db <*> refused" },
    { path: "/l/app.log", start_line: 1, end_line: 1, symbol: "x" },
  ]);
  const c = L.triageView({ repo: "/r", items: [
    { kind: "new", template: "conn=<*> pid=<*>", level: "DEBUG", count: 4, first_file: "/l/d.log", first_line: 2,
      code: [{ path: "daemon/server.c", line: 567, score: 0.76 }, { path: 7 }, null] },
  ] });
  assert.deepEqual(c.lines, ["1. [new] DEBUG ×4  conn=<*> pid=<*>", "   code daemon/server.c:567"]);
  assert.deepEqual(c.code, [{ path: "daemon/server.c", start_line: 567, end_line: 567, symbol: "conn=<*> pid=<*>", score: 0.76 }]);
  assert.deepEqual(v.code, []);
  assert.deepEqual(L.triageView({ items: [] }).lines, ["nothing stands out in this log"]);
  assert.deepEqual(L.triageView(null).citations, []);
});

test("factsCitations puts the definitions, their users and tests before the excerpts", () => {
  const facts = [{ symbol: "reconcile_ledger", path: "src/ledger.c", start_line: 4, end_line: 9,
    callers: [{ path: "src/main.c", line: 12, in: "main" }], tests: [{ path: "tests/t.c", line: 3 }] }, { bogus: 1 }];
  const got = L.factsCitations(facts, [{ path: "src/ledger.c", start_line: 1, end_line: 20 }]);
  assert.deepEqual(got.map((c) => [c.path, c.start_line, c.symbol]), [
    ["src/ledger.c", 4, "reconcile_ledger"], ["src/main.c", 12, "uses reconcile_ledger in main"],
    ["tests/t.c", 3, "test of reconcile_ledger"], ["src/ledger.c", 1, undefined]]);
  assert.deepEqual(L.factsCitations(undefined, []), []);
  // the answer's citations repeat the definitions it names: listed once
  const twice = L.factsCitations(facts, [{ path: "src/ledger.c", start_line: 4, end_line: 9, symbol: "reconcile_ledger" },
    { path: "src/io.c", start_line: 1, end_line: 5 }]);
  assert.deepEqual(twice.map((c) => [c.path, c.start_line]), [["src/ledger.c", 4], ["src/main.c", 12], ["tests/t.c", 3], ["src/io.c", 1]]);
});
