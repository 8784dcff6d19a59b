#!/usr/bin/env node
// The ways of building and starting the CLI we considered for its cold start, each built from this tree's
// src/ and measured side by side in one run: `--version` and `check` on an open port, against `node -e 0`
// and wait-port. The build kept is scripts/build-cli.mjs + bin/safe-restart.js (README "Performance").
// Usage: node bench/cold-options.mjs [--trials N] [--seed N] [--no-save]
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';
import { buildCli } from '../scripts/build-cli.mjs';
import { measureCold } from './lib/cold-measure.mjs';
import { openTcpPort } from './lib/targets.mjs';
import { oneDependencyRecipe } from './lib/tools.mjs';
import { BENCH, NODE, ROOT, WAIT_PORT, cleanupAll, removeDir, rng, tempDir } from './lib/util.mjs';

const { values } = parseArgs({ options: { trials: { type: 'string', default: '30' }, seed: { type: 'string' }, 'no-save': { type: 'boolean', default: false } } });
const trials = Math.max(1, Number(values.trials));
const seed = Number(values.seed ?? Date.now() % 2 ** 31);
const t0 = performance.now();
const log = (line) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1)}s] ${line}\n`);

// the bin before this work: an ES module importing the esbuild ESM bundle (one chunk per lazily loaded module)
const ESM_BIN = `#!/usr/bin/env node
import { main } from '../dist/bundle/cli.js';
main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (error) => { process.stderr.write(\`safe-restart: internal error: \${error?.stack ?? error}\\n\`); process.exitCode = 70; });
`;
// a CommonJS bin that requires a CommonJS bundle with Node's own loader (no code cache)
const REQUIRE_BIN = `'use strict';
require('../dist/bundle/cli.cjs').main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
`;
// the kept loader, entered from an ES-module file instead of the CommonJS bin
const ESM_ENTRY_OF_KEPT = (keptBin) => `import { createRequire } from 'node:module';
createRequire(import.meta.url)(${JSON.stringify(keptBin)}).loadBundle().main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
`;
// the kept loader without the bin's own --version answer: main() prints it, reading package.json
const NO_SHORTCUT_OF_KEPT = (keptBin) => `'use strict';
require(${JSON.stringify(keptBin)}).loadBundle().main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
`;
// the --version answer with the version inlined (as a build step would write it) instead of read from package.json
const INLINED_VERSION = (version) => `'use strict';
process.stdout.write(${JSON.stringify(`${version}\n`)});
`;
// a V8 startup snapshot of the bundle: built once, then `node --snapshot-blob FILE` starts from it. The
// entry is the bundle's text inside a function (the snapshot builder runs one script, and vm / module are
// not supported there); validate and check --help run once so their modules are initialised in the snapshot.
const SNAPSHOT_ENTRY = (bundleFile, bundleSource, demo) => `'use strict';
const __sr = { exports: {} };
(function (exports, require, module, __filename, __dirname) {
${bundleSource}
})(__sr.exports, require, __sr, ${JSON.stringify(bundleFile)}, ${JSON.stringify(join(bundleFile, '..'))});
const { Writable, PassThrough } = require('node:stream');
const sink = () => new Writable({ write: (_c, _e, done) => done() });
const io = () => ({ stdout: sink(), stderr: sink(), stdin: new PassThrough(), env: {}, cwd: '/', onSignal: () => () => {} });
__sr.exports.main(['validate', ${JSON.stringify(demo)}], io()).then(() => __sr.exports.main(['check', '--help'], io()));
require('node:v8').startupSnapshot.setDeserializeMainFunction(() => {
  __sr.exports.main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
});
`;
// what a bin would have to do to use the snapshot: start a second Node with the flag (Node 20 has no execve)
const REEXEC_BIN = (blob) => `'use strict';
const r = require('node:child_process').spawnSync(process.execPath, ['--snapshot-blob', ${JSON.stringify(blob)}, __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exitCode = r.status ?? 70;
`;

const ESM_CHUNKS = {
  format: 'esm',
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
};

/** A variant's own package root: package.json and recipes/ (packageRoot() looks for them), node_modules linked. */
function packageDir(base, name, src) {
  const dir = join(base, name);
  mkdirSync(join(dir, 'bin'), { recursive: true });
  for (const entry of ['package.json', 'recipes']) cpSync(join(src, entry), join(dir, entry), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

async function esbuildVariant(src, dir, options) {
  await esbuild.build({
    absWorkingDir: src,
    entryPoints: ['src/cli.ts'],
    bundle: true,
    minify: true,
    keepNames: true,
    platform: 'node',
    target: 'node20',
    external: ['pg', 'mysql2', 'ioredis', 'pino'],
    logLevel: 'error',
    outdir: join(dir, 'dist', 'bundle'),
    ...options,
  });
}

async function buildVariants(base) {
  // this tree as it is now, copied: others may be editing src/ while the run lasts
  const src = join(base, 'kept');
  for (const entry of ['src', 'package.json', 'recipes', 'bin', 'scripts', 'tsconfig.json']) cpSync(join(ROOT, entry), join(src, entry), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'));
  const kept = await buildCli({ root: src, log });
  if (kept.cache !== 'accepted') throw new Error(`the kept build has no usable code cache (${kept.cache})`);
  const keptBin = join(src, 'bin', 'safe-restart.js');
  const version = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')).version;
  const v = {};

  const esmChunks = packageDir(base, 'esm-chunks', src);
  await esbuildVariant(src, esmChunks, ESM_CHUNKS);
  writeFileSync(join(esmChunks, 'bin', 'safe-restart.js'), ESM_BIN);
  v['A. before: ESM chunks, ESM bin'] = { check: [join(esmChunks, 'bin', 'safe-restart.js')], version: [join(esmChunks, 'bin', 'safe-restart.js')] };

  const esmOne = packageDir(base, 'esm-one-file', src);
  await esbuildVariant(src, esmOne, { ...ESM_CHUNKS, splitting: false });
  writeFileSync(join(esmOne, 'bin', 'safe-restart.js'), ESM_BIN);
  v['B. ESM, one file (no chunks)'] = { check: [join(esmOne, 'bin', 'safe-restart.js')], version: [join(esmOne, 'bin', 'safe-restart.js')] };

  // the kept bundle's options with zod inside, loaded by require(): what CommonJS alone gives
  const cjsOne = packageDir(base, 'cjs-one-file', src);
  await esbuildVariant(src, cjsOne, {
    format: 'cjs',
    supported: { 'dynamic-import': false },
    outdir: undefined,
    outfile: join(cjsOne, 'dist', 'bundle', 'cli.cjs'),
    define: { 'import.meta.url': '__sr_import_meta_url' },
    banner: { js: '"use strict";var __sr_import_meta_url=require("node:url").pathToFileURL(__filename).href;' },
  });
  writeFileSync(join(cjsOne, 'bin', 'sr.cjs'), REQUIRE_BIN);
  v['C. CJS, one file with zod, require()'] = { check: [join(cjsOne, 'bin', 'sr.cjs')], version: [join(cjsOne, 'bin', 'sr.cjs')] };

  const noCache = join(base, 'kept-no-cache');
  for (const entry of ['bin', 'dist', 'package.json', 'recipes']) cpSync(join(src, entry), join(noCache, entry), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(noCache, 'node_modules'));
  rmSync(join(noCache, 'dist', 'bundle', 'cli.cjs.cache'));
  v['D. kept, without its code cache'] = { check: [join(noCache, 'bin', 'safe-restart.js')], version: [join(noCache, 'bin', 'safe-restart.js')] };

  v['E. kept: CJS + zod apart + code cache, CJS bin'] = { check: [keptBin], version: [keptBin] };

  const extra = join(base, 'entries');
  mkdirSync(extra, { recursive: true });
  writeFileSync(join(extra, 'esm-entry.mjs'), ESM_ENTRY_OF_KEPT(keptBin));
  v['F. kept, entered from an ES module'] = { check: [join(extra, 'esm-entry.mjs')], version: [join(extra, 'esm-entry.mjs')] };
  writeFileSync(join(extra, 'no-shortcut.cjs'), NO_SHORTCUT_OF_KEPT(keptBin));
  v['G. kept, --version through main()'] = { version: [join(extra, 'no-shortcut.cjs')] };
  writeFileSync(join(extra, 'inlined-version.cjs'), INLINED_VERSION(version));
  v['H. --version inlined, no package.json read'] = { version: [join(extra, 'inlined-version.cjs')] };

  const bundleFile = join(src, 'dist', 'bundle', 'cli.cjs');
  const entry = join(extra, 'snapshot-entry.cjs');
  writeFileSync(entry, SNAPSHOT_ENTRY(bundleFile, readFileSync(bundleFile, 'utf8'), join(src, 'recipes', 'demo.yaml')));
  const blob = join(extra, 'cli.blob');
  execFileSync(NODE, ['--snapshot-blob', blob, '--build-snapshot', entry], { stdio: ['ignore', 'ignore', 'pipe'] });
  v['I. V8 startup snapshot, node --snapshot-blob'] = { check: ['--snapshot-blob', blob, keptBin], version: ['--snapshot-blob', blob, keptBin] };
  writeFileSync(join(extra, 'reexec.cjs'), REEXEC_BIN(blob));
  v['J. snapshot via the bin (second node)'] = { check: [join(extra, 'reexec.cjs')], version: [join(extra, 'reexec.cjs')] };
  return v;
}

async function main() {
  const base = tempDir('cold-options');
  const tcp = await openTcpPort();
  try {
    log('building the variants');
    const variants = await buildVariants(base);
    const recipe = oneDependencyRecipe(base, 'cold-options', `tcp: 127.0.0.1:${tcp.port}`);
    const jobs = [
      { id: 'node -e 0', argv: [NODE, ['-e', '0']] },
      { id: 'wait-port', argv: [NODE, [WAIT_PORT, `127.0.0.1:${tcp.port}`]] },
    ];
    for (const [name, v] of Object.entries(variants)) {
      if (v.version) jobs.push({ id: `${name} · --version`, argv: [NODE, [...v.version, '--version']] });
      if (v.check) jobs.push({ id: `${name} · check`, argv: [NODE, [...v.check, 'check', recipe]] });
    }
    const loadavgAtStart = os.loadavg().map((l) => Math.round(l * 100) / 100);
    log(`${jobs.length} commands × ${trials} trials, seed ${seed}, load ${loadavgAtStart.join(' ')}`);
    const { rows, samples } = await measureCold(jobs, { trials, random: rng(seed), dir: base, floorId: 'node -e 0', log, label: 'cold-options' });
    const machine = {
      date: new Date().toISOString(),
      nproc: os.availableParallelism(),
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      node: process.version,
      loadavgAtStart,
      loadavgAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100),
      durationS: Math.round((performance.now() - t0) / 100) / 10,
    };
    process.stdout.write(render(machine, rows));
    if (!values['no-save']) {
      const text = `${JSON.stringify({ machine, plan: { trials, seed }, rows, samples }, null, 2)}\n`;
      const dir = join(BENCH, 'results');
      mkdirSync(dir, { recursive: true });
      const dated = `cold-options-${machine.date.replace(/[:]/g, '-').replace(/\..*$/, '')}.json`;
      writeFileSync(join(dir, 'cold-options-latest.json'), text);
      writeFileSync(join(dir, dated), text);
      log(`saved bench/results/cold-options-latest.json and bench/results/${dated}`);
    }
  } finally {
    await tcp.close();
    await removeDir(base);
  }
}

function render(machine, rows) {
  const f = (v) => (v === null || v === undefined ? '—' : String(Math.round(v)));
  const mp = (s) => (s?.n ? `${f(s.median)} (${f(s.p90)})` : '—');
  const waitPort = rows.find((r) => r.id === 'wait-port');
  const header = ['command', 'wall med (p90)', '− node med (p90)', '× node', 'vs wait-port', 'CPU med', 'errors'];
  const body = rows.map((r) => [r.id, mp(r.wall), mp(r.overFloor), r.xFloor == null ? '—' : `${r.xFloor.toFixed(2)}×`, waitPort?.wall.median ? `${(r.wall.median / waitPort.wall.median).toFixed(2)}×` : '—', f(r.cpu.median), String(r.failures)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const floor = rows.find((r) => r.id === 'node -e 0').wall;
  return [
    `cold-start options · ${machine.date} · ${machine.nproc} × ${machine.cpuModel} · node ${machine.node} · load ${machine.loadavgAtStart.join('/')} → ${machine.loadavgAtEnd.join('/')} · ${machine.durationS} s`,
    `ms, ${trials} trials in a random order per trial; − node = minus \`node -e 0\` in the same trial (its median: ${f(floor.median)} ms)`,
    '',
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
    '',
  ].join('\n');
}

main()
  .catch((error) => {
    process.stderr.write(`cold-options: ${error?.stack ?? error}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanupAll());
