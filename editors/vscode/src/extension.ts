/*
 * extension.ts — the kvasir VS Code extension: commands (ask about the
 * selection / file / repository, triage a log, why would this escalate?),
 * the chat view, inline completions and the status-bar item, all over one
 * encrypted connection to the local kvasird (daemon.ts, protocol.ts).
 *
 * Invariants: the extension only sends requests — what may leave the
 * machine is decided by the daemon's per-project policy; one ask streams at
 * a time (a new one cancels the old); an edit to the asking document, Esc
 * while asking, the view's stop button or :kvasir.cancel send `$/cancel`;
 * every error reaches the user as a message with the fix (start the daemon,
 * index the repository) rather than an exception.
 */
import * as vscode from "vscode";
import * as fs from "fs";
import * as path from "path";
import { Codes } from "./protocol";
import { Daemon } from "./daemon";
import { ChatView, FromView } from "./chat";
import { Completions } from "./complete";
import { AskScope, askParams, answeredBy, errorText, factsCitations, linkify, logStoreName, parseCitations, triageView } from "./logic";

let daemon: Daemon;
let chat: ChatView;
let out: vscode.OutputChannel;
let seq = 0;
let current: { id: number; ac: AbortController } | null = null;
/* The chat view's conversation: follow-up questions continue it (the daemon
 * keeps its turns and KV context); a question about another repo starts anew. */
let conversation: { id: string; repo?: string } | null = null;

/* The git repository containing file (nearest directory with .git), else the workspace folder. */
function repoRoot(file?: string): string | undefined {
  if (file) {
    let dir = path.dirname(file);
    for (;;) {
      if (fs.existsSync(path.join(dir, ".git"))) return dir;
      const up = path.dirname(dir);
      if (up === dir) break;
      dir = up;
    }
    const wf = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(file));
    if (wf) return wf.uri.fsPath;
  }
  const f = vscode.workspace.workspaceFolders;
  /* a name inside the folder, so the walk starts at the folder itself */
  return f && f.length ? repoRoot(path.join(f[0].uri.fsPath, ".kvasir")) || f[0].uri.fsPath : undefined;
}

function activeFile(): { editor: vscode.TextEditor; file: string } | undefined {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.uri.scheme !== "file") return undefined;
  return { editor, file: editor.document.uri.fsPath };
}

/* Shows an error with the way out; resolves true when the caller should retry. */
async function reportError(e: any, repo?: string): Promise<boolean> {
  const { text, canStart } = errorText(e);
  out.appendLine(`error: ${text}`);
  if (canStart) {
    const pick = await vscode.window.showErrorMessage(`kvasir: ${text}`, "Start the daemon");
    return pick === "Start the daemon" ? daemon.start() : false;
  }
  if (repo && e && e.code === Codes.ENOTFOUND && /registered/.test(text)) {
    const pick = await vscode.window.showWarningMessage(`kvasir: ${text}`, "Index this repository");
    return pick === "Index this repository" ? indexRepo(repo) : false;
  }
  vscode.window.showErrorMessage(`kvasir: ${text}`);
  return false;
}

async function indexRepo(repo?: string): Promise<boolean> {
  repo = repo || repoRoot(activeFile()?.file);
  if (!repo) {
    vscode.window.showWarningMessage("kvasir: open a folder inside a git repository first");
    return false;
  }
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `kvasir: indexing ${path.basename(repo)}`, cancellable: true },
    async (progress, token) => {
      const ac = new AbortController();
      token.onCancellationRequested(() => ac.abort());
      let last = 0;
      try {
        const cl = await daemon.get();
        const res = await cl.call("repo.add", { path: repo, wait: true }, {
          signal: ac.signal,
          onNotify: (m, p) => {
            if (m !== "progress" || !p.total) return;
            const pct = (100 * p.done) / p.total;
            progress.report({ message: `${p.done}/${p.total} ${p.path || ""}`, increment: pct - last });
            last = pct;
            daemon.update({ indexing: p.done >= p.total ? null : { done: p.done, total: p.total, repo } });
          },
        });
        daemon.update({ indexing: null });
        const ix = res && res.index ? res.index : {};
        vscode.window.setStatusBarMessage(`kvasir: indexed ${ix.files_indexed ?? "?"} files, ${ix.symbols ?? "?"} symbols`, 5000);
        return true;
      } catch (e: any) {
        daemon.update({ indexing: null });
        if (e && e.code !== Codes.ECANCELED) await reportError(e);
        return false;
      }
    },
  );
}

