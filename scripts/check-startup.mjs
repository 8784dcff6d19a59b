#!/usr/bin/env node
// After `npm run build:cli`: the start-up shortcuts change nothing a user sees. Runs a set of commands through
// the bin with the code cache and through a copy of the build without it, compares exit code, stdout and
// stderr (durations blanked), and checks the bin's own --version answer against main()'s. Exit 1 on a difference.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'safe-restart.js');
const dir = mkdtempSync(join(tmpdir(), 'sr-check-startup-'));
const server = createServer((socket) => socket.destroy());
let differences = 0;
try {
  const { loadBundle } = createRequire(import.meta.url)(BIN);
  if (loadBundle().cache !== 'accepted') throw new Error('the built code cache is not accepted: run `npm run build:cli` first');
  const copy = join(dir, 'no-cache');
  for (const entry of ['bin', 'dist', 'package.json', 'recipes']) cpSync(join(ROOT, entry), join(copy, entry), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  rmSync(join(copy, 'dist', 'bundle', 'cli.cjs.cache'));

  const port = await new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server.address().port)));
  const recipe = join(dir, 'r.yaml');
  writeFileSync(recipe, `version: 1\nname: svc\ndependencies:\n  - name: db\n    tcp: 127.0.0.1:${port}\nstop:\n  run: "true"\nstart:\n  run: "true"\n`);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'version: 1\nname: svc\nstop: { run: x }\nstart: { run: y }\ngates:\n  - tcp: a:1\n    stable_for: 30s\n    timeout: 20s\n');
  const demo = join(ROOT, 'recipes', 'demo.yaml');
  const cases = [
    ['--version'], ['-V'], ['version'], ['--version', 'extra'], [], ['--help'], ['nope'], ['check'], ['check', '--help'],
    ['check', recipe], ['check', recipe, '--json'], ['check', recipe, '--bogus'], ['check', join(dir, 'missing.yaml')],
    ['validate', bad], ['validate', demo], ['plan', demo], ['schema'],
  ];
  // durations and their column padding vary from run to run
  const blank = (text) => text.replace(/\d+(\.\d+)?(ms|s)\b */g, 'T').replace(/"elapsed_ms": \d+/g, '"elapsed_ms": T');
  const runCli = (bin, args) => {
    const r = spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, stdout: blank(r.stdout), stderr: blank(r.stderr.replaceAll(copy, ROOT)) };
  };
  for (const args of cases) {
    const withCache = runCli(BIN, args);
    const without = runCli(join(copy, 'bin', 'safe-restart.js'), args);
    report(`safe-restart ${args.join(' ')}`, withCache, without);
  }
  // the bin answers --version itself; main() would have answered this
  for (const flag of ['--version', '-V', 'version']) {
    const out = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        out.push(String(chunk));
        done();
      },
    });
    const code = await loadBundle().main([flag], { stdout: sink, stderr: sink, stdin: process.stdin, env: {}, cwd: dir, onSignal: () => () => {} });
    report(`main(['${flag}']) vs the bin`, { code, stdout: out.join(''), stderr: '' }, { ...runCli(BIN, [flag]), stderr: '' });
  }
} finally {
  server.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = differences > 0 ? 1 : 0;

function report(label, a, b) {
  const same = a.code === b.code && a.stdout === b.stdout && a.stderr === b.stderr;
  if (!same) differences++;
  process.stdout.write(`${same ? 'same' : 'DIFFERENT'}  ${label} (exit ${a.code}${same ? '' : ` / ${b.code}`})\n`);
  if (!same) process.stdout.write(`  A stdout: ${JSON.stringify(a.stdout.slice(0, 300))}\n  B stdout: ${JSON.stringify(b.stdout.slice(0, 300))}\n  A stderr: ${JSON.stringify(a.stderr.slice(0, 300))}\n  B stderr: ${JSON.stringify(b.stderr.slice(0, 300))}\n`);
}
