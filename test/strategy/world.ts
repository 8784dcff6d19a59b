// The worlds the strategy tests run in: slots (or instances) of the fixture service started the way production
// already runs them, behind a real HAProxy with a state file, the recipes that drive them, our own bounded load
// through the load balancer, and a kill -9 at the moment the dead run's journal shows a given record.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect } from 'vitest';
import { freePort, MARKER_VAR, sandboxPerTest, summaryOf, type CliResult, type RunningCli, type Sandbox } from '../support/sandbox.js';
import { startHaproxy, stopAllLbs, type HaproxyHandle } from '../support/lb.js';
import { startLoad, type LoadReport } from '../support/load.js';
import { parseStat } from '../../src/traffic/haproxy.js';

export const HAVE_HAPROXY = spawnSync('haproxy', ['-v']).status === 0;
export const HAVE_NGINX = spawnSync('nginx', ['-v']).status === 0;
export const underCi = process.env.CI === 'true';

export type Setup = (releases?: Parameters<ReturnType<typeof sandboxPerTest>>[0]) => Promise<Sandbox>;

/** One sandbox per test; after each, its slots and load balancers stop before the sandbox checks for leftovers. */
export function strategySandbox(): Setup {
  const makeSandbox = sandboxPerTest();
  let current: Sandbox | null = null;
  // hooks run last-registered first: this one before sandboxPerTest's
  afterEach(async () => {
    if (current) await stopSlots(current);
    current = null;
    await stopAllLbs();
  });
  return async (releases) => (current = await makeSandbox(releases));
}

/** SIGTERM every slot process named in run/*.pid (only pids carrying this sandbox's marker), then wait for them. */
async function stopSlots(s: Sandbox): Promise<void> {
  const dir = join(s.dir, 'run');
  const pids = readdirSync(dir)
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number(readFileSync(join(dir, f), 'utf8').trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0 && s.processesMarked().includes(pid));
  for (const pid of pids) {
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
    }
  }
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && pids.some((p) => alive(p))) await new Promise((r) => setTimeout(r, 20));
  for (const pid of pids.filter((p) => alive(p))) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

export type Summary = {
  exitCode: number;
  outcome: string;
  description: string;
  warnings: string[];
  previousRelease: string | null;
  targetRelease: string | null;
  journal: string;
  timeline: Array<{ phase: string; durationMs: number; result: string; detail?: string }>;
};
export const summary = (r: CliResult) => summaryOf(r).summary as unknown as Summary;
export const phaseOf = (r: CliResult, phase: string) => summary(r).timeline.find((t) => t.phase === phase);

export interface Slot {
  name: string;
  port: number;
}

/** Start one slot's process the way production already runs it: from its link, pid to run/<slot>.pid. */
export async function startSlot(s: Sandbox, slot: Slot, release: string): Promise<number> {
  const link = join(s.dir, 'slots', slot.name);
  mkdirSync(join(s.dir, 'slots'), { recursive: true });
  if (!existsSync(link)) symlinkSync(join(s.dir, 'releases', release), link);
  const r = spawnSync('sh', ['-c', `cd ${link} && PORT=${slot.port} WARMUP_MS=0 ${MARKER_VAR}='${s.marker}' setsid ${process.execPath} server.mjs >/dev/null 2>&1 & echo $!`], { encoding: 'utf8' });
  const pid = Number(r.stdout.trim());
  writeFileSync(join(s.dir, 'run', `${slot.name}.pid`), `${pid}\n`);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const probe = spawnSync('curl', ['-fsS', '--max-time', '1', `http://127.0.0.1:${slot.port}/healthz`], { encoding: 'utf8' });
    if (probe.status === 0) return pid;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`slot ${slot.name} did not come up`);
}

export function slotPid(s: Sandbox, slot: string): number | null {
  try {
    return Number(readFileSync(join(s.dir, 'run', `${slot}.pid`), 'utf8').trim());
  } catch {
    return null;
  }
}

export function alive(pid: number | null): boolean {
  if (!pid) return false;
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}

/** What /healthz of a slot answers now ("ok v1 PID"), null when nothing answers. */
export function slotHealth(port: number): string | null {
  const probe = spawnSync('curl', ['-fsS', '--max-time', '1', `http://127.0.0.1:${port}/healthz`], { encoding: 'utf8' });
  return probe.status === 0 ? probe.stdout.trim() : null;
}

