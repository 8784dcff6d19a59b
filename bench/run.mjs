#!/usr/bin/env node
// `npm run bench`: safe-restart against its peers, on this machine, in one run. Prints a table, checks the
// targets from the performance issue, and saves everything to bench/results/latest.json (+ a dated copy).
// Usage: node bench/run.mjs [--trials N] [--quick] [--only NAME[,NAME]] [--seed N] [--no-save]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ansible } from './suites/ansible.mjs';
import { cold } from './suites/cold.mjs';
import { detect } from './suites/detect.mjs';
import { restart } from './suites/restart.mjs';
import { rollback } from './suites/rollback.mjs';
import { idleCpu, scale } from './suites/scale.mjs';
import { strategies } from './suites/strategies.mjs';
import { evaluateTargets } from './lib/targets-check.mjs';
import { printReport } from './lib/report.mjs';
import { BENCH, ROOT, SR, cleanupAll, rng, snapshotBuild } from './lib/util.mjs';

const SUITES = ['detect', 'cold', 'restart', 'rollback', 'scale', 'idle', 'strategies', 'ansible'];
// system packages each suite needs (Debian names), checked before anything starts
const NEEDS = {
  detect: { nc: 'netcat-openbsd', curl: 'curl' },
  cold: { nc: 'netcat-openbsd', curl: 'curl' },
  restart: { nc: 'netcat-openbsd', setsid: 'util-linux', supervisord: 'supervisor', supervisorctl: 'supervisor' },
  rollback: {},
  scale: { '/usr/bin/time': 'time' },
  idle: { '/usr/bin/time': 'time' },
  strategies: { haproxy: 'haproxy', nginx: 'nginx', bash: 'bash', setsid: 'util-linux' },
  // checks ansible-playbook, sshd and root itself, and is skipped (with a message) without them
  ansible: {},
};

