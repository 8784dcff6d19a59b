#!/usr/bin/env node
// A self-contained package of the CLI for hosts that cannot reach an npm registry: `npm pack` of this tree with
// its production dependencies bundled (package-lock versions), so that
//   npm install --global --offline --prefix /opt/safe-restart safe-restart-VERSION-bundle.tgz
// installs it with nothing fetched. The Ansible role safe_restart_install takes it as safe_restart_install_src.
// Usage: node scripts/pack-bundle.mjs [DEST_DIR]   (default: the current directory; prints the tarball's path)
// The tree must be built (dist/, bin/): `npm ci` does that.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const dest = resolve(process.argv[2] ?? '.');
if (!existsSync(join(ROOT, 'dist')) || !existsSync(join(ROOT, 'bin', 'safe-restart.js'))) {
  process.stderr.write('pack-bundle: build first (npm ci or npm run build): dist/ or bin/safe-restart.js is missing\n');
  process.exit(1);
}

const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
const work = mkdtempSync(join(tmpdir(), 'sr-bundle-'));
try {
  // what `npm pack` would publish (package.json "files"), without rebuilding: the tree is already built
  const plain = npm(['pack', '--ignore-scripts', '--silent', '--pack-destination', work], ROOT).split('\n').at(-1);
  execFileSync('tar', ['xzf', join(work, plain), '-C', work]);
  const pkgDir = join(work, 'package');
  copyFileSync(join(ROOT, 'package-lock.json'), join(pkgDir, 'package-lock.json'));
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  pkg.bundleDependencies = Object.keys(pkg.dependencies ?? {});
  // an installed package is built already: its prepare (the build) has nothing to do there
  delete pkg.scripts?.prepare;
  writeFileSync(join(pkgDir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  // the locked production dependencies, from npm's cache when `npm ci` filled it
  npm(['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], pkgDir);
  const bundled = npm(['pack', '--ignore-scripts', '--silent', '--pack-destination', work], pkgDir).split('\n').at(-1);
  const out = join(dest, bundled.replace(/\.tgz$/, '-bundle.tgz'));
  copyFileSync(join(work, bundled), out);
  process.stdout.write(`${out}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