function cancelCurrent(): void {
  if (current) current.ac.abort();
}

async function runAsk(question: string, scope: AskScope, retry = true): Promise<void> {
  cancelCurrent();
  const af = activeFile();
  const repo = repoRoot(af?.file);
  const cfg = vscode.workspace.getConfiguration("kvasir");
  let selection;
  if (af && scope !== "repository") {
    const sel = af.editor.selection;
    const l0 = sel.start.line, l1 = sel.end.character === 0 && sel.end.line > l0 ? sel.end.line - 1 : sel.end.line;
    selection = {
      file: af.file,
      relPath: repo ? path.relative(repo, af.file) : path.basename(af.file),
      startLine: l0 + 1,
      endLine: l1 + 1,
      text: af.editor.document.getText(sel.isEmpty ? af.editor.document.lineAt(l0).range : sel),
      languageId: af.editor.document.languageId,
    };
  }
  const params = askParams(question, scope, { repo, file: af?.file, selection, maxTokens: cfg.get<number>("maxTokens", 256) });
  if (conversation && conversation.repo === repo) params.conversation = conversation.id;
  const id = ++seq;
  const label = scope === "selection" && selection ? `${question}  (${selection.relPath}:${selection.startLine}-${selection.endLine})`
    : scope === "file" && selection ? `${question}  (${selection.relPath})` : question;
  chat.post({ type: "user", id, text: label, scope });
  await chat.reveal();
  const ac = new AbortController();
  current = { id, ac };
  void vscode.commands.executeCommand("setContext", "kvasir.asking", true);
  const origin = af?.editor.document;
  const sub = vscode.workspace.onDidChangeTextDocument((e) => {
    if (origin && e.document === origin && e.contentChanges.length) ac.abort();
  });
  let text = "";
  let answerRepo = repo;
  let facts: unknown = null;
  let cites: ReturnType<typeof parseCitations> = [];
  try {
    const cl = await daemon.get();
    const res = await cl.call("ask", params, {
      signal: ac.signal,
      onNotify: (m, p) => {
        if (m === "ask.context") {
          cites = parseCitations(p.citations);
          chat.post({ type: "context", id, citations: factsCitations(facts, cites), repo: answerRepo });
        } else if (m === "ask.facts") {
          facts = p.facts; // the definitions, their users and tests: clickable, before any model text
          chat.post({ type: "context", id, citations: factsCitations(facts, cites), repo: answerRepo });
        }
        else if (m === "ask.token" && typeof p.text === "string") {
          text += p.text;
          chat.post({ type: "answer", id, segments: linkify(text), repo: answerRepo });
        }
      },
    });
    answerRepo = typeof res.repo === "string" ? res.repo : repo;
    const answer = typeof res.answer === "string" ? res.answer : text;
    chat.post({ type: "context", id, citations: factsCitations(res.facts ?? facts, parseCitations(res.citations)), repo: answerRepo });
    chat.post({ type: "answer", id, segments: linkify(answer || "(no answer text)"), repo: answerRepo });
    const by = answeredBy(res);
    daemon.update({ tier: by });
    const conv = res.conversation && typeof res.conversation.id === "string" ? res.conversation : null;
    if (conv) conversation = { id: conv.id, repo };
    const turn = conv && Number(conv.turns) > 1 ? `turn ${conv.turns} of this conversation` : "";
    const foot = [by ? `answered by ${by}` : "", `${res.retrieved ?? 0} excerpt(s)`, turn, conv?.note || "", res.note || "", res.retrieval || ""];
    chat.post({ type: "done", id, footer: foot.filter(Boolean).join(" · ") });
  } catch (e: any) {
    if (e && e.code === Codes.ECANCELED) {
      chat.post({ type: "done", id, footer: "canceled" });
    } else {
      const { text: msg, canStart } = errorText(e);
      chat.post({ type: "error", id, text: msg, canStart });
      if (current && current.id === id) current = null;
      if ((await reportError(e, repo)) && retry) await runAsk(question, scope, false);
    }
  } finally {
    sub.dispose();
    if (current && current.id === id) {
      current = null;
      void vscode.commands.executeCommand("setContext", "kvasir.asking", false);
    }
  }
}