export const SERVICE = (s: Sandbox) =>
  [
    'start:',
    `  spawn: ["${process.execPath}", "server.mjs"]`,
    `  cwd: ${s.dir}/slots/\${SAFE_RESTART_SLOT}`,
    `  pidfile: ${s.dir}/run/\${SAFE_RESTART_SLOT}.pid`,
    `  log: ${s.dir}/log/\${SAFE_RESTART_SLOT}.log`,
    '  env: { PORT: "${SAFE_RESTART_PORT}", WARMUP_MS: "200" }',
    'stop:',
    '  signal: SIGTERM',
    `  pidfile: ${s.dir}/run/\${SAFE_RESTART_SLOT}.pid`,
    '  grace: 3s',
  ].join('\n');

/** What every recipe here starts with: its name, quick check timing, and the release links. */
export const recipeHead = (s: Sandbox): string[] => [
  'version: 1',
  'name: svc',
  'defaults: { interval: 50ms, attempt_timeout: 1s, timeout: 10s }',
  'release:',
  `  symlink: ${s.dir}/current`,
  `  releases_dir: ${s.dir}/releases`,
];

export const GATES = '  - name: healthz\n    http: { url: "http://127.0.0.1:${SAFE_RESTART_PORT}/healthz", body: "ok ${SAFE_RESTART_RELEASE} " }\n    success_threshold: 2\n    timeout: 4s';

/** A recipe of recipeHead, the given `strategy:` lines, SERVICE and GATES, written to DIR/NAME; returns its path. */
export function writeStrategyRecipe(s: Sandbox, name: string, strategy: string[]): string {
  const yaml = [...recipeHead(s), 'strategy:', ...strategy, SERVICE(s), 'gates:', GATES].join('\n');
  const file = join(s.dir, name);
  writeFileSync(file, `${yaml}\n`);
  return file;
}

export function bgRecipe(s: Sandbox, lb: HaproxyHandle, blue: Slot, green: Slot, extra = '', drain = '    drain: { timeout: 5s, on_timeout: shutdown }'): string {
  return writeStrategyRecipe(s, 'bg.yaml', [
    '  blue_green:',
    `    slots: { blue: { port: ${blue.port} }, green: { port: ${green.port} } }`,
    '    traffic:',
    `      haproxy: { socket: ${lb.adminSocket}, backend: ${lb.backend}, servers: { blue: blue, green: green }, state_file: ${lb.stateFile} }`,
    drain,
    extra,
  ]);
}

/** Run the CLI while our load goes through the load balancer; the load stops when the run has ended. */
export async function underLoad(s: Sandbox, port: number, args: string[], mode: 'mixed' | 'new' = 'mixed'): Promise<{ r: CliResult; load: LoadReport }> {
  const load = startLoad({ url: `http://127.0.0.1:${port}/`, rate: 200, mode, maxDurationMs: 60_000, timeoutMs: 2_000 });
  // traffic before the run begins, so the run happens under load
  await new Promise((res) => setTimeout(res, 300));
  const r = await s.cli(args);
  await new Promise((res) => setTimeout(res, 300));
  return { r, load: await load.stop() };
}

export function zeroFailed(load: LoadReport): void {
  expect(load.sent).toBeGreaterThan(100);
  expect({ failed: load.failed, byKind: load.byKind, first: load.failures.slice(0, 3) }).toEqual({
    failed: 0,
    byKind: { status5xx: 0, status4xx: 0, otherStatus: 0, reset: 0, refused: 0, timeout: 0, other: 0 },
    first: [],
  });
}

/** blue live on v1, green idle (disabled) behind a fresh HAProxy with a state file. */
export async function blueGreenWorld(setup: Setup, releases: Parameters<Setup>[0] = { v1: {}, v2: {} }) {
  const s = await setup(releases);
  const blue = { name: 'blue', port: await freePort() };
  const green = { name: 'green', port: await freePort() };
  const bluePid = await startSlot(s, blue, 'v1');
  const front = await freePort();
  const lbDir = join(s.dir, 'lb');
  mkdirSync(lbDir);
  const lb = await startHaproxy({ dir: lbDir, port: front, servers: { blue: blue.port, green: green.port }, disabled: ['green'], stateFile: true });
  return { s, blue, green, bluePid, lb, front };
}

