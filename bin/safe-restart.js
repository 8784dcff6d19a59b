#!/usr/bin/env node
// The bin. CommonJS (bin/package.json): an ES-module entry costs every start ~4 ms of loader set-up.
// It runs dist/bundle/cli.cjs, built by `npm run build` / `prepare` (scripts/build-cli.mjs), with the V8
// code cache written beside it at build time when that cache was made for this very bundle, Node and
// architecture; any other cache, or none, only means compiling from source as usual.
'use strict';
const { readFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

const BUNDLE = join(__dirname, '..', 'dist', 'bundle', 'cli.cjs');
const CACHE = `${BUNDLE}.cache`;

/** The cache file starts with this line, then V8's bytes. `buildId` is the bundle's first line. */
function cacheHeader(buildId) {
  return Buffer.from(`${buildId} ${process.version} ${process.arch}\n`);
}

function readCache(header) {
  let bytes;
  try {
    bytes = readFileSync(CACHE);
  } catch {
    return { status: 'absent' };
  }
  if (bytes.length <= header.length || !bytes.subarray(0, header.length).equals(header)) return { status: 'stale' };
  return { status: 'found', data: bytes.subarray(header.length) };
}

/**
 * Compiles and runs the bundle; `cache` says what became of the code cache: accepted, rejected (V8 refused it),
 * stale (another build, Node or arch), absent, or unused. scripts/write-code-cache.mjs loads it the same way.
 */
function loadBundle({ useCache = true } = {}) {
  const vm = require('node:vm');
  const Module = require('node:module');
  const source = readFileSync(BUNDLE, 'utf8');
  const header = cacheHeader(source.slice(0, source.indexOf('\n')));
  const found = useCache ? readCache(header) : { status: 'unused' };
  const script = new vm.Script(Module.wrap(source), { filename: BUNDLE, cachedData: found.data });
  const cache = found.data ? (script.cachedDataRejected ? 'rejected' : 'accepted') : found.status;
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, Module.createRequire(BUNDLE), mod, BUNDLE, dirname(BUNDLE));
  return { main: mod.exports.main, script, cache, cacheFile: CACHE, cacheHeader: header };
}

function run(argv) {
  // answered here, without loading the bundle: what main() prints for these three
  if (argv[0] === '--version' || argv[0] === '-V' || argv[0] === 'version') {
    process.stdout.write(`${JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')).version}\n`);
    return;
  }
  loadBundle()
    .main(argv)
    .then(
      (code) => {
        process.exitCode = code;
      },
      (error) => {
        process.stderr.write(`safe-restart: internal error: ${error?.stack ?? error}\n`);
        process.exitCode = 70;
      },
    );
}

module.exports = { loadBundle };
if (require.main === module) run(process.argv.slice(2));