async function ask(scope: AskScope): Promise<void> {
  if (scope !== "repository" && !activeFile()) {
    vscode.window.showWarningMessage("kvasir: open a file first (or ask about the repository)");
    return;
  }
  const prompt = scope === "selection" ? "Ask about the selection" : scope === "file" ? "Ask about this file" : "Ask about the repository";
  const q = await vscode.window.showInputBox({ prompt, placeHolder: "e.g. what calls this, and why?" });
  if (q && q.trim()) await runAsk(q, scope);
}

function explainLines(r: any): string[] {
  if (!r || typeof r !== "object") return [String(r)];
  const lines: string[] = [];
  if (r.tier) lines.push(`tier: ${r.tier}${r.tier_kind ? ` (${r.tier_kind})` : ""}${r.model ? ` — ${r.model}` : ""}`);
  if (r.rule) lines.push(`rule: ${r.rule}`);
  if (r.policy_file) lines.push(`policy: ${r.policy_file}`);
  if (r.offline !== undefined) lines.push(`offline: ${r.offline}${r.offline_downgraded ? " (downgraded)" : ""}`);
  if (Array.isArray(r.reasons)) for (const x of r.reasons) lines.push(`• ${x}`);
  if (typeof r.text === "string") lines.push(r.text);
  return lines.length ? lines : [JSON.stringify(r, null, 2)];
}

async function explain(): Promise<void> {
  const af = activeFile();
  const repo = repoRoot(af?.file);
  const q = await vscode.window.showInputBox({ prompt: "Why would this escalate? (a question to evaluate; empty = an ask here)" });
  if (q === undefined) return;
  const id = ++seq;
  chat.post({ type: "user", id, text: `Why would this escalate?${q ? ` — ${q}` : ""}`, scope: "policy" });
  await chat.reveal();
  try {
    const cl = await daemon.get();
    const params: Record<string, unknown> = { kind: "ask", depth: "fast" };
    if (repo) params.repo = repo;
    if (q) params.question = q;
    if (af) params.file = af.file;
    const r = await cl.call("policy.explain", params);
    chat.post({ type: "info", id, title: "Policy decision", lines: explainLines(r) });
    chat.post({ type: "done", id, footer: r && r.tier ? `tier ${r.tier}` : "" });
  } catch (e: any) {
    chat.post({ type: "error", id, ...errorText(e) });
    await reportError(e, repo);
  }
}