/** Instances a, b, c on v1, all in rotation behind a fresh HAProxy with a state file, and the rolling recipe. */
export async function rollingWorld(setup: Setup, releases: Parameters<Setup>[0], extra = '') {
  const s = await setup(releases);
  const instances = [
    { name: 'a', port: await freePort() },
    { name: 'b', port: await freePort() },
    { name: 'c', port: await freePort() },
  ];
  const pids: number[] = [];
  for (const i of instances) pids.push(await startSlot(s, i, 'v1'));
  const front = await freePort();
  const lbDir = join(s.dir, 'lb');
  mkdirSync(lbDir);
  const lb = await startHaproxy({ dir: lbDir, port: front, servers: Object.fromEntries(instances.map((i) => [i.name, i.port])), stateFile: true });
  const file = writeStrategyRecipe(s, 'rolling.yaml', [
    '  rolling:',
    `    instances: [${instances.map((i) => `{ name: ${i.name}, port: ${i.port} }`).join(', ')}]`,
    '    traffic:',
    `      haproxy: { socket: ${lb.adminSocket}, backend: ${lb.backend}, state_file: ${lb.stateFile} }`,
    '    drain: { timeout: 5s }',
    extra,
  ]);
  return { s, instances, pids, lb, front, file };
}

/** Every server of the backend as HAProxy's `show stat` says now: name → status (UP, DRAIN, MAINT, DOWN …). */
export async function lbStatus(lb: HaproxyHandle): Promise<Record<string, string>> {
  const rows = parseStat(await lb.command('show stat')).filter((r) => r.pxname === lb.backend && r.svname !== 'BACKEND' && r.svname !== 'FRONTEND');
  return Object.fromEntries(rows.map((r) => [r.svname as string, r.status as string]));
}

export type JournalLine = Record<string, unknown> & { type: string; phase?: string; action?: string; ok?: boolean; status?: string };

/** The records of a journal so far (default: the sandbox's first, the only one while the first run runs); a torn last line is left out. */
export function journalSoFar(s: Sandbox, file: string | undefined = s.journalFiles()[0]): JournalLine[] {
  if (!file) return [];
  const lines: JournalLine[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    try {
      if (line.trim()) lines.push(JSON.parse(line) as JournalLine);
    } catch {
      // being written
    }
  }
  return lines;
}

/**
 * kill -9 of a running safe-restart the moment its journal shows a record matching `at` (polled every few ms; the
 * record is fsynced before the step it announces goes on). Resolves once it has exited, with the records it left.
 */
export async function killWhenJournal(s: Sandbox, run: RunningCli, at: (r: JournalLine, all: JournalLine[]) => boolean, timeoutMs = 30_000): Promise<JournalLine[]> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void run.done.then(() => (exited = true));
  for (;;) {
    const records = journalSoFar(s);
    if (records.some((r) => at(r, records))) break;
    if (exited) throw new Error(`the run ended before its journal showed the record to be killed at:\n${records.map((r) => JSON.stringify(r)).join('\n').slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`the journal did not show the record to be killed at within ${timeoutMs}ms`);
    await new Promise((res) => setTimeout(res, 3));
  }
  run.child.kill('SIGKILL');
  const done = await run.done;
  expect(done.signal, 'safe-restart was killed, it did not end on its own').toBe('SIGKILL');
  return journalSoFar(s);
}

/** Every intent of a journal has its done: no load-balancer change (or any other) was left unrecorded. */
export function openIntents(records: JournalLine[]): string[] {
  const open = new Map<string, number>();
  for (const r of records) {
    const key = `${r.phase}/${r.action}`;
    if (r.type === 'intent') open.set(key, (open.get(key) ?? 0) + 1);
    if (r.type === 'done') open.set(key, (open.get(key) ?? 1) - 1);
  }
  return [...open.entries()].filter(([, n]) => n > 0).map(([k]) => k);
}

/**
 * Samples HAProxy's view every few ms until stopped: the most servers of the backend seen out of rotation (not UP)
 * at one time, and when that was. A sample can miss a short window, never invent one.
 */
export function watchOutOfRotation(lb: HaproxyHandle, everyMs = 10): { stop(): Promise<{ samples: number; maxOut: number; worst: Record<string, string> }> } {
  let stopped = false;
  let samples = 0;
  let maxOut = 0;
  let worst: Record<string, string> = {};
  const loop = (async () => {
    while (!stopped) {
      const now = await lbStatus(lb).catch(() => null);
      if (now) {
        samples++;
        const out = Object.values(now).filter((st) => !st.startsWith('UP')).length;
        if (out > maxOut) {
          maxOut = out;
          worst = now;
        }
      }
      await new Promise((res) => setTimeout(res, everyMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { samples, maxOut, worst };
    },
  };
}
