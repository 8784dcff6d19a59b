// A throwaway production: releases of the fixture service, a symlink, a fake dependency, a
// state dir, and the real CLI. Cleans up every process it or the CLI started, by process group.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, expect } from 'vitest';
import { freePort } from './servers.js';
import { pathToFileURL } from 'node:url';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'bin', 'safe-restart.js');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'service');
const FAULT_FIXTURES = join(ROOT, 'test', 'fixtures', 'faults');
/** Every process the sandbox starts (and everything they start) carries this variable: the leak detector. */
export const MARKER_VAR = 'SR_TEST_SANDBOX';

export interface ReleaseFlags {
  broken?: boolean;
  failAfterMs?: number;
  ignoreTerm?: boolean;
  /** the process logs a FATAL line and exits 1 this long after it started */
  exitAfterMs?: number;
  /** / answers 500 while /healthz stays healthy: only the load balancer's 5xx count can tell */
  errorRoot?: boolean;
  /** /healthz answers after this many ms (a slower release, for baseline gates) */
  delayMs?: number;
  /** every Nth /healthz answers 503 (an error rate, for baseline gates) */
  errorEvery?: number;
}

export { freePort };

export interface CliResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  events: Array<Record<string, unknown>>;
}

export interface RunningCli {
  child: ChildProcess;
  /** resolves when a JSON event matching the predicate appears (requires --json) */
  waitForEvent(pred: (e: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  done: Promise<CliResult>;
}

export class Sandbox {
  readonly dir: string;
  readonly stateDir: string;
  readonly pidfile: string;
  port = 0;
  depPort = 0;
  private dependency: Server | null = null;
  private children: ChildProcess[] = [];
  /** Value of MARKER_VAR in the environment of everything this sandbox starts. */
  readonly marker: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'sr-run-'));
    this.marker = this.dir;
    this.stateDir = join(this.dir, 'state');
    this.pidfile = join(this.dir, 'run', 'svc.pid');
    mkdirSync(join(this.dir, 'run'));
    mkdirSync(join(this.dir, 'log'));
    mkdirSync(join(this.dir, 'releases'));
  }

  static async create(releases: Record<string, ReleaseFlags>, current?: string): Promise<Sandbox> {
    const s = new Sandbox();
    s.port = await freePort();
    s.depPort = await freePort();
    for (const [id, flags] of Object.entries(releases)) s.addRelease(id, flags);
    if (current) symlinkSync(join(s.dir, 'releases', current), join(s.dir, 'current'));
    return s;
  }

  addRelease(id: string, flags: ReleaseFlags = {}): void {
    const dir = join(this.dir, 'releases', id);
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(FIXTURE, 'server.mjs'), join(dir, 'server.mjs'));
    writeFileSync(join(dir, 'RELEASE'), id);
    if (flags.broken) writeFileSync(join(dir, 'BROKEN'), '1');
    if (flags.failAfterMs !== undefined) writeFileSync(join(dir, 'FAIL_AFTER_MS'), String(flags.failAfterMs));
    if (flags.ignoreTerm) writeFileSync(join(dir, 'IGNORE_TERM'), '1');
    if (flags.exitAfterMs !== undefined) writeFileSync(join(dir, 'EXIT_AFTER_MS'), String(flags.exitAfterMs));
    if (flags.errorRoot) writeFileSync(join(dir, 'ERROR_ROOT'), '1');
    if (flags.delayMs !== undefined) writeFileSync(join(dir, 'DELAY_MS'), String(flags.delayMs));
    if (flags.errorEvery !== undefined) writeFileSync(join(dir, 'ERROR_EVERY'), String(flags.errorEvery));
  }

  async startDependency(): Promise<void> {
    this.dependency = createServer((socket) => socket.end());
    await new Promise<void>((r) => this.dependency?.listen(this.depPort, '127.0.0.1', r));
  }

  async stopDependency(): Promise<void> {
    const d = this.dependency;
    this.dependency = null;
    if (d) await new Promise<void>((r) => d.close(() => r()));
  }

  /** The standard recipe with parts replaced: pass YAML snippets keyed by top-level key. */
  recipe(parts: Partial<Record<'dependencies' | 'verify' | 'stop' | 'start' | 'gates' | 'release' | 'rollback' | 'hooks' | 'extra', string>> = {}, name = 'svc'): string {
    const d = this.dir;
    const yaml = [
      'version: 1',
      `name: ${name}`,
      'defaults:',
      '  interval: 50ms',
      '  attempt_timeout: 1s',
      '  timeout: 10s',
      'dependencies:',
      parts.dependencies ?? `  - name: fake-db\n    tcp: 127.0.0.1:${this.depPort}\n    timeout: 2s`,
      ...(parts.verify ? ['verify:', parts.verify] : []),
      'release:',
      parts.release ?? `  symlink: ${d}/current\n  releases_dir: ${d}/releases`,
      'stop:',
      parts.stop ?? `  signal: SIGTERM\n  pidfile: ${this.pidfile}\n  grace: 3s`,
      'start:',
      parts.start ??
        `  spawn: ["${process.execPath}", "server.mjs"]\n  cwd: ${d}/current\n  pidfile: ${this.pidfile}\n  log: ${d}/log/svc.log\n  env:\n    PORT: "${this.port}"\n    WARMUP_MS: "100"`,
      'gates:',
      parts.gates ?? `  - name: healthz\n    http: http://127.0.0.1:${this.port}/healthz\n    success_threshold: 2\n    timeout: 3s`,
      ...(parts.rollback ? ['rollback:', parts.rollback] : []),
      ...(parts.hooks ? ['hooks:', parts.hooks] : []),
      ...(parts.extra ? [parts.extra] : []),
    ].join('\n');
    const file = join(d, `${name}.yaml`);
    writeFileSync(file, `${yaml}\n`);
    return file;
  }

  /** Start the current release the way "production" already runs it (no safe-restart involved). */
  async startCurrent(): Promise<number> {
    const cwd = join(this.dir, 'current');
    const child = spawn(process.execPath, ['server.mjs'], {
      cwd,
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, [MARKER_VAR]: this.marker, PORT: String(this.port), WARMUP_MS: '0' },
    });
    child.unref();
    const pid = child.pid as number;
    writeFileSync(this.pidfile, `${pid}\n`);
    await this.waitHealthy();
    return pid;
  }

  async health(): Promise<{ status: number; body: string } | null> {
    return new Promise((resolveHealth) => {
      const req = http.get({ host: '127.0.0.1', port: this.port, path: '/healthz', agent: false, timeout: 1000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolveHealth({ status: res.statusCode ?? 0, body }));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolveHealth(null));
    });
  }

  /** Poll /healthz until it answers 200 (bounded). */
  async waitHealthy(timeoutMs = 10_000): Promise<{ status: number; body: string }> {
    const deadline = Date.now() + timeoutMs;
    let last: { status: number; body: string } | null = null;
    while (Date.now() < deadline) {
      last = await this.health();
      if (last?.status === 200) return last;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`service on ${this.port} not healthy after ${timeoutMs}ms (last: ${JSON.stringify(last)})`);
  }

  pid(): number | null {
    try {
      const n = Number(readFileSync(this.pidfile, 'utf8').trim());
      return Number.isInteger(n) && n > 0 ? n : null;
    } catch {
      return null;
    }
  }

  currentRelease(): string | null {
    try {
      return readlinkSync(join(this.dir, 'current')).split('/').pop() ?? null;
    } catch {
      return null;
    }
  }

  journals(recipe = 'svc'): Array<Array<Record<string, unknown>>> {
    const runs = join(this.stateDir, recipe, 'runs');
    if (!existsSync(runs)) return [];
    return readdirSync(runs)
      .filter((f) => f.endsWith('.jsonl'))
      .sort()
      .map((f) =>
        readFileSync(join(runs, f), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      );
  }

  /** Start the real CLI. `--state-dir` is added for run/recover/check-like commands. */
  start(args: string[], opts: { env?: Record<string, string>; json?: boolean; stateDir?: string; fdReport?: string } = {}): RunningCli {
    // fdReport: preload a probe that writes the CLI's open fds at start and at exit to that file
    const probe = opts.fdReport ? ['--import', pathToFileURL(join(FAULT_FIXTURES, 'fd-probe.mjs')).href] : [];
    const full = [...probe, CLI, ...args, '--state-dir', opts.stateDir ?? this.stateDir, ...(opts.json === false ? [] : ['--json'])];
    const env = { ...process.env, [MARKER_VAR]: this.marker, ...(opts.fdReport ? { SR_TEST_FD_REPORT: opts.fdReport } : {}), ...opts.env };
    const child = spawn(process.execPath, full, { cwd: this.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    let stdout = '';
    let stderr = '';
    const events: Array<Record<string, unknown>> = [];
    const waiters: Array<{ pred: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }> = [];
    let buffer = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          const e = JSON.parse(line) as Record<string, unknown>;
          events.push(e);
          for (const w of [...waiters]) if (w.pred(e)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(e);
          }
        } catch {
          // not JSON (plain mode)
        }
      }
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const done = new Promise<CliResult>((r) => child.on('close', (code, signal) => r({ code, signal, stdout, stderr, events })));
    return {
      child,
      done,
      waitForEvent: (pred, timeoutMs = 20_000) => {
        const seen = events.find(pred);
        if (seen) return Promise.resolve(seen);
        return new Promise((res, rej) => {
          const timer = setTimeout(() => rej(new Error(`event not seen within ${timeoutMs}ms; stderr: ${stderr}; stdout: ${stdout.slice(-2000)}`)), timeoutMs);
          waiters.push({ pred, resolve: (e) => (clearTimeout(timer), res(e)) });
          void done.then(() => {
            clearTimeout(timer);
            rej(new Error(`CLI exited before the event; stderr: ${stderr}; stdout: ${stdout.slice(-1500)}`));
          });
        });
      },
    };
  }

  async cli(args: string[], opts: { env?: Record<string, string>; json?: boolean; stateDir?: string; fdReport?: string } = {}): Promise<CliResult> {
    return this.start(args, opts).done;
  }

  /** Processes whose working directory is inside the sandbox (the service and anything it left). */
  processesInside(): number[] {
    const found: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const cwd = readlinkSync(`/proc/${entry}/cwd`);
        if (cwd.startsWith(this.dir)) found.push(Number(entry));
      } catch {
        // gone or not ours to read
      }
    }
    return found;
  }

  /** Live processes carrying this sandbox's marker in their environment: the CLI, its steps, the service, and anything they left. */
  processesMarked(): number[] {
    const needle = `${MARKER_VAR}=${this.marker}\0`;
    const found: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.startsWith('Z')) continue;
        if (readFileSync(`/proc/${entry}/environ`, 'latin1').includes(needle)) found.push(Number(entry));
      } catch {
        // gone, or not ours to read
      }
    }
    return found;
  }

  /** A release whose health endpoint misbehaves (test/fixtures/faults/server.mjs). */
  addFaultRelease(id: string, mode: 'slow-loris' | 'reset' | 'healthy'): void {
    const dir = join(this.dir, 'releases', id);
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(FAULT_FIXTURES, 'server.mjs'), join(dir, 'server.mjs'));
    writeFileSync(join(dir, 'RELEASE'), id);
    if (mode === 'slow-loris') writeFileSync(join(dir, 'SLOW_LORIS'), '1');
    if (mode === 'reset') writeFileSync(join(dir, 'RESET'), '1');
  }

  /** Stop the service the pidfile names (SIGTERM, then SIGKILL of its group) and wait until no marked process is left. */
  async stopService(timeoutMs = 5_000): Promise<void> {
    const pid = this.pid();
    const signal = (sig: NodeJS.Signals): void => {
      // only a pid that carries our marker is ours to signal (pids wrap fast here)
      if (pid === null || !this.processesMarked().includes(pid)) return;
      try {
        process.kill(-pid, sig);
      } catch {
        try {
          process.kill(pid, sig);
        } catch {
          // gone
        }
      }
    };
    signal('SIGTERM');
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && pid !== null && this.processesMarked().includes(pid)) await new Promise((r) => setTimeout(r, 20));
    signal('SIGKILL');
    while (Date.now() < deadline && this.processesMarked().length > 0) await new Promise((r) => setTimeout(r, 20));
  }

  /** Journal file paths of a recipe, oldest first. */
  journalFiles(recipe = 'svc'): string[] {
    const runs = join(this.stateDir, recipe, 'runs');
    if (!existsSync(runs)) return [];
    return readdirSync(runs)
      .filter((f) => f.endsWith('.jsonl'))
      .sort()
      .map((f) => join(runs, f));
  }

  /** Kill everything still running inside the sandbox (by process group), then remove it. */
  async cleanup(): Promise<number[]> {
    for (const c of this.children) if (c.exitCode === null && c.pid) c.kill('SIGKILL');
    await this.stopDependency();
    const left = this.processesInside();
    for (const pid of left) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    const deadline = Date.now() + 5_000;
    while (this.processesInside().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    rmSync(this.dir, { recursive: true, force: true });
    return left;
  }
}

