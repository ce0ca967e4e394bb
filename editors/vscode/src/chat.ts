/*
 * chat.ts — the chat view (a webview in the kvasir activity-bar container):
 * questions, answers streamed as they arrive, citations as links that open
 * the file at the line, policy explanations and triage reports.
 *
 * Invariants: the webview gets no Node access and a strict CSP (scripts only
 * with this render's nonce, no remote content); everything it shows is set
 * through textContent (never innerHTML with daemon text); messages from the
 * webview are validated before use (an "open" only opens a path inside the
 * repository that answered or a workspace folder).
 */
import * as vscode from "vscode";
import * as path from "path";
import { randomBytes } from "crypto";
import { Citation, Segment } from "./logic";

export type ToView =
  | { type: "user"; id: number; text: string; scope: string }
  | { type: "context"; id: number; citations: Citation[]; repo?: string }
  | { type: "answer"; id: number; segments: Segment[]; repo?: string }
  | { type: "done"; id: number; footer: string }
  | { type: "error"; id: number; text: string; canStart: boolean }
  | { type: "info"; id: number; title: string; lines: string[]; citations?: Citation[]; repo?: string };

export type FromView =
  | { type: "ask"; text: string }
  | { type: "open"; path: string; line: number; repo?: string }
  | { type: "cancel" }
  | { type: "start" }
  | { type: "ready" };

export class ChatView implements vscode.WebviewViewProvider {
  static readonly id = "kvasir.chat";
  private view: vscode.WebviewView | undefined;
  private queue: ToView[] = [];
  private handlers: ((m: FromView) => void)[] = [];

  constructor(private ext: vscode.ExtensionContext) {}

  onMessage(fn: (m: FromView) => void): void {
    this.handlers.push(fn);
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = { enableScripts: true, localResourceRoots: [] };
    view.webview.html = html(randomBytes(16).toString("base64"), view.webview.cspSource);
    view.webview.onDidReceiveMessage((m: FromView) => {
      if (!m || typeof m !== "object") return;
      if (m.type === "ready") {
        for (const q of this.queue) void view.webview.postMessage(q);
        this.queue = [];
        return;
      }
      for (const h of this.handlers) h(m);
    });
    view.onDidDispose(() => (this.view = undefined));
  }

  /* Shows the view (creating it) so a new answer is visible. */
  async reveal(): Promise<void> {
    if (this.view) this.view.show(true);
    else await vscode.commands.executeCommand(`${ChatView.id}.focus`);
  }

  post(m: ToView): void {
    if (this.view) void this.view.webview.postMessage(m);
    else this.queue.push(m);
  }

  /* Opens a cited file at a line, if it is inside the repo or the workspace. */
  static async open(m: { path: string; line: number; repo?: string }): Promise<void> {
    if (typeof m.path !== "string" || !m.path) return;
    const roots = (vscode.workspace.workspaceFolders || []).map((f) => f.uri.fsPath);
    if (m.repo) roots.unshift(m.repo);
    let file: string | undefined;
    for (const r of roots) {
      const f = path.resolve(r, m.path);
      if (f === r || f.startsWith(r + path.sep)) {
        try {
          await vscode.workspace.fs.stat(vscode.Uri.file(f));
          file = f;
          break;
        } catch {
          /* not in this root */
        }
      }
    }
    if (!file) {
      vscode.window.showWarningMessage(`kvasir: ${m.path} is not in the repository or the workspace`);
      return;
    }
    const line = Math.max(0, Math.floor(Number(m.line) || 1) - 1);
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(file));
    const pos = new vscode.Position(Math.min(line, Math.max(0, doc.lineCount - 1)), 0);
    await vscode.window.showTextDocument(doc, { selection: new vscode.Range(pos, pos), preview: true });
  }
}

