// Secret canaries: a password in a DB URL and *_PASSWORD variables never appear in stdout, stderr, --json,
// the journal, step logs (the raw ones in the state directory too), the evidence bundle, notifications, or
// the command line of any process (sampled from /proc/*/cmdline while a command check runs).
import { afterEach, describe, expect, it } from 'vitest';
import http from 'node:http';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Sandbox } from '../support/sandbox.js';
import { cliPlain, fastParts, fastSandbox, teardown } from '../faults/helpers.js';
import { freePort } from '../support/sandbox.js';

const DB_PASSWORD = 'Canary-Db-7f3kQ';
const SERVICE_PASSWORD = 'Canary-Svc-9q2wZ';
const LOOSE_TOKEN = 'Canary-Env-4h8xP';
const CANARIES = [DB_PASSWORD, SERVICE_PASSWORD, LOOSE_TOKEN, encodeURIComponent(DB_PASSWORD)];

let s: Sandbox | null = null;
let hook: http.Server | null = null;
afterEach(async () => {
  hook?.closeAllConnections();
  await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
  hook = null;
  await teardown(s);
  s = null;
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

function cmdlines(): string[] {
  const out: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      out.push(readFileSync(`/proc/${e}/cmdline`, 'latin1').replaceAll('\0', ' '));
    } catch {
      // gone
    }
  }
  return out;
}

describe('secret canaries', () => {
  it('a secret the step prints in two writes, read in two chunks, is still redacted in the live output', async () => {
    s = await fastSandbox({ v1: {}, v2: {} });
    await s.startCurrent();
    const file = s.recipe(
      fastParts(s, {
        hooks: [
          '  before_stop:',
          '    - name: split',
          // the output file is read every 100 ms: the pause puts the two halves in different reads
          '      run: printf "token %s" "$HALF_A"; sleep 0.4; printf "%s done\\n" "$HALF_B"',
          '      env:',
          `        HALF_A: "${SERVICE_PASSWORD.slice(0, 7)}"`,
          `        HALF_B: "${SERVICE_PASSWORD.slice(7)}"`,
        ].join('\n'),
        extra: ['vars:', '  SERVICE_PASSWORD: ${SERVICE_PASSWORD}'].join('\n'),
      }),
    );
    const r = await s.cli(['run', file, '--release', 'v2'], { env: { SERVICE_PASSWORD } });
    expect(r.code, r.stderr).toBe(0);
    const printed = r.events.filter((e) => e.event === 'step_output' && e.step === 'split').map((e) => String(e.text));
    expect(printed.join('')).toBe('token *** done\n');
    expect(r.stdout).not.toContain(SERVICE_PASSWORD.slice(0, 7));
  });

  it('never leak from a run that rolls back, with hooks, checks, a DB URL and notifications', async () => {
    s = await fastSandbox({ v1: {}, v2: { broken: true } });
    await s.startCurrent();
    const bodies: string[] = [];
    hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        bodies.push(`${req.url} ${JSON.stringify(req.headers)} ${body}`);
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook?.listen(0, '127.0.0.1', r));
    const hookPort = (hook.address() as { port: number }).port;
    const closedPort = await freePort();
    const file = s.recipe(
      fastParts(s, {
        dependencies: [
          `  - name: fake-db\n    tcp: 127.0.0.1:${s.depPort}`,
          '  - name: slow-probe',
          '    command: ["sleep", "0.8"]',
          '    timeout: 3s',
        ].join('\n'),
        hooks: [
          '  before_stop:',
          '    - name: announce',
          '      run: echo "as $SERVICE_PASSWORD to postgres://app:$DB_PASSWORD@db/app, env $LOOSE_TOKEN"; echo "$DB_PASSWORD" >&2',
          '      env:',
          '        DB_PASSWORD: ${DB_PASSWORD}',
          '        SERVICE_PASSWORD: ${SERVICE_PASSWORD}',
          '  on_rollback:',
          '    - name: db-after-rollback',
          `      postgres: postgres://app:\${DB_PASSWORD}@127.0.0.1:${closedPort}/app`,
          '      timeout: 500ms',
          '      attempt_timeout: 200ms',
        ].join('\n'),
        extra: [
          'vars:',
          '  DB_PASSWORD: ${DB_PASSWORD}',
          '  SERVICE_PASSWORD: ${SERVICE_PASSWORD}',
          'notify:',
          `  - url: http://127.0.0.1:${hookPort}/hook`,
          '    on: [started, succeeded, rolled_back, failed, aborted]',
          '    timeout: 2s',
        ].join('\n'),
      }),
    );
    const env = { DB_PASSWORD, SERVICE_PASSWORD, LOOSE_TOKEN };

    const run = s.start(['run', file, '--release', 'v2'], { env });
    // sample every process's command line while the command check runs
    await run.waitForEvent((e) => e.event === 'check_started' && e.check === 'slow-probe');
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) {
      seen.push(...cmdlines().filter((c) => CANARIES.some((k) => c.includes(k))));
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await run.done;
    expect(r.code, r.stderr).toBe(2);
    expect(seen, 'a canary on a command line').toEqual([]);

    // the human renderer and the read-only commands too
    const human = await s.cli(['run', file, '--release', 'v2'], { env, json: false });
    expect(human.code, human.stderr).toBe(2);
    const history = await s.cli(['history'], { env });
    const status = await s.cli(['status'], { env });
    const plan = await cliPlain(s, ['plan', file, '--release', 'v2'], env);

    const outputs: Record<string, string> = {
      'json stdout': r.stdout,
      'json stderr': r.stderr,
      'human stdout': human.stdout,
      'human stderr': human.stderr,
      history: history.stdout + history.stderr,
      status: status.stdout + status.stderr,
      plan: plan.stdout + plan.stderr,
      notifications: bodies.join('\n'),
    };
    // a step writes its raw output file itself (not through safe-restart): it is private (0600 in 0700
    // directories) and rewritten redacted once the step has ended
    const rawStepLog = (f: string) => /\/runs\/[^/]+\/\d\d-[^/]+\.log$/.test(f);
    for (const f of filesUnder(s.stateDir)) {
      if (rawStepLog(f)) expect(statSync(f).mode & 0o077, f).toBe(0);
      outputs[f.slice(s.stateDir.length)] = readFileSync(f, 'latin1');
    }
    // the evidence bundle, journal and step logs (raw and copied) are among them
    expect(Object.keys(outputs).some((k) => k.includes('/evidence/') && k.endsWith('summary.md'))).toBe(true);
    expect(Object.keys(outputs).some((k) => k.includes('/steps/'))).toBe(true);
    const announced = Object.entries(outputs).filter(([k]) => rawStepLog(k) && k.includes('-before_stop-announce.log'));
    expect(announced.length).toBeGreaterThanOrEqual(2);
    for (const [, text] of announced) expect(text).toMatch(/as \*\*\* to postgres:\/\/app:\*\*\*@db\/app/);
    expect(bodies.length).toBeGreaterThanOrEqual(2);
    // the step really did print them: redaction, not silence, kept them out
    expect(r.stdout).toMatch(/as \*\*\* to postgres:\/\/app:\*\*\*@db\/app/);

    const leaks = Object.entries(outputs).flatMap(([where, text]) => CANARIES.filter((k) => text.includes(k)).map((k) => `${k} in ${where}`));
    expect(leaks).toEqual([]);
  });
});
