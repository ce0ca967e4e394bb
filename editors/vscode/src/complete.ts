/*
 * complete.ts — inline completions from the daemon's `complete` method.
 *
 * Invariants: a request waits out the debounce first and is never sent if
 * VS Code cancelled it meanwhile (the user kept typing); once sent, VS
 * Code's cancellation becomes `$/cancel`; a failure (daemon down, no model)
 * yields no items and never a popup — the status bar shows the state.
 */
import * as vscode from "vscode";
import { Daemon } from "./daemon";

const MAX_BYTES = 64 * 1024; /* text sent around the cursor */

function sleep(ms: number, token: vscode.CancellationToken): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      sub.dispose();
      resolve(true);
    }, ms);
    const sub = token.onCancellationRequested(() => {
      clearTimeout(t);
      sub.dispose();
      resolve(false);
    });
  });
}

export class Completions implements vscode.InlineCompletionItemProvider {
  constructor(private daemon: Daemon) {}

  async provideInlineCompletionItems(
    doc: vscode.TextDocument,
    pos: vscode.Position,
    _ctx: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[]> {
    const cfg = vscode.workspace.getConfiguration("kvasir");
    if (!cfg.get<boolean>("inlineCompletions.enabled", true)) return [];
    if (this.daemon.view.state !== "connected") return [];
    if (!(await sleep(cfg.get<number>("inlineCompletions.debounceMs", 200), token))) return [];
    /* a window of the document around the cursor, with the cursor's line/col in it */
    const first = Math.max(0, pos.line - 200);
    const last = Math.min(doc.lineCount - 1, pos.line + 50);
    let text = doc.getText(new vscode.Range(first, 0, last, doc.lineAt(last).text.length));
    if (text.length > MAX_BYTES) text = text.slice(0, MAX_BYTES);
    const ac = new AbortController();
    const sub = token.onCancellationRequested(() => ac.abort());
    try {
      const cl = await this.daemon.get();
      if (token.isCancellationRequested) return [];
      const res = await cl.call(
        "complete",
        {
          file: doc.uri.scheme === "file" ? doc.uri.fsPath : doc.uri.toString(),
          text,
          line: pos.line - first + 1,
          col: pos.character,
          col_unit: "utf16", // VS Code positions count UTF-16 code units
          max_tokens: cfg.get<number>("inlineCompletions.maxTokens", 64),
        },
        { signal: ac.signal, timeoutMs: 15000 },
      );
      if (token.isCancellationRequested || !res || typeof res.text !== "string" || !res.text) return [];
      return [new vscode.InlineCompletionItem(res.text, new vscode.Range(pos, pos))];
    } catch {
      return [];
    } finally {
      sub.dispose();
    }
  }
}