function html(nonce: string, csp: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${csp} 'nonce-${nonce}'; script-src 'nonce-${nonce}';">
<style nonce="${nonce}">
body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); padding: 0 8px; }
#log { padding-bottom: 4em; }
.msg { margin: 8px 0; padding: 6px 8px; border-radius: 4px; white-space: pre-wrap; word-wrap: break-word; }
.user { background: var(--vscode-input-background); font-weight: 600; }
.answer { background: var(--vscode-editor-background); border-left: 2px solid var(--vscode-focusBorder); }
.error { color: var(--vscode-errorForeground); }
.foot { opacity: .7; font-size: .9em; margin-top: 4px; white-space: normal; }
.cites { margin: 4px 0 0 0; padding-left: 16px; white-space: normal; }
a { color: var(--vscode-textLink-foreground); cursor: pointer; text-decoration: none; }
a:hover { text-decoration: underline; }
#bar { position: fixed; bottom: 0; left: 0; right: 0; display: flex; gap: 4px; padding: 6px 8px; background: var(--vscode-sideBar-background); }
#q { flex: 1; background: var(--vscode-input-background); color: var(--vscode-input-foreground); border: 1px solid var(--vscode-input-border, transparent); padding: 4px; }
button { background: var(--vscode-button-background); color: var(--vscode-button-foreground); border: 0; padding: 4px 8px; cursor: pointer; }
</style></head>
<body>
<div id="log"></div>
<div id="bar"><input id="q" placeholder="Ask about this repository…" aria-label="question"><button id="send">Ask</button><button id="stop" title="Cancel (Esc)">■</button></div>
<script nonce="${nonce}">
const vscode = acquireVsCodeApi();
const log = document.getElementById("log");
const items = new Map();
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }
function entry(id) {
  let it = items.get(id);
  if (!it) {
    const box = el("div", "msg answer");
    const body = el("div", "body");
    const cites = el("ol", "cites");
    const foot = el("div", "foot");
    box.append(body, cites, foot);
    log.append(box);
    it = { box, body, cites, foot, repo: undefined };
    items.set(id, it);
  }
  return it;
}
function link(text, p, line, repo) {
  const a = el("a", "cite", text);
  a.dataset.path = p; a.dataset.line = String(line);
  a.title = p + ":" + line;
  a.addEventListener("click", () => vscode.postMessage({ type: "open", path: p, line, repo }));
  return a;
}
function renderCites(it, cites, repo) {
  it.cites.textContent = "";
  for (const c of cites || []) {
    const li = el("li");
    li.append(link(c.path + ":" + c.start_line + "-" + c.end_line, c.path, c.start_line, repo));
    if (c.symbol) li.append(document.createTextNode(" " + c.symbol));
    it.cites.append(li);
  }
}
window.addEventListener("message", (ev) => {
  const m = ev.data;
  if (!m || typeof m !== "object") return;
  if (m.type === "user") { log.append(el("div", "msg user", m.text)); entry(m.id).foot.textContent = "…"; }
  else if (m.type === "context") { const it = entry(m.id); it.repo = m.repo; renderCites(it, m.citations, m.repo); }
  else if (m.type === "answer") {
    const it = entry(m.id); it.body.textContent = "";
    for (const s of m.segments) it.body.append(s.path ? link(s.text, s.path, s.line, m.repo || it.repo) : document.createTextNode(s.text));
  }
  else if (m.type === "done") { entry(m.id).foot.textContent = m.footer; }
  else if (m.type === "error") {
    const it = entry(m.id); it.box.classList.add("error"); it.foot.textContent = m.text;
    if (m.canStart) { const b = el("button", "", "Start the daemon"); b.addEventListener("click", () => vscode.postMessage({ type: "start" })); it.foot.append(document.createElement("br"), b); }
  }
  else if (m.type === "info") {
    const it = entry(m.id); it.body.textContent = ""; it.body.append(el("b", "", m.title), document.createTextNode("\\n" + m.lines.join("\\n")));
    if (m.citations) renderCites(it, m.citations, m.repo);
  }
  window.scrollTo(0, document.body.scrollHeight);
});
const q = document.getElementById("q");
function send() { const t = q.value.trim(); if (t) { vscode.postMessage({ type: "ask", text: t }); q.value = ""; } }
document.getElementById("send").addEventListener("click", send);
document.getElementById("stop").addEventListener("click", () => vscode.postMessage({ type: "cancel" }));
q.addEventListener("keydown", (e) => { if (e.key === "Enter") send(); if (e.key === "Escape") vscode.postMessage({ type: "cancel" }); });
vscode.postMessage({ type: "ready" });
</script></body></html>`;
}
