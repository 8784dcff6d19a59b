// `service: { systemd: UNIT }` against a real systemd 252 booted in namespaces (test/support/systemd.ts): the
// CLI runs inside (nsenter), next to the units it manages. Every case asserts the exit code, MainPID and
// InvocationID (the "same service"), which release answers, and the journal or the evidence.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bootSystemd, systemdAvailable, type SystemdNs } from '../support/systemd.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'safe-restart.js');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'service', 'server.mjs');
const avail = systemdAvailable();
const underCi = process.env.CI === 'true';
if (!avail.ok) console.warn(`systemd service tests ${underCi ? 'FAIL under CI=true' : 'skipped'}: ${avail.why}`);

// the namespace has a network of its own: any port is free there
const PORT = 20_000 + Math.floor(Math.random() * 20_000);

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  events: Array<Record<string, unknown>>;
  summary: { outcome: string; exitCode: number; description: string; reason: string; runId: string; warnings: string[]; evidence?: string; timeline: Array<{ phase: string; durationMs: number; result: string; detail?: string }> };
}

let ns: SystemdNs;
let dir = '';
let caseNo = 0;

function parseProps(text: string): Record<string, string> {
  return Object.fromEntries(text.trim().split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One service's world: releases, the current link, its unit, its state dir. */
class Unit {
  readonly name: string;
  readonly home: string;
  readonly state: string;
  readonly port: number;
  constructor(readonly tag: string) {
    caseNo += 1;
    this.name = `srt-${tag}-${caseNo}`;
    this.home = join(dir, this.name);
    this.state = join(this.home, 'state');
    this.port = PORT + caseNo;
    mkdirSync(join(this.home, 'releases'), { recursive: true });
  }

  release(id: string, flags: Record<string, string> = {}): void {
    const d = join(this.home, 'releases', id);
    mkdirSync(d, { recursive: true });
    copyFileSync(FIXTURE, join(d, 'server.mjs'));
    writeFileSync(join(d, 'RELEASE'), id);
    for (const [k, v] of Object.entries(flags)) writeFileSync(join(d, k), v);
  }

  async install(current: string, service: string[] = []): Promise<void> {
    symlinkSync(join(this.home, 'releases', current), join(this.home, 'current'));
    await ns.writeUnit(
      `${this.name}.service`,
      ['[Unit]', `Description=safe-restart test ${this.name}`, '[Service]', 'Type=simple', `Environment=PORT=${this.port} WARMUP_MS=100`, `ExecStart=/usr/bin/env node ${this.home}/current/server.mjs`, ...service, ''].join('\n'),
    );
    const r = await ns.exec(['systemctl', 'start', `${this.name}.service`]);
    if (r.code !== 0) throw new Error(`start ${this.name}: ${r.stderr}`);
    await this.waitServing();
  }

  async show(): Promise<Record<string, string>> {
    return parseProps((await ns.exec(['systemctl', 'show', `${this.name}.service`, '-p', 'ActiveState,SubState,MainPID,InvocationID,NRestarts'])).stdout);
  }

  async health(): Promise<string | null> {
    const r = await ns.exec(['curl', '-sS', '--max-time', '2', `http://127.0.0.1:${this.port}/healthz`], { timeoutMs: 5_000 });
    return r.code === 0 ? r.stdout : null;
  }

  async waitServing(): Promise<string> {
    return waitFor(`${this.name} to answer`, async () => (await this.health())?.startsWith('ok') ? ((await this.health()) ?? undefined) : undefined);
  }

  recipe(extra: { service?: string; gates?: string; verify?: string } = {}): string {
    const yaml = [
      'version: 1',
      `name: ${this.name}`,
      'defaults: { interval: 50ms, attempt_timeout: 1s, timeout: 10s }',
      'release:',
      `  symlink: ${this.home}/current`,
      `  releases_dir: ${this.home}/releases`,
      'service:',
      extra.service ?? `  systemd: ${this.name}`,
      ...(extra.verify ? ['verify:', extra.verify] : []),
      'gates:',
      extra.gates ?? `  - name: healthz\n    http: { url: "http://127.0.0.1:${this.port}/healthz", body: "ok \${SAFE_RESTART_RELEASE} " }\n    timeout: 8s`,
    ].join('\n');
    const file = join(this.home, 'recipe.yaml');
    writeFileSync(file, `${yaml}\n`);
    return file;
  }

  /** the CLI inside the namespace, next to systemd */
  async cli(args: string[]): Promise<CliRun> {
    const r = await ns.exec([process.execPath, CLI, ...args, '--state-dir', this.state, '--json'], { timeoutMs: 90_000 });
    const events = r.stdout.split('\n').filter(Boolean).flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
    const summary = (events.find((e) => e.event === 'summary')?.summary ?? null) as CliRun['summary'];
    return { code: r.code, stdout: r.stdout, stderr: r.stderr, events, summary };
  }
}

const phaseOf = (r: CliRun, phase: string) => r.summary?.timeline.find((t) => t.phase === phase);

describe.skipIf(!avail.ok && !underCi)('service: systemd (real systemd in namespaces)', () => {
  beforeAll(async () => {
    if (!avail.ok) throw new Error(`systemd is required under CI=true: ${avail.why}`);
    dir = mkdtempSync(join(tmpdir(), 'sr-systemd-svc-'));
    ns = await bootSystemd({ dir });
  }, 90_000);

  afterAll(async () => {
    await ns?.shutdown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  beforeEach(() => {
    expect(ns).toBeDefined();
  });

  it('v1 → v2: exit 0, a new MainPID and InvocationID, v2 answering', async () => {
    const u = new Unit('ok');
    u.release('v1');
    u.release('v2');
    await u.install('v1');
    const before = await u.show();
    const r = await u.cli(['run', u.recipe(), '--release', 'v2']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
    const after = await u.show();
    expect(after.ActiveState).toBe('active');
    expect(after.MainPID).not.toBe(before.MainPID);
    expect(after.InvocationID).not.toBe(before.InvocationID);
    expect(await u.health()).toMatch(/^ok v2 /);
    // Type=simple is said, with what covers it
    expect(r.summary.warnings.join('\n')).toMatch(/Type=simple.*the watch/);
    const steps = r.events.filter((e) => e.event === 'step_started').map((e) => e.step);
    expect(steps).toEqual(expect.arrayContaining([`systemctl stop ${u.name}.service`, `systemctl reset-failed ${u.name}.service`, `systemctl start ${u.name}.service`]));
  });

  it('a release whose unit fails 0.3s after start: rollback begins at once, the reason is the FATAL line, exit 2, v1 serving; evidence has this run\'s journal only', async () => {
    const u = new Unit('crash');
    u.release('v1');
    u.release('v2', { EXIT_AFTER_MS: '300' });
    await u.install('v1');
    const before = await u.show();
    const r = await u.cli(['run', u.recipe({ gates: `  - name: healthz\n    http: http://127.0.0.1:${u.port}/healthz\n    stable_for: 3s\n    timeout: 20s` }), '--release', 'v2']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    const gates = phaseOf(r, 'gates');
    expect(gates?.detail).toMatch(new RegExp(`unit ${u.name}\\.service failed: status=1/FAILURE \\d+\\.\\ds after start`));
    expect(gates?.detail).toMatch(/FATAL: cannot read config of v2/);
    expect(gates?.durationMs).toBeLessThan(10_000);
    expect(await u.health()).toMatch(/^ok v1 /);
    const after = await u.show();
    expect(after.InvocationID).not.toBe(before.InvocationID);
    const bundle = r.summary.evidence as string;
    const journal = readFileSync(join(bundle, 'service', 'journal.txt'), 'utf8');
    expect(journal).toMatch(/FATAL: cannot read config of v2/);
    // only this run's invocations: the v1 process that ran before the run is not in it
    expect(journal).not.toContain(`pid ${before.MainPID}`);
    expect(readFileSync(join(bundle, 'summary.md'), 'utf8')).toMatch(/FATAL: cannot read config of v2/);
    expect(existsSync(join(bundle, 'service', 'systemctl-show.txt'))).toBe(true);
  });

  it('Restart=on-failure with a start limit that trips during the gates: reset-failed lets the rollback start, exit 2 (not 3)', async () => {
    const u = new Unit('limit');
    u.release('v1');
    u.release('v2', { EXIT_AFTER_MS: '200' });
    await u.install('v1', ['Restart=on-failure', 'RestartSec=100ms', 'StartLimitIntervalSec=60s', 'StartLimitBurst=1']);
    const r = await u.cli(['run', u.recipe({ gates: `  - name: healthz\n    http: http://127.0.0.1:${u.port}/healthz\n    stable_for: 3s\n    timeout: 20s` }), '--release', 'v2']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    expect(await u.health()).toMatch(/^ok v1 /);
    expect(r.summary.warnings.join('\n')).toMatch(/StartLimitBurst=1/);
    // StartLimitBurst=1: the auto-restart trips the limit; without reset-failed the rollback's start is refused
    // and the run ends in 3 (checked by hand with reset-failed replaced by `true`)
    const resets = r.events.filter((e) => e.event === 'step_finished' && String(e.step).startsWith('systemctl reset-failed'));
    expect(resets.length).toBe(2);
  });

  it('a unit name typo: exit 1, nothing touched (same MainPID and InvocationID), systemd\'s words named', async () => {
    const u = new Unit('typo');
    u.release('v1');
    u.release('v2');
    await u.install('v1');
    const before = await u.show();
    const r = await u.cli(['run', u.recipe({ service: `  systemd: ${u.name}-wbe` }), '--release', 'v2']);
    expect(r.code).toBe(1);
    expect(r.summary.description).toMatch(new RegExp(`systemd unit ${u.name}-wbe\\.service is not loaded \\(LoadState=not-found.*nothing was touched`));
    const after = await u.show();
    expect(after.MainPID).toBe(before.MainPID);
    expect(after.InvocationID).toBe(before.InvocationID);
    expect(await u.health()).toMatch(/^ok v1 /);
    const pre = await u.cli(['preflight', u.recipe({ service: `  systemd: ${u.name}-wbe` }), '--release', 'v2']);
    expect(pre.code).toBe(1);
    const live = await ns.exec([process.execPath, CLI, 'validate', u.recipe({ service: `  systemd: ${u.name}-wbe` }), '--live']);
    expect(live.code).toBe(1);
    expect(live.stderr).toMatch(/live: systemd unit .*-wbe\.service is not loaded/);
  });

  it('a unit that ignores SIGTERM, TimeoutStopSec=3s and stop_timeout: 1s: warned, the run waits for systemd, exit 0 on v2', async () => {
    const u = new Unit('slowstop');
    u.release('v1', { IGNORE_TERM: '1' });
    u.release('v2');
    await u.install('v1', ['TimeoutStopSec=3s']);
    const recipe = u.recipe({ service: `  systemd: ${u.name}\n  stop_timeout: 1s` });
    const pre = await u.cli(['preflight', recipe, '--release', 'v2']);
    expect(pre.code, pre.stdout).toBe(0);
    expect(JSON.parse(pre.stdout).warnings.join('\n')).toMatch(/stop_timeout \(1\.0s\) is shorter than .*TimeoutStopSec \(3\.0s\)/);
    const live = await ns.exec([process.execPath, CLI, 'validate', recipe, '--live']);
    expect(live.code, live.stderr).toBe(0);
    expect(live.stderr).toMatch(/warning: service\.stop_timeout \(1\.0s\) is shorter/);
    const r = await u.cli(['run', recipe, '--release', 'v2']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
    expect(phaseOf(r, 'stop')?.durationMs).toBeGreaterThanOrEqual(2_500);
    expect(await u.health()).toMatch(/^ok v2 /);
  });

  it('SIGKILL of safe-restart during the gates: the next run says recover; recover (reset-failed, start) → 2', async () => {
    const u = new Unit('kill');
    u.release('v1');
    u.release('v2');
    await u.install('v1');
    const recipe = u.recipe({ gates: `  - name: healthz\n    http: http://127.0.0.1:${u.port}/healthz\n    stable_for: 5s\n    timeout: 20s` });
    // a first good run records v1 as the last good release
    expect((await u.cli(['run', recipe])).code).toBe(0);
    const child = ns.spawn([process.execPath, CLI, 'run', recipe, '--release', 'v2', '--state-dir', u.state, '--json']);
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr?.resume();
    await waitFor('the gates phase', async () => (out.includes('"event":"phase_started"') && out.includes('"phase":"gates"') ? true : undefined));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    const blocked = await u.cli(['run', recipe, '--release', 'v2']);
    expect(blocked.code).toBe(4);
    const r = await u.cli(['recover', recipe]);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    expect(await u.health()).toMatch(/^ok v1 /);
    expect((await u.show()).ActiveState).toBe('active');
  });

  it('status shows the live unit next to the last good release', async () => {
    const u = new Unit('status');
    u.release('v1');
    u.release('v2');
    await u.install('v1');
    expect((await u.cli(['run', u.recipe(), '--release', 'v2'])).code).toBe(0);
    const r = await ns.exec([process.execPath, CLI, 'status', u.name, '--state-dir', u.state]);
    expect(r.stdout).toMatch(/v2/);
    expect(r.stdout).toMatch(new RegExp(`${u.name}\\.service: active \\(running\\), MainPID \\d+`));
  });

  it('reload: true with a config nginx rejects: detected by the release gate, rolled back by reloading the old config', async () => {
    const u = new Unit('nginx');
    const prefix = join(u.home, 'ngx');
    mkdirSync(join(prefix, 'logs'), { recursive: true });
    const busy = u.port + 500;
    for (const [id, extra] of [['v1', ''], ['v2', `    listen 127.0.0.1:${busy};\n`]] as const) {
      mkdirSync(join(u.home, 'releases', id), { recursive: true });
      writeFileSync(
        join(u.home, 'releases', id, 'nginx.conf'),
        `worker_processes 1;\nerror_log ${prefix}/logs/error.log;\npid ${prefix}/nginx.pid;\nevents { worker_connections 64; }\nhttp {\n  access_log off;\n  server {\n    listen 127.0.0.1:${u.port};\n${extra}    location / { return 200 "ok ${id} \\n"; }\n  }\n}\n`,
      );
    }
    symlinkSync(join(u.home, 'releases', 'v1'), join(u.home, 'current'));
    // something else already holds the port v2 wants: the master rejects v2 and keeps serving v1
    await ns.writeUnit(`${u.name}-busy.service`, ['[Service]', `ExecStart=${process.execPath} -e "require('net').createServer().listen(${busy}, '127.0.0.1')"`, ''].join('\n'));
    await ns.writeUnit(
      `${u.name}.service`,
      ['[Service]', 'Type=forking', `PIDFile=${prefix}/nginx.pid`, `ExecStart=/usr/sbin/nginx -p ${prefix} -c ${u.home}/current/nginx.conf`, 'ExecReload=/bin/kill -HUP $MAINPID', ''].join('\n'),
    );
    for (const unit of [`${u.name}-busy.service`, `${u.name}.service`]) expect((await ns.exec(['systemctl', 'start', unit])).code).toBe(0);
    await u.waitServing();
    const before = await u.show();
    const gates = `  - name: release-live\n    http: { url: "http://127.0.0.1:${u.port}/", body: "ok \${SAFE_RESTART_RELEASE} " }\n    timeout: 3s`;
    const verify = `  - name: nginx -t\n    run: ["/usr/sbin/nginx", "-t", "-q", "-p", "${prefix}", "-c", "${u.home}/releases/\${SAFE_RESTART_RELEASE}/nginx.conf"]`;
    const r = await u.cli(['run', u.recipe({ service: `  systemd: ${u.name}\n  reload: true`, gates, verify }), '--release', 'v2']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    expect(phaseOf(r, 'gates')?.detail).toMatch(/BODY_MISMATCH/);
    const after = await u.show();
    // a reload keeps the master: the same MainPID and invocation all along
    expect(after.MainPID).toBe(before.MainPID);
    expect(after.InvocationID).toBe(before.InvocationID);
    expect(await u.health()).toMatch(/^ok v1 /);
    const steps = r.events.filter((e) => e.event === 'step_started').map((e) => String(e.step));
    expect(steps.filter((s) => s.startsWith('systemctl reload'))).toHaveLength(2);
    expect(steps.some((s) => s.startsWith('systemctl stop'))).toBe(false);
  });
});

