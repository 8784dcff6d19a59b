// A run survives a lost terminal: SIGHUP from a pseudo-terminal whose session leader dies mid-gates, and a
// stdout pipe closed early (`| head -1`). The run goes to its normal end and its summary lands in the journal.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { CLI, MARKER_VAR, sandboxPerTest, type Sandbox } from '../support/sandbox.js';

const setup = sandboxPerTest();
const HAVE_SCRIPT = existsSync('/usr/bin/script');

async function waitFor<T>(what: string, probe: () => T | null | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = probe();
    if (v !== null && v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
}

function journalSummary(s: Sandbox): { exitCode: number; outcome: string; warnings: string[] } | null {
  const rec = s.journals()[0]?.find((r) => r.type === 'summary');
  return rec ? (rec.summary as { exitCode: number; outcome: string; warnings: string[] }) : null;
}

function inGates(s: Sandbox): true | null {
  return s.journals()[0]?.some((r) => r.type === 'phase' && r.phase === 'gates' && r.status === 'started') ? true : null;
}

const quote = (a: string) => `'${a.replaceAll("'", "'\\''")}'`;
// gates that take a while, so the hangup lands inside them
const slowGates = (s: Sandbox) => `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    stable_for: 2s\n    timeout: 8s`;

describe('a lost terminal', () => {
  it.skipIf(!HAVE_SCRIPT && process.env.CI !== 'true')('SIGHUP from a pty whose session leader is killed mid-gates: the run finishes and journals its summary', async () => {
    const s = await setup();
    await s.startCurrent();
    const cmd = [process.execPath, CLI, 'run', s.recipe({ gates: slowGates(s) }), '--release', 'v2', '--state-dir', s.stateDir].map(quote).join(' ');
    // util-linux script gives the CLI a real terminal (the live view draws on it) in a session of its own
    const term = spawn('script', ['-qfec', cmd, '/dev/null'], { env: { ...process.env, [MARKER_VAR]: s.marker, TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    term.stdout?.resume();
    term.stderr?.resume();
    try {
      await waitFor('the gates phase', () => inGates(s));
      // the terminal goes away: script (the pty master) dies, the kernel hangs up the CLI's session
      process.kill(term.pid as number, 'SIGKILL');
      const sum = await waitFor('the run summary in the journal', () => journalSummary(s));
      expect(sum.exitCode).toBe(0);
      expect(sum.warnings.join('\n')).toMatch(/hung up \(SIGHUP\) during gates/);
      expect(s.journals()[0]?.some((r) => r.type === 'note' && String(r.detail).includes('SIGHUP'))).toBe(true);
      expect((await s.health())?.body).toMatch(/^ok v2 /);
      // history tells the outcome afterwards
      const h = await s.cli(['history', 'svc']);
      expect(h.stdout).toMatch(/succeeded/);
    } finally {
      try {
        process.kill(-(term.pid as number), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await s.stopService();
  });

  it('run --json | head -1: the closed pipe does not end the run', async () => {
    const s = await setup();
    await s.startCurrent();
    const cmd = `${[process.execPath, CLI, 'run', s.recipe(), '--release', 'v2', '--state-dir', s.stateDir, '--json'].map(quote).join(' ')} | head -1; echo "rc=\${PIPESTATUS[0]}" >&2`;
    const child = spawn('bash', ['-c', cmd], { env: { ...process.env, [MARKER_VAR]: s.marker }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (err += c));
    await new Promise((r) => child.on('close', r));
    expect(out.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(out).event).toBe('run_started');
    expect(err).toMatch(/rc=0/);
    expect(journalSummary(s)).toMatchObject({ exitCode: 0, outcome: 'succeeded' });
    expect(readFileSync(s.pidfile, 'utf8')).toMatch(/^\d+/);
    expect((await s.health())?.body).toMatch(/^ok v2 /);
    await s.stopService();
  });
});
