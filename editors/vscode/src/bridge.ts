/*
 * bridge.ts — a stdio <-> kvasird relay with the same contract as
 * `kvasir bridge` (cli/cmd_daemon.c): plain msgpack-rpc messages on stdin
 * and stdout, the encrypted session on the daemon's socket. Editors that
 * cannot do the crypto themselves (Neovim) spawn it as a job. It exists so
 * the Neovim plugin can be tested (and used) before or without the C bridge.
 *
 *   node dist/bridge.js [--socket PATH] [--secret PATH]
 *
 * Invariants: messages are relayed unchanged (ids included), in order; a
 * malformed message on stdin or any session failure ends the bridge with a
 * message on stderr and a non-zero status; EOF on stdin closes cleanly.
 */
import { decodeMultiStream, encode } from "@msgpack/msgpack";
import { KvasirClient, KvasirError } from "./protocol";

function usage(): never {
  process.stdout.write(
    "usage: bridge [--socket PATH] [--secret PATH]\n" +
      "  Relays plain msgpack-rpc on stdin/stdout to kvasird's encrypted socket.\n",
  );
  process.exit(0);
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let socketPath: string | undefined, secretPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--help" || argv[i] === "-h") usage();
    else if (argv[i] === "--socket" && i + 1 < argv.length) socketPath = argv[++i];
    else if (argv[i] === "--secret" && i + 1 < argv.length) secretPath = argv[++i];
    else {
      process.stderr.write(`bridge: unknown option '${argv[i]}'\n`);
      return 2;
    }
  }
  let client: KvasirClient;
  try {
    client = await KvasirClient.connect({ socketPath, secretPath });
  } catch (e: any) {
    process.stderr.write(`kvasir bridge: ${e.message}\n`);
    return e instanceof KvasirError && e.code === -5 ? 3 : 1;
  }
  const ended = new Promise<number>((resolve) => {
    client.on("close", (e: Error | null) => {
      if (e) process.stderr.write(`kvasir bridge: ${e.message}\n`);
      resolve(e ? 1 : 0);
    });
  });
  client.on("message", (m: unknown) => process.stdout.write(encode(m)));
  try {
    for await (const m of decodeMultiStream(process.stdin)) {
      if (!Array.isArray(m) || (m[0] !== 0 && m[0] !== 2)) {
        process.stderr.write("kvasir bridge: stdin: expected a msgpack-rpc request or notification array\n");
        client.close();
        return 1;
      }
      client.send(m);
    }
  } catch (e: any) {
    process.stderr.write(`kvasir bridge: stdin: ${e.message}\n`);
    client.close();
    return 1;
  }
  client.close();
  return Promise.race([ended, new Promise<number>((r) => setTimeout(() => r(0), 200))]);
}

main().then((rc) => process.exit(rc));
