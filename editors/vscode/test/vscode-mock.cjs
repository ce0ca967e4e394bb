// vscode-mock.cjs — the slice of the `vscode` API the extension uses, backed
// by plain objects that record what the extension did (messages shown,
// documents opened, webview posts) so extension.test.mjs can drive
// dist/extension.js against a real daemon without VS Code. Only behaviour
// the extension relies on is modelled; anything else throws when touched.
"use strict";
const fs = require("fs");

const log = { errors: [], warnings: [], infos: [], shown: [], statusMessages: [], contexts: {}, progress: [] };
const answers = { inputBox: [], errorPick: undefined, warningPick: undefined };
const config = {};
const listeners = { changeDoc: [] };
const commands = new Map();
const registered = { webviews: new Map(), inline: [] };

class EventEmitter {
  constructor() { this.fns = []; this.event = (fn) => { this.fns.push(fn); return { dispose: () => (this.fns = this.fns.filter((f) => f !== fn)) }; }; }
  fire(v) { for (const f of this.fns) f(v); }
  dispose() { this.fns = []; }
}
class Position { constructor(line, character) { this.line = line; this.character = character; } }
class Range {
  constructor(a, b, c, d) {
    if (a instanceof Position) { this.start = a; this.end = b; } else { this.start = new Position(a, b); this.end = new Position(c, d); }
  }
  get isEmpty() { return this.start.line === this.end.line && this.start.character === this.end.character; }
}
class Selection extends Range {}
const Uri = {
  file: (p) => ({ scheme: "file", fsPath: p, path: p, toString: () => "file://" + p }),
};
class CancellationTokenSource {
  constructor() {
    const em = new EventEmitter();
    this.token = { isCancellationRequested: false, onCancellationRequested: em.event };
    this._em = em;
  }
  cancel() { this.token.isCancellationRequested = true; this._em.fire(); }
}

function textDocument(file) {
  const text = fs.readFileSync(file, "utf8");
  const lines = text.split("\n");
  return {
    uri: Uri.file(file), languageId: file.endsWith(".c") ? "c" : "plaintext", lineCount: lines.length,
    lineAt: (i) => ({ text: lines[i], range: new Range(i, 0, i, lines[i].length) }),
    getText: (r) => {
      if (!r) return text;
      const out = [];
      for (let i = r.start.line; i <= r.end.line; i++) {
        const l = lines[i] || "";
        out.push(l.slice(i === r.start.line ? r.start.character : 0, i === r.end.line ? r.end.character : l.length));
      }
      return out.join("\n");
    },
  };
}

function statusItem() { return { text: "", tooltip: "", command: "", show() {}, dispose() {} }; }

const window = {
  activeTextEditor: undefined,
  createStatusBarItem: () => (window._status = statusItem()),
  createOutputChannel: () => ({ lines: [], appendLine(l) { this.lines.push(l); }, show() {}, dispose() {} }),
  showErrorMessage: async (m, ...items) => { log.errors.push({ m, items }); return answers.errorPick; },
  showWarningMessage: async (m, ...items) => { log.warnings.push({ m, items }); return answers.warningPick; },
  showInformationMessage: async (m) => { log.infos.push(m); },
  showInputBox: async () => answers.inputBox.shift(),
  showQuickPick: async () => undefined,
  showOpenDialog: async () => undefined,
  setStatusBarMessage: (m) => { log.statusMessages.push(m); return { dispose() {} }; },
  withProgress: async (_o, fn) => fn({ report: (r) => log.progress.push(r) }, new CancellationTokenSource().token),
  showTextDocument: async (doc, opts) => { log.shown.push({ file: doc.uri.fsPath, line: opts.selection.start.line }); },
  registerWebviewViewProvider: (id, p) => { registered.webviews.set(id, p); return { dispose() {} }; },
};
const workspace = {
  workspaceFolders: [],
  getConfiguration: () => ({ get: (k, d) => (k in config ? config[k] : d) }),
  onDidChangeTextDocument: (fn) => { listeners.changeDoc.push(fn); return { dispose: () => (listeners.changeDoc = listeners.changeDoc.filter((f) => f !== fn)) }; },
  getWorkspaceFolder: () => undefined,
  openTextDocument: async (uri) => textDocument(uri.fsPath),
  fs: { stat: async (uri) => { fs.statSync(uri.fsPath); return {}; } },
};

module.exports = {
  // what tests use to drive and observe
  __log: log, __answers: answers, __config: config, __listeners: listeners, __commands: commands,
  __registered: registered, __textDocument: textDocument, CancellationTokenSource,
  // the API
  EventEmitter, Position, Range, Selection, Uri,
  StatusBarAlignment: { Left: 1, Right: 2 },
  ProgressLocation: { Notification: 15 },
  InlineCompletionItem: class { constructor(text, range) { this.insertText = text; this.range = range; } },
  window, workspace,
  commands: {
    registerCommand: (n, fn) => { commands.set(n, fn); return { dispose() {} }; },
    executeCommand: async (n, ...a) => {
      if (n === "setContext") { log.contexts[a[0]] = a[1]; return; }
      if (n.endsWith(".focus")) return;
      const fn = commands.get(n);
      if (!fn) throw new Error(`mock: no command ${n}`);
      return fn(...a);
    },
  },
  languages: { registerInlineCompletionItemProvider: (sel, p) => { registered.inline.push(p); return { dispose() {} }; } },
};
