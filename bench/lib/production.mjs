// A throwaway "production" in a temp dir: releases of the bench service, a `current` symlink, pidfile, log,
// and the safe-restart recipe that manages it. The service writes timestamped lifecycle lines to its log.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { NODE, copyService, freePort, sleep, tempDir } from './util.mjs';

export const WARMUP_MS = 400;

export async function createProduction(name, { releases = { v1: {}, v2: {} }, current = 'v1', depPort, warmupMs = WARMUP_MS, gate = {} } = {}) {
  const dir = tempDir(name);
  const port = await freePort();
  for (const sub of ['run', 'log', 'releases', 'state']) mkdirSync(join(dir, sub));
  for (const [id, flags] of Object.entries(releases)) {
    const rel = join(dir, 'releases', id);
    mkdirSync(rel);
    copyService(rel);
    writeFileSync(join(rel, 'RELEASE'), id);
    if (flags.broken) writeFileSync(join(rel, 'BROKEN'), '1');
  }
  symlinkSync(join(dir, 'releases', current), join(dir, 'current'));
  const p = {
    dir,
    port,
    depPort,
    warmupMs,
    pidfile: join(dir, 'run', 'web.pid'),
    logFile: join(dir, 'log', 'web.log'),
    stateDir: join(dir, 'state'),
    env: { PORT: String(port), WARMUP_MS: String(warmupMs), NODE },
  };
  p.recipe = writeRecipe(p, gate);
  return p;
}

function writeRecipe(p, gate) {
  const file = join(p.dir, 'recipe.yaml');
  const yaml = `version: 1
name: bench-web
dependencies:
  - name: db
    tcp: 127.0.0.1:${p.depPort}
release:
  symlink: ${p.dir}/current
  releases_dir: ${p.dir}/releases
stop:
  signal: SIGTERM
  pidfile: ${p.pidfile}
  grace: 5s
start:
  spawn: ["${NODE}", "service.mjs"]
  cwd: ${p.dir}/current
  pidfile: ${p.pidfile}
  log: ${p.logFile}
  env:
    PORT: "${p.port}"
    WARMUP_MS: "${p.warmupMs}"
gates:
  - name: healthz
    http: http://127.0.0.1:${p.port}/healthz
    timeout: ${gate.timeout ?? '10s'}
`;
  writeFileSync(file, yaml);
  return file;
}

/** Starts the current release the way production already runs it (no restart tool involved). */
export async function startCurrent(p) {
  const out = openSync(p.logFile, 'a');
  const child = spawn(NODE, ['service.mjs'], { cwd: join(p.dir, 'current'), detached: true, stdio: ['ignore', out, out], env: { ...process.env, ...p.env } });
  closeSync(out);
  child.unref();
  writeFileSync(p.pidfile, `${child.pid}\n`);
  await waitHealthy(p.port);
  return child.pid;
}

export function health(port, timeoutMs = 500) {
  return new Promise((resolveHealth) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolveHealth(res.statusCode));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolveHealth(null));
  });
}

export async function waitHealthy(port, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await health(port)) === 200) return true;
    await sleep(20);
  }
  throw new Error(`service on 127.0.0.1:${port} not healthy after ${timeoutMs} ms`);
}

/** The service's lifecycle lines from its log: [{ ev, t, pid, release }]. */
export function serviceEvents(p) {
  let text = '';
  try {
    text = readFileSync(p.logFile, 'utf8');
  } catch {
    return [];
  }
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line);
      if (e.bench === 'service') out.push(e);
    } catch {
      // not ours
    }
  }
  return out;
}

/** Stop time of `oldPid` (SIGTERM received → exit) and warm-up of the first (or last) process booted after `after`. */
export function lifecycle(p, oldPid, after, which = 'last') {
  const ev = serviceEvents(p);
  const find = (pid, name) => ev.find((e) => e.pid === pid && e.ev === name)?.t ?? null;
  const sigterm = find(oldPid, 'sigterm');
  const exit = find(oldPid, 'exit');
  const booted = ev.filter((e) => e.ev === 'boot' && e.t >= after - 50 && e.pid !== oldPid);
  const next = (which === 'first' ? booted[0] : booted.at(-1)) ?? null;
  const listening = next ? find(next.pid, 'listening') : null;
  return {
    oldPid,
    newPid: next?.pid ?? null,
    newRelease: next?.release ?? null,
    sigtermAt: sigterm,
    exitAt: exit,
    bootAt: next?.t ?? null,
    listeningAt: listening,
    stopMs: sigterm !== null && exit !== null ? round(exit - sigterm) : null,
    warmupMs: next && listening !== null ? round(listening - next.t) : null,
  };
}

const round = (v) => Math.round(v * 10) / 10;

/** Newline-delimited JSON events of a `--json` run, with `at` = epoch ms. */
export function parseEvents(stdout) {
  const out = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line);
      e.at = typeof e.time === 'number' ? e.time : Date.parse(e.time);
      out.push(e);
    } catch {
      // not JSON
    }
  }
  return out;
}