async function triage(uri?: vscode.Uri): Promise<void> {
  let file = uri && uri.scheme === "file" ? uri.fsPath : undefined;
  const af = activeFile();
  if (!file && af && /\.(log|txt|out)$|log/i.test(path.basename(af.file))) file = af.file;
  if (!file) {
    const pick = await vscode.window.showOpenDialog({ canSelectMany: false, openLabel: "Triage", filters: { Logs: ["log", "txt", "out", "*"] } });
    if (!pick || !pick.length) return;
    file = pick[0].fsPath;
  }
  const id = ++seq;
  chat.post({ type: "user", id, text: `Triage ${path.basename(file)}`, scope: "logs" });
  await chat.reveal();
  const ac = new AbortController();
  current = { id, ac };
  try {
    const cl = await daemon.get();
    const name = logStoreName(file);
    const ing = await cl.call("logs.ingest", { paths: [file], name }, {
      signal: ac.signal,
      onNotify: (m, p) => {
        if (m === "progress" && p.total) chat.post({ type: "done", id, footer: `reading ${Math.round((100 * p.done) / p.total)}%` });
      },
    });
    /* with the workspace's repository the daemon links each template to the
     * code that prints it; a repository it does not know is a params error,
     * and the triage goes on without the links */
    const ws = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(file)) || (vscode.workspace.workspaceFolders || [])[0];
    let r: any;
    try {
      r = await cl.call("logs.triage", ws ? { name, limit: 20, repo: ws.uri.fsPath } : { name, limit: 20 }, { signal: ac.signal });
    } catch (e: any) {
      if (!ws || (e && e.code === Codes.ECANCELED)) throw e;
      r = await cl.call("logs.triage", { name, limit: 20 }, { signal: ac.signal });
    }
    const t = triageView(r);
    /* citations point into the log itself: its directory is the allowed root */
    chat.post({ type: "info", id, title: `Triage of ${path.basename(file)}`, lines: t.lines, citations: t.citations, repo: path.dirname(file) });
    if (t.code.length && r && typeof r.repo === "string")
      chat.post({ type: "info", id, title: "Code that prints these lines", lines: [], citations: t.code, repo: r.repo });
    chat.post({ type: "done", id, footer: `${ing && ing.records != null ? ing.records : "?"} records, ${t.citations.length} cluster(s)` });
  } catch (e: any) {
    if (e && e.code === Codes.ECANCELED) chat.post({ type: "done", id, footer: "canceled" });
    else {
      chat.post({ type: "error", id, ...errorText(e) });
      await reportError(e);
    }
  } finally {
    if (current && current.id === id) current = null;
  }
}

async function statusClick(): Promise<void> {
  const st = daemon.view.state;
  if (st === "down" || st === "no-key") {
    await daemon.start();
    return;
  }
  const pick = await vscode.window.showQuickPick(
    ["Ask about the repository", "Index this repository", "Why would this escalate?", "Show the log", "Start the daemon"],
    { placeHolder: daemon.item.tooltip ? String(daemon.item.tooltip) : "kvasir" },
  );
  if (pick === "Ask about the repository") await ask("repository");
  else if (pick === "Index this repository") await indexRepo();
  else if (pick === "Why would this escalate?") await explain();
  else if (pick === "Show the log") out.show();
  else if (pick === "Start the daemon") await daemon.start();
}

export function activate(ctx: vscode.ExtensionContext): void {
  out = vscode.window.createOutputChannel("kvasir");
  daemon = new Daemon(out);
  chat = new ChatView(ctx);
  chat.onMessage((m: FromView) => {
    if (m.type === "ask" && typeof m.text === "string") void runAsk(m.text, "repository");
    else if (m.type === "open") void ChatView.open(m);
    else if (m.type === "cancel") cancelCurrent();
    else if (m.type === "start") void daemon.start();
  });
  const cmd = (name: string, fn: (...a: any[]) => unknown) => ctx.subscriptions.push(vscode.commands.registerCommand(name, fn));
  cmd("kvasir.askSelection", () => ask("selection"));
  cmd("kvasir.askFile", () => ask("file"));
  cmd("kvasir.askRepository", () => ask("repository"));
  cmd("kvasir.triageLog", (uri?: vscode.Uri) => triage(uri));
  cmd("kvasir.explain", () => explain());
  cmd("kvasir.index", () => indexRepo());
  cmd("kvasir.cancel", () => cancelCurrent());
  cmd("kvasir.startDaemon", () => daemon.start());
  cmd("kvasir.statusClick", () => statusClick());
  /* for tests and automation: ask without an input box */
  cmd("kvasir.askText", (q: string, scope?: AskScope) => runAsk(String(q), scope || "repository"));
  ctx.subscriptions.push(
    daemon,
    out,
    vscode.window.registerWebviewViewProvider(ChatView.id, chat, { webviewOptions: { retainContextWhenHidden: true } }),
    vscode.languages.registerInlineCompletionItemProvider({ pattern: "**" }, new Completions(daemon)),
  );
  daemon.startPolling();
}

export function deactivate(): void {
  cancelCurrent();
}
