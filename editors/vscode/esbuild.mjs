// esbuild.mjs — bundles the extension (dist/extension.js, `vscode` external),
// the protocol client used by the node tests (dist/protocol.js) and the
// stdio bridge used by the Neovim plugin's tests (dist/bridge.js) and the
// pure helpers (dist/logic.js) for the unit tests. CommonJS,
// Node 16+, one self-contained file each (libsodium's wasm is inlined).
import * as esbuild from "esbuild";

const common = {
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node16",
  sourcemap: false,
  logLevel: "warning",
  external: ["vscode"],
};
await Promise.all([
  esbuild.build({ ...common, entryPoints: ["src/extension.ts"], outfile: "dist/extension.js" }),
  esbuild.build({ ...common, entryPoints: ["src/protocol.ts"], outfile: "dist/protocol.js" }),
  esbuild.build({ ...common, entryPoints: ["src/bridge.ts"], outfile: "dist/bridge.js" }),
  esbuild.build({ ...common, entryPoints: ["src/logic.ts"], outfile: "dist/logic.js" }),
]);
