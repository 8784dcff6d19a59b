// The fault-injection suite: one table, each row a fault injected in one phase, through the real CLI
// against real processes. Every row asserts what the user would see: the exit code, which release
// answers (and whether it is the same pid), what the journal says, and that nothing leaked (no
// process carrying the sandbox's marker besides the service, no fd the CLI opened and kept).
import { afterEach, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import type { Sandbox, CliResult, RunningCli } from '../support/sandbox.js';
import {
  digests,
  fastParts,
  fastSandbox,
  fdReportPath,
  journalProblems,
  leakedFds,
  leakedProcesses,
  selfSignedCert,
  serving,
  shape,
  summaryOf,
  teardown,
  within,
  type RecipeParts,
  type Releases,
} from './helpers.js';

interface Ctx {
  s: Sandbox;
  oldPid: number;
  /** servers the case started; closed after it */
  closers: Array<() => Promise<void>>;
  extra: Record<string, unknown>;
}

interface FaultCase {
  fault: string;
  phase: string;
  releases?: Releases;
  /** before the recipe is written (servers, files) */
  setup?: (ctx: Ctx) => Promise<void> | void;
  parts?: (ctx: Ctx) => RecipeParts;
  args?: (ctx: Ctx) => string[];
  env?: Record<string, string>;
  /** drive the running CLI (signals, a second CLI ...) */
  drive?: (run: RunningCli, ctx: Ctx, file: string) => Promise<void>;
  exit: number;
  /** the release answering afterwards (null: nothing healthy answers) */
  serving: string | null;
  /** the answering process is the one that ran before the run */
  samePid?: boolean;
  /** the run's journal has a summary and every intent has its done */
  complete?: boolean;
  /** journal shape entries that must / must not appear */
  journalHas?: string[];
  journalLacks?: string[];
  /** any other assertion */
  check?: (r: CliResult, ctx: Ctx, file: string) => Promise<void> | void;
  /** measure the CLI's fds (false where the CLI does not exit normally) */
  fds?: boolean;
  skip?: () => string | null;
}

/** Start script per release: `daemon` starts the fixture service in the background, a number exits with it. */
function startScripts(s: Sandbox, behaviour: Record<string, 'daemon' | number | 'slow'>): string {
  const daemon = join(s.dir, 'start-daemon.sh');
  // `$!` must be node itself, not a subshell, so the pidfile names the service
  writeFileSync(daemon, `#!/bin/sh\ncd "${s.dir}/current" || exit 1\nPORT=${s.port} WARMUP_MS=50 "${process.execPath}" server.mjs >> "${s.dir}/log/svc.log" 2>&1 &\necho $! > "${s.pidfile}"\n`);
  chmodSync(daemon, 0o755);
  for (const [id, b] of Object.entries(behaviour)) {
    const body = b === 'daemon' ? `exec "${daemon}"` : b === 'slow' ? `sleep 30\nexec "${daemon}"` : `echo "${id} refuses to start: missing config" >&2\nexit ${b}`;
    writeFileSync(join(s.dir, 'releases', id, 'start.sh'), `#!/bin/sh\n${body}\n`);
    chmodSync(join(s.dir, 'releases', id, 'start.sh'), 0o755);
  }
  return `  run: ["${s.dir}/current/start.sh"]\n  timeout: 10s`;
}

async function listen(server: http.Server | https.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

function closer(server: http.Server | https.Server): () => Promise<void> {
  return () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
}

const depOn = (url: string, more = ''): RecipeParts => ({ dependencies: `  - name: upstream\n    http: ${url}\n    interval: 20ms\n    attempt_timeout: 500ms\n    timeout: 1s${more}` });

function chattrWorks(): boolean {
  try {
    execFileSync('chattr', ['--help'], { stdio: 'ignore' });
  } catch (error) {
    // chattr prints usage and exits 1: it exists
    if ((error as { status?: number }).status !== 1) return false;
  }
  return true;
}

const CASES: FaultCase[] = [
  {
    fault: 'dependency never ready',
    phase: 'dependencies',
    setup: ({ s }) => s.stopDependency(),
    exit: 1,
    serving: 'v1',
    samePid: true,
    journalHas: ['phase:dependencies:finished'],
    journalLacks: ['intent:stop:signal'],
    check: (r) => {
      expect(summaryOf(r).description).toMatch(/fake-db.*ECONNREFUSED.*– nothing was touched/);
      expect(summaryOf(r).evidence).toBeTruthy();
    },
  },
  {
    fault: 'dependency flapping (200/503 alternating, threshold 3)',
    phase: 'dependencies',
    setup: async (ctx) => {
      let n = 0;
      const server = http.createServer((_req, res) => {
        res.writeHead(n++ % 2 === 0 ? 200 : 503, { connection: 'close' });
        res.end('flap\n');
      });
      ctx.extra.port = await listen(server);
      ctx.closers.push(closer(server));
    },
    parts: ({ extra }) => depOn(`http://127.0.0.1:${extra.port}/`, '\n    success_threshold: 3'),
    exit: 1,
    serving: 'v1',
    samePid: true,
    journalLacks: ['intent:stop:signal'],
    check: (r) => expect(summaryOf(r).description).toMatch(/upstream.*503.*nothing was touched/),
  },
  {
    fault: 'stop command hangs',
    phase: 'stop',
    parts: () => ({ stop: '  run: ["sh", "-c", "sleep 300 & sleep 300"]\n  timeout: 1s' }),
    exit: 3,
    // the stop never touched the service: it still answers, same pid, and no sleep survived
    serving: 'v1',
    samePid: true,
    journalHas: ['intent:stop:stop', 'done:stop:stop', 'done:rollback_stop:stop'],
    check: (r) => {
      const stop = r.events.find((e) => e.event === 'step_finished' && e.phase === 'stop') as { detail: string; ok: boolean };
      expect(stop).toMatchObject({ ok: false, detail: expect.stringMatching(/timed out/) });
      expect(summaryOf(r).leftState?.join('\n')).toMatch(/recover/);
    },
  },
  {
    fault: 'process ignores SIGTERM (and has a child)',
    phase: 'stop',
    releases: { v1: { ignoreTerm: true }, v2: {} },
    exit: 0,
    serving: 'v2',
    journalHas: ['done:stop:signal', 'done:start:spawn', 'summary'],
    check: (r) => {
      const stop = r.events.find((e) => e.event === 'step_finished' && e.phase === 'stop') as { detail: string };
      expect(stop.detail).toMatch(/SIGKILL after grace/);
    },
  },
  {
    fault: 'start exits non-zero',
    phase: 'start',
    parts: ({ s }) => ({ start: startScripts(s, { v1: 'daemon', v2: 3 }) }),
    exit: 2,
    serving: 'v1',
    journalHas: ['done:start:start', 'intent:rollback_start:start', 'done:rollback_start:start'],
    check: (r) => expect(summaryOf(r).description).toMatch(/start failed: step "start" exited 3: v2 refuses to start: missing config – rolled back to release v1/),
  },
  {
    fault: 'start daemonizes while holding stdout',
    phase: 'start',
    parts: ({ s }) => ({
      start: `  run: ["${join(import.meta.dirname, '..', 'fixtures', 'service', 'daemonize.sh')}", "${s.dir}/current", "${s.pidfile}"]\n  timeout: 10s\n  env:\n    PORT: "${s.port}"`,
    }),
    exit: 0,
    serving: 'v2',
    check: (r) => {
      const start = r.events.find((e) => e.event === 'step_finished' && e.phase === 'start') as { durationMs: number };
      expect(start.durationMs).toBeLessThan(5_000);
    },
  },
  {
    fault: 'gate never passes (HTTP 503)',
    phase: 'gates',
    releases: { v1: {}, v2: { broken: true } },
    exit: 2,
    serving: 'v1',
    journalHas: ['phase:gates:finished', 'intent:rollback_activate:switch-symlink', 'phase:rollback_gates:finished', 'summary'],
    check: (r) => expect(summaryOf(r).description).toMatch(/gates failed: .*HTTP_STATUS.*503.* – rolled back to release v1, which passed its gates/),
  },
  {
    fault: 'gate fails within stable_for',
    phase: 'gates',
    releases: { v1: {}, v2: { failAfterMs: 300 } },
    parts: ({ s }) => ({ gates: `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    interval: 20ms\n    stable_for: 1s\n    timeout: 3s` }),
    exit: 2,
    serving: 'v1',
    check: (r) => {
      const gate = r.events.find((e) => e.event === 'check_finished' && e.phase === 'gates') as { check: { status: string; error: { code: string } } };
      expect(gate.check).toMatchObject({ status: 'failed', error: { code: 'HTTP_STATUS' } });
    },
  },
  {
    fault: "rollback's start fails",
    phase: 'rollback_start',
    releases: { v1: {}, v2: { broken: true } },
    parts: ({ s }) => ({ start: startScripts(s, { v1: 4, v2: 'daemon' }) }),
    exit: 3,
    serving: null,
    journalHas: ['done:rollback_start:start'],
    check: (r) => {
      expect(summaryOf(r).description).toMatch(/rollback to release v1 failed in rollback_start/);
      expect(summaryOf(r).leftState?.join('\n')).toMatch(/recover/);
    },
  },
  {
    fault: "rollback's gates fail",
    phase: 'rollback_gates',
    releases: { v1: {}, v2: { broken: true } },
    // v1 answers now, but will not after a restart
    setup: ({ s }) => writeFileSync(join(s.dir, 'releases', 'v1', 'BROKEN'), '1'),
    exit: 3,
    serving: null,
    journalHas: ['phase:rollback_gates:finished', 'summary'],
    check: (r) => expect(summaryOf(r).description).toMatch(/rollback to release v1 failed in rollback_gates/),
  },
  {
    fault: 'a second SIGINT during the rollback',
    phase: 'rollback_gates',
    releases: { v1: {}, v2: { broken: true } },
    parts: ({ s }) => ({ gates: `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    interval: 20ms\n    initial_delay: 1s\n    timeout: 30s` }),
    drive: async (run) => {
      await run.waitForEvent((e) => e.event === 'check_started' && e.phase === 'gates');
      run.child.kill('SIGINT');
      await run.waitForEvent((e) => e.event === 'check_started' && e.phase === 'rollback_gates');
      run.child.kill('SIGINT');
    },
    exit: 3,
    // v1 was started again but never proven: it may or may not answer yet
    serving: 'any',
    journalHas: ['phase:rollback_gates:finished', 'summary'],
    check: (r) => {
      expect(summaryOf(r).description).toMatch(/interrupted by SIGINT/);
      expect(r.events.filter((e) => e.event === 'signal')).toHaveLength(2);
    },
  },
  {
    fault: 'two concurrent runs',
    phase: 'lock',
    parts: () => ({ hooks: '  before_stop:\n    - name: pause\n      run: ["sleep", "1"]' }),
    drive: async (run, { s, extra }, file) => {
      await run.waitForEvent((e) => e.event === 'step_started' && e.phase === 'before_stop');
      extra.second = await s.cli(['run', file, '--release', 'v2'], { json: false });
    },
    exit: 0,
    serving: 'v2',
    check: (r, { extra }) => {
      const second = extra.second as CliResult;
      expect(second.code).toBe(4);
      expect(second.stderr).toMatch(/holds the lock: pid \d+ on .*, started /);
      expect(second.stderr).not.toMatch(/\n\s+at /);
    },
  },
  {
    fault: 'lock holder killed (stale lock)',
    phase: 'lock',
    setup: async (ctx) => {
      const { s } = ctx;
      await s.stopDependency();
      const deps = `  - name: fake-db\n    tcp: 127.0.0.1:${s.depPort}\n    interval: 20ms\n    timeout: 30s`;
      const dead = s.start(['run', s.recipe({ ...fastParts(s), dependencies: deps }), '--release', 'v2']);
      await dead.waitForEvent((e) => e.event === 'check_started' && e.phase === 'dependencies');
      dead.child.kill('SIGKILL');
      await dead.done;
      expect(existsSync(join(s.stateDir, 'svc', 'lock'))).toBe(true);
      await s.startDependency();
    },
    exit: 0,
    serving: 'v2',
    check: (r, { s }) => {
      expect(summaryOf(r).warnings.join('\n')).toMatch(/took over the lock of dead run .*pid \d+ is not running/);
      const dead = digests(s).find((d) => !d.finished);
      expect(dead).toMatchObject({ finished: false, touched: false, inFlight: { phase: 'dependencies' } });
    },
  },
  {
    fault: 'state directory not writable (a path under a regular file: ENOTDIR, real even as root)',
    phase: 'lock',
    setup: ({ s }) => writeFileSync(join(s.dir, 'not-a-dir'), ''),
    args: ({ s }) => ['--release', 'v2', '--state-dir', join(s.dir, 'not-a-dir', 'state')],
    exit: 1,
    serving: 'v1',
    samePid: true,
    complete: false,
    check: (r) => {
      expect(r.stderr).toMatch(/cannot use the state directory .*not-a-dir\/state: ENOTDIR.* – nothing was touched/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    },
  },
  {
    fault: 'state directory immutable (chattr +i: refuses writes even to root)',
    phase: 'lock',
    skip: () => (chattrWorks() ? null : 'chattr is not available'),
    setup: (ctx) => {
      const dir = join(ctx.s.stateDir, 'svc');
      mkdirSync(join(dir, 'runs'), { recursive: true, mode: 0o700 });
      try {
        execFileSync('chattr', ['+i', dir], { stdio: 'ignore' });
      } catch {
        ctx.extra.skipped = true;
      }
      ctx.closers.push(async () => {
        execFileSync('chattr', ['-i', dir], { stdio: 'ignore' });
      });
    },
    exit: 1,
    serving: 'v1',
    samePid: true,
    complete: false,
    check: (r) => {
      expect(r.stderr).toMatch(/lock.*EPERM|EPERM.*lock|operation not permitted/i);
      expect(r.stderr).toMatch(/nothing was touched/);
      expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    },
  },
  {
    fault: 'journal write fails before the first side effect (disk full at intent:stop)',
    phase: 'stop',
    env: { SAFE_RESTART_TEST_JOURNAL_FAIL_AT: 'intent:stop' },
    exit: 1,
    serving: 'v1',
    samePid: true,
    complete: false,
    journalLacks: ['intent:stop:signal', 'summary'],
    check: (r, { s }) => {
      expect(summaryOf(r).description).toMatch(/cannot write the journal.*ENOSPC.*nothing was touched/);
      expect(digests(s)[0]).toMatchObject({ touched: false, finished: false });
    },
  },
  {
    fault: 'journal write fails after a side effect (disk full at done:stop)',
    phase: 'stop',
    env: { SAFE_RESTART_TEST_JOURNAL_FAIL_AT: 'done:stop' },
    exit: 3,
    // refuses to start anything it cannot record: the service stays stopped, a human is needed
    serving: null,
    complete: false,
    journalHas: ['intent:stop:signal'],
    journalLacks: ['done:stop:signal', 'intent:activate:switch-symlink', 'intent:start:spawn'],
    check: async (r, { s }, file) => {
      expect(summaryOf(r).description).toMatch(/cannot write the journal.*ENOSPC/);
      expect(digests(s)[0]).toMatchObject({ finished: false, touched: true, inFlight: { phase: 'stop', action: 'signal' } });
      // once the disk is fixed: the next run refuses, recover brings the last good release back
      const again = await s.cli(['run', file, '--release', 'v2'], { json: false });
      expect(again.code).toBe(4);
      expect(again.stderr).toMatch(/never finished: it stopped during stop \(signal\) – run `safe-restart recover/);
      const rec = await s.cli(['recover', file]);
      expect(rec.code, rec.stderr).toBe(2);
      expect((await serving(s))?.release).toBe('v1');
    },
  },
  {
    fault: 'journal write fails at its first record (disk full at run)',
    phase: 'lock',
    env: { SAFE_RESTART_TEST_JOURNAL_FAIL_AT: 'run' },
    exit: 1,
    serving: 'v1',
    samePid: true,
    complete: false,
    check: (r) => {
      expect(r.stderr).toMatch(/cannot write the journal.*ENOSPC.*nothing was touched/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    },
  },
  {
    fault: 'DNS failure (.invalid host)',
    phase: 'dependencies',
    // few attempts: a real resolver may rate-limit a burst of lookups
    parts: () => ({ dependencies: '  - name: upstream\n    http: http://no-such-host.invalid:8080/healthz\n    interval: 300ms\n    attempt_timeout: 1s\n    timeout: 1s' }),
    exit: 1,
    serving: 'v1',
    samePid: true,
    check: (r) => {
      const dep = r.events.find((e) => e.event === 'check_finished') as { check: { error: { code: string; message: string } } };
      // NXDOMAIN, or a resolver that does not answer in time: either way the message says it was the name
      expect(dep.check.error.message).toMatch(/(ENOTFOUND|EAI_AGAIN) cannot resolve "no-such-host\.invalid"|ETIMEDOUT resolving "no-such-host\.invalid" timed out/);
    },
  },
  {
    fault: 'HTTP 503 from a dependency',
    phase: 'dependencies',
    setup: async (ctx) => {
      const server = http.createServer((_req, res) => {
        res.writeHead(503, { connection: 'close' });
        res.end('maintenance\n');
      });
      ctx.extra.port = await listen(server);
      ctx.closers.push(closer(server));
    },
    parts: ({ extra }) => depOn(`http://127.0.0.1:${extra.port}/`),
    exit: 1,
    serving: 'v1',
    samePid: true,
    check: (r) => expect(summaryOf(r).description).toMatch(/HTTP_STATUS HTTP 503/),
  },
  {
    fault: 'TLS self-signed dependency (verified by default)',
    phase: 'dependencies',
    setup: async (ctx) => {
      const { key, cert } = selfSignedCert(ctx.s.dir);
      const server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => res.end('ok\n'));
      ctx.extra.port = await listen(server);
      ctx.closers.push(closer(server));
    },
    parts: ({ extra }) => depOn(`https://127.0.0.1:${extra.port}/`),
    exit: 1,
    serving: 'v1',
    samePid: true,
    check: (r) => expect(summaryOf(r).description).toMatch(/TLS_UNTRUSTED.*not trusted/),
  },
  {
    fault: 'TLS self-signed dependency with its CA given (ca:)',
    phase: 'dependencies',
    setup: async (ctx) => {
      const { key, cert } = selfSignedCert(ctx.s.dir);
      const server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => res.end('ok\n'));
      ctx.extra.port = await listen(server);
      ctx.extra.cert = cert;
      ctx.closers.push(closer(server));
    },
    parts: ({ extra }) => ({ dependencies: `  - name: upstream\n    http:\n      url: https://127.0.0.1:${extra.port}/\n      ca: ${extra.cert}\n    timeout: 2s` }),
    exit: 0,
    serving: 'v2',
  },
  {
    fault: 'slow-loris gate endpoint',
    phase: 'gates',
    releases: { v1: {}, v2: { fault: 'slow-loris' } },
    parts: ({ s }) => ({ gates: `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    interval: 20ms\n    attempt_timeout: 300ms\n    timeout: 2s` }),
    exit: 2,
    serving: 'v1',
    check: (r, { s }) => {
      const gate = r.events.find((e) => e.event === 'check_finished' && e.phase === 'gates') as { check: { error: { code: string; message: string } } };
      expect(gate.check.error).toMatchObject({ code: 'ETIMEDOUT', message: expect.stringMatching(/body .* not complete within 300ms/) });
      // one attempt at a time, each socket closed before the next: never more than 2 open at the server
      const opens = [...readFileSync(join(s.dir, 'log', 'svc.log'), 'utf8').matchAll(/^open (\d+)$/gm)].map((m) => Number(m[1]));
      expect(opens.length).toBeGreaterThan(2);
      expect(Math.max(...opens)).toBeLessThanOrEqual(2);
    },
  },
  {
    fault: 'gate endpoint resets connections',
    phase: 'gates',
    releases: { v1: {}, v2: { fault: 'reset' } },
    parts: ({ s }) => ({ gates: `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    interval: 20ms\n    timeout: 1500ms` }),
    exit: 2,
    serving: 'v1',
    check: (r) => {
      const gate = r.events.find((e) => e.event === 'check_finished' && e.phase === 'gates') as { check: { error: { code: string } } };
      expect(gate.check.error.code).toBe('ECONNRESET');
    },
  },
];

let current: Ctx | null = null;
afterEach(async () => {
  const ctx = current;
  current = null;
  if (!ctx) return;
  for (const c of ctx.closers) await c().catch(() => undefined);
  await teardown(ctx.s);
});

describe('fault injection', () => {
  it.each(CASES.map((c) => [`${c.phase}: ${c.fault}`, c] as const))('%s', async (_name, c) => {
    const why = c.skip?.();
    if (why) {
      console.warn(`skipped: ${why}`);
      return;
    }
    const s = await fastSandbox(c.releases ?? { v1: {}, v2: {} });
    const ctx: Ctx = { s, oldPid: 0, closers: [], extra: {} };
    current = ctx;
    ctx.oldPid = await s.startCurrent();
    await c.setup?.(ctx);
    if (ctx.extra.skipped) {
      console.warn(`skipped: ${c.fault} could not be set up here`);
      return;
    }
    const file = s.recipe(fastParts(s, c.parts?.(ctx)));
    const fds = fdReportPath(s);
    const args = c.args?.(ctx) ?? ['--release', 'v2'];
    const stateDir = args.includes('--state-dir') ? args[args.indexOf('--state-dir') + 1] : undefined;
    const cliArgs = stateDir ? args.filter((_a, i) => i !== args.indexOf('--state-dir') && i !== args.indexOf('--state-dir') + 1) : args;
    const run = s.start(['run', file, ...cliArgs], { env: c.env ?? {}, fdReport: fds, ...(stateDir ? { stateDir } : {}) });
    await c.drive?.(run, ctx, file);
    const r = await within(run.done, 60_000, 'the CLI');

    expect(r.code, `stderr:\n${r.stderr}\nstdout tail:\n${r.stdout.slice(-1500)}`).toBe(c.exit);
    if (r.events.length > 0 && c.exit !== 4) expect(r.events.at(-1)?.event === 'summary' || c.complete === false).toBe(true);

    // which release answers, and whether it is the very same process
    const now = await serving(s);
    if ((c.serving as string) !== 'any') {
      expect(now?.release ?? null).toBe(c.serving);
      if (c.serving !== null) expect(s.currentRelease()).toBe(c.serving);
    }
    if (c.samePid) expect(now?.pid).toBe(ctx.oldPid);
    else if (c.serving !== null && (c.serving as string) !== 'any') expect(now?.pid).not.toBe(ctx.oldPid);

    // the journal tells the truth
    const journals = s.journals();
    const runId = r.events[0]?.runId;
    const mine = journals.find((j) => j[0]?.runId === runId) ?? journals.at(-1) ?? [];
    if (c.complete !== false && journals.length > 0) {
      expect(journalProblems(mine)).toEqual([]);
      expect(mine.at(-1)?.type).toBe('summary');
    }
    const kinds = shape(mine);
    for (const k of c.journalHas ?? []) expect(kinds, `journal lacks ${k}`).toContain(k);
    for (const k of c.journalLacks ?? []) expect(kinds, `journal has ${k}`).not.toContain(k);

    await c.check?.(r, ctx, file);

    // nothing leaked: no process but the service, no fd the CLI opened and kept
    expect(await leakedProcesses(s)).toEqual([]);
    if (c.fds !== false) expect(leakedFds(fds)).toEqual([]);
  });
});

export { CASES };