export function eventsOf(result: CliResult, event: string): Array<Record<string, unknown>> {
  return result.events.filter((e) => e.event === event);
}

export function summaryOf(result: CliResult): Record<string, unknown> & { summary: Record<string, unknown> } {
  const s = result.events.find((e) => e.event === 'summary');
  if (!s) throw new Error(`no summary event; exit ${result.code}; stderr:\n${result.stderr}\nstdout:\n${result.stdout.slice(-3000)}`);
  return s as Record<string, unknown> & { summary: Record<string, unknown> };
}

/**
 * One sandbox per test: `const setup = sandboxPerTest()` at the top of a file, then
 * `const s = await setup({ v1: {}, v3: { broken: true } })` creates releases with v1 current and
 * the fake dependency up. After each test every process left inside the sandbox is killed, and
 * the test fails if there was any: no test may leave a process running.
 */
export function sandboxPerTest(): (releases?: Record<string, ReleaseFlags>, opts?: { dependency?: boolean }) => Promise<Sandbox> {
  let current: Sandbox | null = null;
  afterEach(async () => {
    const left = (await current?.cleanup()) ?? [];
    current = null;
    expect(left).toEqual([]);
  });
  return async (releases = { v1: {}, v2: {} }, opts = {}) => {
    current = await Sandbox.create(releases, 'v1');
    if (opts.dependency !== false) await current.startDependency();
    return current;
  };
}
