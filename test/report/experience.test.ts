// The on-call and CI experience through the real CLI: live and plain output, history and status,
// notifications, confirmation, the evidence bundle and GitHub annotations.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CLI, MARKER_VAR, sandboxPerTest, summaryOf, type Sandbox } from '../support/sandbox.js';

const servers: http.Server[] = [];
const setup = sandboxPerTest();
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});



/** A real webhook receiver that records every request; `hang` never answers. */
async function receiver(mode: 'ok' | 'hang' = 'ok'): Promise<{ url: string; received: Array<{ headers: http.IncomingHttpHeaders; body: string }> }> {
  const received: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      if (mode === 'ok') res.end('ok');
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook/s3cr3t-path`, received };
}

/** Run a command under a pseudo-terminal (util-linux `script`), feeding `input` to it. */
function underPty(s: Sandbox, command: string, opts: { env?: Record<string, string>; input?: string } = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    // the marker lets the sandbox find (and clean up) everything started under the terminal
    const env = { ...process.env, [MARKER_VAR]: s.marker, ...opts.env };
    const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: s.dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    if (opts.input !== undefined) {
      // answer once the prompt is on the screen
      const timer = setInterval(() => {
        if (output.includes('Proceed?')) {
          clearInterval(timer);
          child.stdin.write(opts.input);
        }
      }, 20);
      child.on('close', () => clearInterval(timer));
    }
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('live progress', () => {
  it('on a terminal: a live view with a spinner, collapsing finished phases', async () => {
    const s = await setup();
    await s.startCurrent();
    const file = s.recipe();
    const r = await underPty(s, `${process.execPath} ${CLI} run ${file} --release v2 --state-dir ${s.stateDir}`, { env: { FORCE_COLOR: '0' } });
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] gates/);
    expect(r.output).toMatch(/✓ dependencies/);
    expect(r.output).toMatch(/SUCCEEDED \(exit 0\)/);
    expect(r.output).toMatch(/Timeline:/);
    await s.stopService();
  });

  it('not a terminal: plain timestamped lines, no spinner, no line per poll attempt', async () => {
    const s = await setup();
    await s.startCurrent();
    await s.stopDependency();
    const deps = `  - name: fake-db\n    tcp: 127.0.0.1:${s.depPort}\n    interval: 100ms\n    timeout: 7s`;
    const r = await s.cli(['run', s.recipe({ dependencies: deps }), '--release', 'v2'], { json: false });
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
    expect(r.stderr).not.toMatch(/\u001b\[/);
    const lines = r.stderr.split('\n');
    for (const l of lines.filter((l) => l.startsWith('['))) expect(l).toMatch(/^\[\s*\d+\.\d{3}s\] /);
    // ~70 attempts, but at most one progress line per 5 s
    const progress = lines.filter((l) => l.includes('still waiting'));
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.length).toBeLessThanOrEqual(2);
    await s.stopService();
  });

  it('--quiet prints only the outcome', async () => {
    const s = await setup();
    await s.startCurrent();
    const r = await s.cli(['run', s.recipe(), '--release', 'v2', '--quiet'], { json: false });
    expect(r.code).toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/now serving release v2 \(was release v1\) \(exit 0\)/);
    await s.stopService();
  });
});

describe('history and status', () => {
  it('list real runs newest first, and status names the last good release and an unfinished run', async () => {
    const s = await setup({ v1: {}, v2: {}, v3: { broken: true } });
    await s.startCurrent();
    const file = s.recipe();
    expect((await s.cli(['run', file, '--release', 'v2', '--reason', 'CHG-1234'])).code).toBe(0);
    expect((await s.cli(['run', file, '--release', 'v3'])).code).toBe(2);
    const h = await s.cli(['history', '--json'], { json: false });
    expect(h.code).toBe(0);
    const { runs } = JSON.parse(h.stdout) as { runs: Array<Record<string, unknown>> };
    expect(runs.map((r) => [r.outcome, r.exitCode, r.previousRelease, r.targetRelease])).toEqual([
      ['rolled_back', 2, 'v2', 'v3'],
      ['succeeded', 0, 'v1', 'v2'],
    ]);
    expect(runs[1]).toMatchObject({ recipe: 'svc', userReason: 'CHG-1234' });
    for (const r of runs) expect(Object.keys(r)).toEqual(expect.arrayContaining(['runId', 'recipe', 'startedAt', 'previousRelease', 'targetRelease', 'outcome', 'exitCode', 'durationMs', 'reason']));
    const human = await s.cli(['history', 'svc', '--limit', '1'], { json: false });
    expect(human.stdout).toMatch(/rolled_back\s+2/);
    expect(human.stdout).not.toMatch(/CHG-1234/);

    let st = JSON.parse((await s.cli(['status', '--json'], { json: false })).stdout) as { recipes: Array<Record<string, unknown>> };
    expect(st.recipes).toEqual([expect.objectContaining({ recipe: 'svc', lastGoodRelease: 'v2', inProgress: false, unfinished: false })]);

    // a run killed mid-flight is unfinished until recover
    const gates = `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    timeout: 30s`;
    const killed = s.start(['run', s.recipe({ gates }), '--release', 'v3']);
    await killed.waitForEvent((e) => e.event === 'check_started' && e.phase === 'gates');
    st = JSON.parse((await s.cli(['status', '--json'], { json: false })).stdout) as typeof st;
    expect(st.recipes[0]).toMatchObject({ inProgress: true });
    killed.child.kill('SIGKILL');
    await killed.done;
    const text = await s.cli(['status'], { json: false });
    expect(text.stdout).toContain(`UNFINISHED run – run \`safe-restart recover ${file}\``);
    st = JSON.parse((await s.cli(['status', '--json'], { json: false })).stdout) as typeof st;
    expect(st.recipes[0]).toMatchObject({ inProgress: false, unfinished: true });
    expect((await s.cli(['recover', file])).code).toBe(2);
    st = JSON.parse((await s.cli(['status', '--json'], { json: false })).stdout) as typeof st;
    expect(st.recipes[0]).toMatchObject({ unfinished: false, lastGoodRelease: 'v2' });
    await s.stopService();
  });
});

