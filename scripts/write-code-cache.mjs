#!/usr/bin/env node
// Writes dist/bundle/cli.cjs.cache: runs the commands whose start-up matters (help, validate, plan, check
// of tcp and http dependencies) in this process against servers of its own on 127.0.0.1, with their output
// discarded, then saves the bytecode V8 compiled for them. Functions not warmed here (run's own: warming it
// saved ~4 ms CPU per run for 100 kB more cache that every command reads) still compile lazily.
// Usage (scripts/build-cli.mjs runs it): node scripts/write-code-cache.mjs [ROOT]
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createRequire } from 'node:module';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const { loadBundle } = createRequire(import.meta.url)(join(root, 'bin', 'safe-restart.js'));

const listen = (server) => new Promise((ok, fail) => server.once('error', fail).listen(0, '127.0.0.1', () => ok(server.address().port)));
const close = (server) => new Promise((ok) => server.close(() => ok()));

const dir = mkdtempSync(join(tmpdir(), 'sr-code-cache-'));
const tcp = createTcpServer((socket) => socket.destroy());
const web = createHttpServer((_req, res) => res.end('ok\n'));
try {
  const { main, script, cacheFile, cacheHeader } = loadBundle({ useCache: false });
  const tcpPort = await listen(tcp);
  const webPort = await listen(web);
  const recipe = join(dir, 'warm.yaml');
  writeFileSync(
    recipe,
    ['version: 1', 'name: warm', 'dependencies:', '  - name: db', `    tcp: 127.0.0.1:${tcpPort}`, '  - name: api', `    http: http://127.0.0.1:${webPort}/healthz`, 'stop:', '  run: "true"', 'start:', '  run: "true"', ''].join('\n'),
  );
  const demo = join(root, 'recipes', 'demo.yaml');
  const runs = [
    ['--help'],
    ['check', '--help'],
    ['validate', demo],
    ['plan', demo],
    ['check', recipe],
    ['check', recipe, '--json'],
  ];
  const failed = [];
  for (const argv of runs) {
    const code = await main(argv, silentIo(dir));
    if (code !== 0) failed.push(`${argv.join(' ')} → exit ${code}`);
  }
  // the cache is still right (bytecode is bytecode, whichever command compiled it), only less complete
  if (failed.length > 0) process.stderr.write(`write-code-cache: warm-up commands failed, the cache covers less: ${failed.join('; ')}\n`);
  const bytes = script.createCachedData();
  writeFileSync(`${cacheFile}.${process.pid}.tmp`, Buffer.concat([cacheHeader, bytes]));
  // renamed by the same process that wrote it, so a reader sees the old file or the whole new one
  renameSync(`${cacheFile}.${process.pid}.tmp`, cacheFile);
  process.stdout.write(`code cache ${Math.round(bytes.length / 1024)} kB for ${runs.length} warm-up commands\n`);
} finally {
  await close(tcp);
  await close(web);
  rmSync(dir, { recursive: true, force: true });
}

function silentIo(cwd) {
  const sink = () => new Writable({ write: (_chunk, _encoding, done) => done() });
  const env = { PATH: process.env.PATH ?? '', SAFE_RESTART_STATE_DIR: join(cwd, 'state') };
  const io = { stdout: sink(), stderr: sink(), stdin: new PassThrough(), env, cwd };
  // every subscription (onSignal, onHangup, any added later) is a no-op that returns its unsubscribe
  return new Proxy(io, { get: (target, key) => (key in target ? target[key] : /^on[A-Z]/.test(String(key)) ? () => () => {} : undefined) });
}
