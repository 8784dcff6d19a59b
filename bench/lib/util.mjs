// Shared harness pieces: clock, statistics, child processes we own (each in its own process group),
// temporary directories, free ports, and the cleanup that takes down everything this run started.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BENCH = join(ROOT, 'bench');
export const NODE = process.execPath;
/** The CLI under test; snapshotBuild() points it at a private copy of the build. */
export let SR = join(ROOT, 'bin', 'safe-restart.js');
export const WAIT_ON = join(ROOT, 'node_modules', 'wait-on', 'bin', 'wait-on');
export const WAIT_PORT = join(ROOT, 'node_modules', 'wait-port', 'bin', 'wait-port.js');
export const SERVICE = join(BENCH, 'fixtures', 'service.mjs');

/** Wall-clock milliseconds with sub-ms precision, comparable with Date.now()-based timestamps of other processes. */
export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

// A small seeded PRNG (mulberry32) so a run's random moments and orders can be reproduced with --seed.
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle(list, random) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Nearest-rank percentile of the finite numbers in `values`. */
export function percentile(values, p) {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * xs.length));
  return xs[rank - 1];
}

export function summarize(values) {
  const xs = values.filter((v) => Number.isFinite(v));
  const r = (v) => (v === null ? null : Math.round(v * 10) / 10);
  return {
    n: xs.length,
    median: r(percentile(xs, 50)),
    p90: r(percentile(xs, 90)),
    max: xs.length ? r(Math.max(...xs)) : null,
    min: xs.length ? r(Math.min(...xs)) : null,
  };
}

export async function freePort() {
  const server = createServer();
  await new Promise((r, j) => server.once('error', j).listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(() => r()));
  return port;
}

// Ports for things that open *later* come from below the ephemeral range: a port merely found free in that
// range can be taken meanwhile as the source port of some outgoing connection (500 of them in the scale suite).
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
})();
const reserved = new Set();

/** A port below the ephemeral range that is free now and not handed out before by this run. */
export async function freeFixedPort() {
  const low = Math.max(1024, Math.min(10_000, EPHEMERAL_LOW - 5000));
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (EPHEMERAL_LOW - low));
    if (reserved.has(port)) continue;
    const server = createServer();
    const ok = await new Promise((r) => {
      server.once('error', () => r(false));
      server.listen(port, '127.0.0.1', () => r(true));
    });
    if (!ok) continue;
    await new Promise((r) => server.close(() => r()));
    reserved.add(port);
    return port;
  }
  throw new Error(`no free port found below ${EPHEMERAL_LOW}`);
}

const ownedGroups = new Set();
const ownedDirs = new Set();

export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), `sr-bench-${prefix}-`));
  ownedDirs.add(dir);
  return dir;
}

/**
 * Starts a command in its own process group and timestamps it: `startedAt` just before spawn,
 * `exitedAt` when the harness sees it exit. The child is SIGKILLed (whole group) after `timeoutMs`.
 */
export function run(cmd, args, { cwd, env, timeoutMs = 30_000, stdout = 'ignore', stderr = 'pipe', capture = false } = {}) {
  const startedAt = now();
  const child = spawn(cmd, args, {
    cwd,
    env: env ? { ...process.env, ...env } : process.env,
    detached: true,
    stdio: ['ignore', capture ? 'pipe' : stdout, stderr],
  });
  ownedGroups.add(child.pid);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (c) => (out += c));
  child.stderr?.setEncoding('utf8').on('data', (c) => (err = (err + c).slice(-8000)));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid);
  }, timeoutMs);
  const done = new Promise((resolveDone) => {
    let exitedAt = null;
    let code = null;
    let signal = null;
    child.on('exit', (c, s) => {
      exitedAt = now();
      code = c;
      signal = s;
      clearTimeout(timer);
      // reaped: its pid may be reused from now on, so it is no longer ours to signal
      ownedGroups.delete(child.pid);
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      ownedGroups.delete(child.pid);
      resolveDone({ startedAt, exitedAt: now(), wallMs: now() - startedAt, code: null, signal: null, timedOut, stdout: out, stderr: `${err}${error.message}`, error });
    });
    child.on('close', () => {
      resolveDone({ startedAt, exitedAt, wallMs: exitedAt - startedAt, code, signal, timedOut, stdout: out, stderr: err });
    });
  });
  return { child, pid: child.pid, startedAt, done };
}

export function killGroup(pgid, signal = 'SIGKILL') {
  if (!pgid) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // group already gone
  }
}

/** Processes whose working directory lies inside `dir` (a directory this run created, so they are ours). */
export function processesInside(dir) {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`).startsWith(dir)) found.push(Number(entry));
    } catch {
      // gone, or not readable
    }
  }
  return found;
}

function pgidOf(pid) {
  try {
    // field 5 of /proc/PID/stat, after the parenthesised command name
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return null;
  }
}

/** Kills what still runs inside `dir` (by its group when it leads one), waits (bounded) until gone. */
export async function killInside(dir) {
  const left = processesInside(dir);
  for (const pid of left) {
    if (pgidOf(pid) === pid) killGroup(pid);
    else {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  const deadline = Date.now() + 5_000;
  while (processesInside(dir).length > 0 && Date.now() < deadline) await sleep(20);
  return left;
}

export async function removeDir(dir) {
  await killInside(dir);
  rmSync(dir, { recursive: true, force: true });
  ownedDirs.delete(dir);
}

export async function cleanupAll() {
  for (const pgid of ownedGroups) killGroup(pgid);
  ownedGroups.clear();
  for (const dir of [...ownedDirs]) await removeDir(dir);
}

/**
 * Copies the built CLI (bin/, dist/, recipes/, package.json) to a temp dir, with node_modules linked, and
 * benchmarks that copy: a rebuild of the working tree during the run then cannot change what is measured.
 */
export function snapshotBuild() {
  const dir = tempDir('build');
  for (const entry of ['bin', 'dist', 'recipes', 'package.json']) {
    if (existsSync(join(ROOT, entry))) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  SR = join(dir, 'bin', 'safe-restart.js');
  return dir;
}

export function copyService(toDir) {
  cpSync(SERVICE, join(toDir, 'service.mjs'));
}

/** Peak RSS (kB) and CPU seconds as /usr/bin/time -f '%M %U %S' wrote them. */
export function readTimeFile(path) {
  try {
    const last = readFileSync(path, 'utf8').trim().split('\n').pop() ?? '';
    const [rssKb, user, sys] = last.split(/\s+/).map(Number);
    return { rssKb, userS: user, sysS: sys, cpuMs: Math.round((user + sys) * 1000) };
  } catch {
    return null;
  }
}