const { values } = parseArgs({
  options: {
    trials: { type: 'string' },
    quick: { type: 'boolean', default: false },
    only: { type: 'string', multiple: true },
    seed: { type: 'string' },
    'no-save': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(`Usage: node bench/run.mjs [--trials N] [--quick] [--only NAME[,NAME]] [--seed N] [--no-save]
  --trials N   detection and cold-start trials (default 15); restart/rollback/strategies use N/3, scale N/5 (at least 1)
  --quick      1 trial of everything and a 2 s idle wait (CI smoke, < 2 min)
  --only NAME  run only these suites: ${SUITES.join(', ')}
  --seed N     seed of the random moments and orders (default: time-based; recorded in the results)
  --no-save    do not write bench/results/
`);
  process.exit(0);
}

const only = (values.only ?? []).flatMap((v) => v.split(',')).filter(Boolean);
const unknown = only.filter((s) => !SUITES.includes(s));
if (unknown.length) {
  process.stderr.write(`bench: unknown suite ${unknown.join(', ')}; suites: ${SUITES.join(', ')}\n`);
  process.exit(64);
}
const selected = only.length ? SUITES.filter((s) => only.includes(s)) : SUITES;
const trials = values.quick ? 1 : Math.max(1, Number(values.trials ?? 15));
if (!Number.isInteger(trials)) {
  process.stderr.write('bench: --trials must be a positive integer\n');
  process.exit(64);
}
const seed = Number(values.seed ?? Date.now() % 2 ** 31);
const random = rng(seed);
const log = (line) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1)}s] ${line}\n`);
const t0 = performance.now();

function missingPackages() {
  const missing = new Set();
  for (const suite of selected) {
    for (const [bin, pkg] of Object.entries(NEEDS[suite])) {
      const found = bin.startsWith('/') ? existsSync(bin) : ['/usr/bin', '/usr/sbin', '/bin', '/usr/local/bin'].some((d) => existsSync(join(d, bin)));
      if (!found) missing.add(pkg);
    }
  }
  return [...missing];
}

function version(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 }).trim().split('\n')[0];
  } catch (error) {
    return (error.stderr ?? '').toString().trim().split('\n')[0] || null;
  }
}

function machine() {
  const pkg = (name) => JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadavgAtStart: os.loadavg().map((v) => Math.round(v * 100) / 100),
    commit: version('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
    tools: {
      'safe-restart': version(process.execPath, [SR, '--version']),
      'wait-on': pkg('wait-on'),
      'wait-port': pkg('wait-port'),
      supervisord: version('supervisord', ['--version']),
      curl: version('curl', ['--version']),
      nc: existsSync('/usr/bin/nc') ? 'netcat-openbsd' : null,
      haproxy: version('haproxy', ['-v']),
      nginx: version('sh', ['-c', 'nginx -v 2>&1']),
    },
  };
}

// a harness bug must not leave services and temp dirs behind either
for (const ev of ['uncaughtException', 'unhandledRejection']) {
  process.on(ev, (error) => {
    process.stderr.write(`bench: ${ev}: ${error?.stack ?? error}\n`);
    cleanupAll().finally(() => process.exit(1));
  });
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`bench: ${sig} – stopping every process this run started\n`);
    cleanupAll().finally(() => process.exit(130));
  });
}

async function main() {
  const missing = missingPackages();
  if (missing.length) {
    process.stderr.write(`bench: missing system packages: ${missing.join(' ')}\n  install: apt-get install -y ${missing.join(' ')}\n`);
    return 1;
  }
  snapshotBuild();
  const probe = version(process.execPath, [SR, '--version']);
  if (!/^\d+\.\d+/.test(probe ?? '')) {
    process.stderr.write(`bench: the built CLI does not run (${probe}) – run \`npm run build\` first (npm run bench does)\n`);
    return 1;
  }
  const info = machine();
  const plan = {
    trials,
    restartTrials: values.quick ? 1 : Math.max(1, Math.round(trials / 3)),
    scaleTrials: values.quick ? 1 : Math.max(1, Math.round(trials / 5)),
    idleSeconds: values.quick ? 2 : 10,
    seed,
    quick: values.quick,
    suites: selected,
  };
  log(`bench: ${selected.join(', ')} · ${trials} trials · seed ${seed} · load ${info.loadavgAtStart.join(' ')}`);
  const results = {};
  const run = {
    detect: () => detect({ trials, random, log }),
    cold: () => cold({ trials, random, log }),
    restart: () => restart({ trials: plan.restartTrials, random, log }),
    rollback: () => rollback({ trials: plan.restartTrials, log }),
    scale: () => scale({ trials: plan.scaleTrials, random, log }),
    idle: () => idleCpu({ seconds: plan.idleSeconds, log }),
    strategies: () => strategies({ trials: plan.restartTrials, random, log }),
    ansible: () => ansible({ trials: plan.restartTrials, log }),
  };
  for (const suite of selected) {
    const started = performance.now();
    results[suite] = await run[suite]();
    results[suite].durationS = Math.round((performance.now() - started) / 100) / 10;
  }
  info.loadavgAtEnd = os.loadavg().map((v) => Math.round(v * 100) / 100);
  info.durationS = Math.round((performance.now() - t0) / 100) / 10;
  const targets = evaluateTargets(results);
  const doc = { machine: info, plan, targets, results };
  process.stdout.write(printReport(doc));
  if (!values['no-save']) {
    const dir = join(BENCH, 'results');
    mkdirSync(dir, { recursive: true });
    const text = `${JSON.stringify(doc, null, 2)}\n`;
    // a smoke run (--quick) or a partial one (--only) must not replace the full run's latest.json
    const partial = values.quick || only.length > 0;
    const latest = partial ? 'latest-partial.json' : 'latest.json';
    writeFileSync(join(dir, latest), text);
    const dated = `${info.date.replace(/[:]/g, '-').replace(/\..*$/, '')}${partial ? '-partial' : ''}.json`;
    writeFileSync(join(dir, dated), text);
    log(`saved bench/results/${latest} and bench/results/${dated}`);
  }
  return 0;
}

main()
  .then(
    (code) => (process.exitCode = code),
    (error) => {
      process.stderr.write(`bench: ${error?.stack ?? error}\n`);
      process.exitCode = 1;
    },
  )
  .finally(() => cleanupAll());