describe('notifications', () => {
  it('posts the outcome to a real local webhook, json and slack formats, secrets redacted', async () => {
    const s = await setup({ v1: {}, v3: { broken: true } });
    await s.startCurrent();
    const json = await receiver();
    const slack = await receiver();
    const extra = [
      'vars:',
      '  API_TOKEN: tok-canary-123',
      'notify:',
      `  - url: ${json.url}`,
      '    on: [started, rolled_back]',
      '    headers: { Authorization: "Bearer ${API_TOKEN}" }',
      `  - url: ${slack.url}`,
      '    format: slack',
    ].join('\n');
    const r = await s.cli(['run', s.recipe({ extra }), '--release', 'v3', '--reason', 'INC-42 tok-canary-123']);
    expect(r.code).toBe(2);
    const events = json.received.map((x) => JSON.parse(x.body) as Record<string, unknown>);
    expect(events.map((e) => e.event).sort()).toEqual(['rolled_back', 'started']);
    const final = events.find((e) => e.event === 'rolled_back') as Record<string, unknown>;
    expect(final).toMatchObject({ recipe: 'svc', previousRelease: 'v1', targetRelease: 'v3', outcome: 'rolled_back', userReason: 'INC-42 ***' });
    expect(final.evidence).toMatch(/evidence/);
    expect(json.received[0]?.headers.authorization).toBe('Bearer tok-canary-123');
    expect(slack.received).toHaveLength(1);
    expect((JSON.parse(slack.received[0]?.body ?? '{}') as { text: string }).text).toMatch(/rolled_back.*v1 → v3/);
    for (const x of [...json.received, ...slack.received]) expect(x.body).not.toContain('tok-canary-123');
    await s.stopService();
  });

  it('a webhook that never answers costs at most its budget and never changes the outcome', async () => {
    const s = await setup();
    await s.startCurrent();
    const hang = await receiver('hang');
    const extra = ['notify:', `  - url: ${hang.url}`, '    on: [succeeded]', '    timeout: 1s'].join('\n');
    const started = Date.now();
    const r = await s.cli(['run', s.recipe({ extra }), '--release', 'v2']);
    expect(r.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    const summary = summaryOf(r).summary as { warnings: string[] };
    expect(summary.warnings.join('\n')).toMatch(/notification to http:\/\/127\.0\.0\.1:\d+\/… failed: no answer within its 1000ms budget/);
    expect(summary.warnings.join('\n')).not.toContain('s3cr3t-path');
    await s.stopService();
  });
});

describe('confirmation', () => {
  it('without a terminal and without --yes: exit 64, nothing touched; with --yes it runs', async () => {
    const s = await setup();
    const pid = await s.startCurrent();
    const file = s.recipe({ extra: 'confirm: true' });
    const no = await s.cli(['run', file, '--release', 'v2'], { json: false });
    expect(no.code).toBe(64);
    expect(no.stderr).toMatch(/stdin is not a terminal – pass --yes/);
    expect(s.pid()).toBe(pid);
    const yes = await s.cli(['run', file, '--release', 'v2', '--yes']);
    expect(yes.code).toBe(0);
    await s.stopService();
  });

  it('on a terminal: the plan, then Proceed? [y/N]; "n" touches nothing, "y" runs', async () => {
    const s = await setup();
    const pid = await s.startCurrent();
    const base = `${process.execPath} ${CLI} run ${s.recipe()} --release v2 --state-dir ${s.stateDir} --confirm --no-tty`;
    const no = await underPty(s, base, { input: 'n\n' });
    expect(no.output).toMatch(/Proceed\? \[y\/N\]/);
    expect(no.code).toBe(1);
    expect(s.pid()).toBe(pid);
    const yes = await underPty(s, base, { input: 'y\n' });
    expect(yes.code, yes.output).toBe(0);
    expect(s.pid()).not.toBe(pid);
    await s.stopService();
  });
});

describe('evidence bundle', () => {
  it('a rollback writes journal, step output, failing checks with their last response, the redacted recipe and summary.md', async () => {
    const s = await setup({ v1: {}, v3: { broken: true } });
    await s.startCurrent();
    const extra = 'vars:\n  DB_PASSWORD: pw-canary-789';
    const hooks = `  before_stop:\n    - run: ["sh", "-c", "echo draining from lb with \${DB_PASSWORD}"]`;
    const r = await s.cli(['run', s.recipe({ extra, hooks }), '--release', 'v3', '--reason', 'CHG-77']);
    expect(r.code).toBe(2);
    const summary = summaryOf(r).summary as { evidence: string; runId: string };
    expect(summary.evidence).toBe(join(s.stateDir, 'evidence', summary.runId));
    const files = readdirSync(summary.evidence).sort();
    expect(files).toEqual(['checks.json', 'journal.jsonl', 'recipe.yaml', 'service', 'steps', 'summary.md']);
    // the spawned service's own log, as the service manager saw it
    expect(readFileSync(join(summary.evidence, 'service', 'service-log-tail.txt'), 'utf8')).toMatch(/v3 listening on/);
    const checks = JSON.parse(readFileSync(join(summary.evidence, 'checks.json'), 'utf8')) as Array<{ name: string; phase: string; error: { code: string }; last: { http: { status: number; bodySnippet: string; headers: Record<string, string> } } }>;
    expect(checks[0]).toMatchObject({ name: 'healthz', phase: 'gates', error: { code: 'HTTP_STATUS' }, last: { http: { status: 503, bodySnippet: 'unhealthy\n' } } });
    expect(checks[0]?.last.http.headers['content-type']).toBe('text/plain');
    const steps = readdirSync(join(summary.evidence, 'steps'));
    expect(steps.some((f) => f.includes('before_stop'))).toBe(true);
    const md = readFileSync(join(summary.evidence, 'summary.md'), 'utf8');
    expect(md).toMatch(/# safe-restart: svc rolled back \(exit 2\)/);
    expect(md).toMatch(/switch svc from release v1 to v3 — reason: CHG-77/);
    expect(md).toMatch(/\| gates \|.*\| failed \|/);
    expect(md).toMatch(/last HTTP status 503/);
    const journal = readFileSync(join(summary.evidence, 'journal.jsonl'), 'utf8');
    expect(journal).toMatch(/"type":"summary"/);
    for (const f of ['checks.json', 'journal.jsonl', 'recipe.yaml', 'summary.md', ...steps.map((x) => join('steps', x))]) {
      expect(readFileSync(join(summary.evidence, f), 'utf8')).not.toContain('pw-canary-789');
    }
    expect(readFileSync(join(summary.evidence, 'recipe.yaml'), 'utf8')).toContain('DB_PASSWORD: ***');
    await s.stopService();
  });

  it('a successful run writes no bundle', async () => {
    const s = await setup();
    await s.startCurrent();
    const r = await s.cli(['run', s.recipe(), '--release', 'v2']);
    expect(r.code).toBe(0);
    expect(existsSync(join(s.stateDir, 'evidence'))).toBe(false);
    await s.stopService();
  });
});

describe('CI conventions', () => {
  it('GitHub Actions: groups per phase, ::error:: with the reason, and a Markdown step summary', async () => {
    const s = await setup({ v1: {}, v3: { broken: true } });
    await s.startCurrent();
    const stepSummary = join(s.dir, 'step-summary.md');
    writeFileSync(stepSummary, '');
    const r = await s.cli(['run', s.recipe(), '--release', 'v3'], { json: false, env: { GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: stepSummary } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^::group::dependencies: 1 check$/m);
    expect(r.stderr.match(/^::group::/gm)?.length).toBe(r.stderr.match(/^::endgroup::$/gm)?.length);
    expect(r.stderr).toMatch(/^::error title=safe-restart svc rolled_back \(exit 2\)::gates failed: .*rolled back to release v1/m);
    const md = readFileSync(stepSummary, 'utf8');
    expect(md).toMatch(/### ↩️ safe-restart svc: rolled back \(exit 2\)/);
    expect(md).toMatch(/\| rollback_gates \|/);
    await s.stopService();
  });
});
