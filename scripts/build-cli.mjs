#!/usr/bin/env node
// `npm run build:cli`: the bundle the bin runs, and the V8 code cache that lets it start without compiling.
//   dist/bundle/cli.cjs        the whole CLI as one CommonJS file (lazily imported modules stay lazy: they
//                              become functions run on first use), first line `//sr-build <hash of the rest>`
//   dist/bundle/zod.cjs        zod, required only to explain a rejected recipe and by `schema`
//   dist/bundle/cli.cjs.cache  V8 bytecode of cli.cjs after a warm-up (scripts/write-code-cache.mjs),
//                              for this Node only; the bin falls back to compiling when it does not match
// CommonJS because Node 20 can use a code cache only for scripts (vm.Script), not for ES modules.
// Why this layout and the numbers behind it: README "Performance", bench/cold-options.mjs.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const COMMON = {
  bundle: true,
  minify: true,
  // error classes name themselves after new.target.name
  keepNames: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // every import() becomes a require(): a vm.Script has no loader for a real dynamic import
  supported: { 'dynamic-import': false },
  logLevel: 'warning',
  write: false,
  metafile: true,
};

// zod is 477 kB that a valid recipe never needs: it stays out of the file every command reads
const zodApart = {
  name: 'zod-apart',
  setup(build) {
    build.onResolve({ filter: /^zod$/ }, () => ({ path: './zod.cjs', external: true }));
  },
};

/** Builds `root`'s src/cli.ts into `root`/dist/bundle and writes its code cache; returns what it wrote. */
export async function buildCli({ root = ROOT, log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  const outdir = join(root, 'dist', 'bundle');
  const cli = await esbuild.build({
    ...COMMON,
    absWorkingDir: root,
    entryPoints: ['src/cli.ts'],
    outfile: join(outdir, 'cli.cjs'),
    external: ['pg', 'mysql2', 'ioredis', 'pino'],
    plugins: [zodApart],
    // the ES-module sources were strict (the banner's directive comes first, so it is the one that counts)
    // and read import.meta.url (package-root.ts, cli.ts)
    define: { 'import.meta.url': '__sr_import_meta_url' },
    banner: { js: '"use strict";var __sr_import_meta_url=require("node:url").pathToFileURL(__filename).href;' },
  });
  const zod = await esbuild.build({
    ...COMMON,
    absWorkingDir: root,
    stdin: { contents: "export * from 'zod';", resolveDir: root, loader: 'js' },
    outfile: join(outdir, 'zod.cjs'),
  });
  const body = cli.outputFiles[0].text;
  const dynamic = Object.values(cli.metafile.outputs).flatMap((o) => o.imports).filter((i) => i.kind === 'dynamic-import');
  if (dynamic.length > 0) {
    throw new Error(`dist/bundle/cli.cjs would keep import() of ${dynamic.map((i) => i.path).join(', ')}: a vm.Script cannot load it`);
  }
  const buildId = createHash('sha256').update(body).digest('hex').slice(0, 16);
  const source = `//sr-build ${buildId}\n${body}`;

  // replaced file by file (write, then rename), so a CLI starting meanwhile never reads half a file; an
  // old code cache left beside a new bundle carries the old build id and is ignored
  mkdirSync(outdir, { recursive: true });
  rmSync(join(outdir, 'chunks'), { recursive: true, force: true });
  rmSync(join(outdir, 'cli.js'), { force: true });
  rmSync(join(outdir, 'cli.cjs.cache'), { force: true });
  writeAtomically(join(outdir, 'zod.cjs'), zod.outputFiles[0].contents);
  writeAtomically(join(outdir, 'cli.cjs'), source);

  // a fresh process: the cache must come from the same Node and V8 flags as the CLI that will read it
  const writer = spawnSync(process.execPath, [join(ROOT, 'scripts', 'write-code-cache.mjs'), root], { encoding: 'utf8', timeout: 60_000 });
  if (writer.status !== 0) {
    rmSync(join(outdir, 'cli.cjs.cache'), { force: true });
    log(`build-cli: no code cache, the CLI will compile at each start (${(writer.stderr || writer.error?.message || `exit ${writer.status}`).trim()})`);
    return { buildId, cache: 'failed' };
  }
  // and a second fresh process proves that V8 accepts it
  const probe = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(join(root, 'bin', 'safe-restart.js'))}).loadBundle().cache)`], { encoding: 'utf8', timeout: 30_000 });
  if (probe.stdout !== 'accepted') {
    rmSync(join(outdir, 'cli.cjs.cache'), { force: true });
    log(`build-cli: V8 rejected the code cache (${probe.stdout || probe.stderr.trim()}); removed it, the CLI will compile at each start`);
    return { buildId, cache: 'rejected' };
  }
  if (writer.stderr.trim()) log(writer.stderr.trim());
  return { buildId, cache: 'accepted', detail: writer.stdout.trim() };
}

function writeAtomically(file, contents) {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, file);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildCli().catch((error) => {
    process.stderr.write(`build-cli: ${error?.message ?? error}\n`);
    process.exitCode = 1;
  });
}
