// `service: { supervisor: { program, config } }` against a real supervisord (Debian's `supervisor`, its own config
// and socket in the sandbox): the crash watch, a missing program and a supervisord that is down.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sandboxPerTest, summaryOf, type CliResult, type Sandbox } from '../support/sandbox.js';

const HAVE = spawnSync('supervisord', ['--version']).status === 0;
const underCi = process.env.CI === 'true';
if (!HAVE) console.warn(`supervisord tests ${underCi ? 'FAIL under CI=true' : 'skipped'}: install Debian's supervisor`);

const setup = sandboxPerTest();

type Summary = { exitCode: number; description: string; timeline: Array<{ phase: string; durationMs: number; detail?: string }> };
const summary = (r: CliResult) => summaryOf(r).summary as unknown as Summary;

function ctl(s: Sandbox, ...args: string[]): string {
  const r = spawnSync('supervisorctl', ['-c', join(s.dir, 'sd.conf'), ...args], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}

function pidOf(s: Sandbox): number | null {
  const m = /RUNNING\s+pid (\d+)/.exec(ctl(s, 'status', 'web'));
  return m ? Number(m[1]) : null;
}

/** supervisord of our own in the sandbox, with program `web` running the current release. */
async function startSupervisor(s: Sandbox): Promise<void> {
  const d = s.dir;
  writeFileSync(
    join(d, 'sd.conf'),
    [
      '[unix_http_server]',
      `file=${d}/run/sd.sock`,
      '[supervisord]',
      `logfile=${d}/log/supervisord.log`,
      `pidfile=${d}/run/supervisord.pid`,
      `childlogdir=${d}/log`,
      '[rpcinterface:supervisor]',
      'supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface',
      '[supervisorctl]',
      `serverurl=unix://${d}/run/sd.sock`,
      '[program:web]',
      `command=${process.execPath} ${d}/current/server.mjs`,
      `environment=PORT="${s.port}",WARMUP_MS="100",SR_TEST_SANDBOX="${s.marker}"`,
      `directory=${d}`,
      'startsecs=1',
      'startretries=0',
      'autorestart=false',
      'stopwaitsecs=3',
      '',
    ].join('\n'),
  );
  // supervisord daemonizes; it and its children carry the sandbox marker, so the sandbox cleans them up
  const r = spawnSync('supervisord', ['-c', join(d, 'sd.conf')], { env: { ...process.env, SR_TEST_SANDBOX: s.marker }, cwd: d, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`supervisord: ${r.stderr}`);
  await s.waitHealthy();
  // RUNNING once startsecs passed
  const deadline = Date.now() + 10_000;
  while (pidOf(s) === null && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
}

async function stopSupervisor(s: Sandbox): Promise<void> {
  const pidfile = join(s.dir, 'run', 'supervisord.pid');
  if (!existsSync(pidfile)) return;
  const pid = Number(readFileSync(pidfile, 'utf8').trim());
  spawnSync('supervisorctl', ['-c', join(s.dir, 'sd.conf'), 'shutdown']);
  // gone = no /proc entry, or a zombie waiting for the (late) reaper
  const alive = () => {
    try {
      return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + 10_000;
  while ((alive() || s.processesMarked().length > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

describe.skipIf(!HAVE && !underCi)('service: supervisor (real supervisord)', () => {
  it('v1 → v2 through supervisorctl: exit 0, a new pid serving v2', async () => {
    const s = await setup();
    await startSupervisor(s);
    const before = pidOf(s);
    const r = await s.cli(['run', recipeWithout(s), '--release', 'v2']);
    expect(r.code, r.stderr + r.stdout.slice(-1500)).toBe(0);
    expect((await s.health())?.body).toMatch(/^ok v2 /);
    expect(pidOf(s)).not.toBe(before);
    await stopSupervisor(s);
  });

  // 3 s after its start: well after supervisorctl start returned (startsecs=1), even on a loaded machine (at 1.5 s a
  // slow start could see it die during the start itself), and well inside the 6 s the gate needs to be stable
  it('a program that dies 3s after start (after supervisord called it started): the watch fails the gates at once with its stderr, exit 2', async () => {
    const s = await setup({ v1: {}, v2: { exitAfterMs: 3000 } });
    await startSupervisor(s);
    try {
      const gates = `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    stable_for: 6s\n    timeout: 20s`;
      const r = await s.cli(['run', recipeWithout(s, 'web', gates), '--release', 'v2']);
      expect(r.code, r.stderr + r.stdout.slice(-1500)).toBe(2);
      const g = summary(r).timeline.find((t) => t.phase === 'gates');
      expect(g?.detail, JSON.stringify(summary(r).timeline)).toMatch(/program web is EXITED/);
      expect(g?.detail).toMatch(/FATAL: cannot read config of v2/);
      // not the gate's own 20 s: the watch ended it
      expect(g?.durationMs).toBeLessThan(12_000);
      expect((await s.health())?.body).toMatch(/^ok v1 /);
      const bundle = String((summaryOf(r).summary as { evidence?: string }).evidence);
      expect(readFileSync(join(bundle, 'service', 'program-stderr.txt'), 'utf8')).toMatch(/FATAL/);
    } finally {
      await stopSupervisor(s);
    }
  });

  it('a program supervisord does not know: exit 1 before anything is touched, the same pid serving', async () => {
    const s = await setup();
    await startSupervisor(s);
    const before = pidOf(s);
    const r = await s.cli(['run', recipeWithout(s, 'wbe'), '--release', 'v2']);
    expect(r.code).toBe(1);
    expect(summary(r).description).toMatch(/supervisord knows no program wbe.*nothing was touched/);
    expect(pidOf(s)).toBe(before);
    await stopSupervisor(s);
  });

  it('supervisord down: a preflight failure (exit 1), not a failed stop (exit 3)', async () => {
    const s = await setup();
    const pid = await s.startCurrent();
    writeFileSync(join(s.dir, 'sd.conf'), `[supervisorctl]\nserverurl=unix://${s.dir}/run/nobody.sock\n`);
    const r = await s.cli(['run', recipeWithout(s), '--release', 'v2']);
    expect(r.code).toBe(1);
    expect(summary(r).description).toMatch(/supervisord is not reachable.*nothing was touched/);
    const pre = await s.cli(['preflight', recipeWithout(s), '--release', 'v2']);
    expect(pre.code).toBe(1);
    expect(s.pid()).toBe(pid);
    await s.stopService();
  });
});

/** The sandbox recipe with `service:` in place of stop/start. */
function recipeWithout(s: Sandbox, program = 'web', gates?: string): string {
  const file = s.recipe({ ...(gates ? { gates } : {}) });
  const text = readFileSync(file, 'utf8').replace(/^stop:\n(?:  .*\n)+/m, '').replace(/^start:\n(?:  .*\n)+/m, `service:\n  supervisor: { program: ${program}, config: ${s.dir}/sd.conf }\n`);
  writeFileSync(file, text);
  return file;
}

