#!/usr/bin/env node
// Summarises V8 .cpuprofile files (from `node --cpu-prof`): self time per package / file and the hottest
// functions, averaged over the files given. Usage: node bench/profile-summary.mjs [--top N] FILE|DIR...
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '15' } }, allowPositionals: true });
const top = Number(values.top);
const files = positionals.flatMap((p) => (statSync(p).isDirectory() ? readdirSync(p).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(p, f)) : [p]));
if (files.length === 0) {
  process.stderr.write('usage: node bench/profile-summary.mjs [--top N] FILE.cpuprofile|DIR ...\n');
  process.exit(64);
}

const byPackage = new Map();
const byFile = new Map();
const byFunction = new Map();
let totalMs = 0;
const add = (map, key, ms) => map.set(key, (map.get(key) ?? 0) + ms);

function packageOf(url) {
  if (!url) return '(native / vm)';
  if (url.startsWith('node:')) return 'node: built-ins';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.includes('/dist/')) return 'safe-restart dist/';
  return url.replace(/^file:\/\//, '');
}

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  for (let i = 0; i < profile.samples.length; i++) add(selfUs, profile.samples[i], profile.timeDeltas[i] ?? 0);
  for (const [id, us] of selfUs) {
    const n = nodes.get(id);
    const ms = us / 1000;
    const { url, functionName, lineNumber } = n.callFrame;
    totalMs += ms;
    const special = functionName.startsWith('(') ? functionName : null;
    add(byPackage, special ?? packageOf(url), ms);
    add(byFile, special ?? (url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/') || '(native)'), ms);
    add(byFunction, `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`, ms);
  }
}

const n = files.length;
const show = (title, map) => {
  process.stdout.write(`\n${title} (self ms, mean of ${n} profile${n === 1 ? '' : 's'})\n`);
  for (const [k, v] of [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${(v / n).toFixed(1).padStart(8)}  ${((100 * v) / totalMs).toFixed(1).padStart(5)} %  ${k}\n`);
  }
};
process.stdout.write(`total sampled: ${(totalMs / n).toFixed(1)} ms per profile\n`);
show('by package', byPackage);
show('by file', byFile);
show('by function', byFunction);
