import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { attempt } from '../../src/checks/command.js';
import type { CommandProbe } from '../../src/recipe/types.js';
import type { AttemptResult } from '../../src/checks/types.js';
import { Cleanup, pidsWithArg, waitFor } from '../process/helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

// As the poller does it: the signal fires at the attempt's deadline.
async function attemptOnce(command: CommandProbe['command'], timeoutMs = 10_000, signal?: AbortSignal): Promise<AttemptResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`attempt_timeout ${timeoutMs}ms`)), timeoutMs);
  signal?.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  try {
    return await attempt({ type: 'command', command }, { signal: controller.signal, timeoutMs });
  } finally {
    clearTimeout(timer);
  }
}

describe('command check', () => {
  it('is ready on exit 0, with the output in detail and output', async () => {
    const result = await attemptOnce(['/bin/sh', '-c', 'echo accepting connections']);
    expect(result.ok).toBe(true);
    expect(result.error).toBeNull();
    expect(result.detail).toContain('accepting connections');
    expect(result.output).toBe('accepting connections\n');
  });

  it('fails with COMMAND_FAILED, the exit code and what it printed', async () => {
    const result = await attemptOnce('echo "no response from server" >&2; exit 2');
    expect(result.ok).toBe(false);
    expect(result.error?.code).toBe('COMMAND_FAILED');
    expect(result.error?.message).toContain('exited with code 2');
    expect(result.detail).toContain('no response from server');
    expect(result.output).toBe('no response from server\n');
  });

  it('caps the output at 4 KiB and keeps the detail short', async () => {
    const result = await attemptOnce("head -c 20000 /dev/zero | tr '\\0' x; echo; echo LAST; exit 1");
    expect(Buffer.byteLength(result.output ?? '')).toBeLessThanOrEqual(4096);
    expect(result.output?.endsWith('LAST\n')).toBe(true);
    expect(result.detail.length).toBeLessThan(400);
    expect(result.detail).toContain('LAST');
  });

  it('on attempt timeout reports ETIMEDOUT and kills the whole group, grandchildren too', async () => {
    const m1 = cleanup.marker();
    const m2 = cleanup.marker();
    const pending = attemptOnce(`sleep ${m1} & sleep ${m2}`, 500);
    await waitFor(() => pidsWithArg(m1).length === 1 && pidsWithArg(m2).length === 1);
    const result = await pending;
    expect(result.ok).toBe(false);
    expect(result.error?.code).toBe('ETIMEDOUT');
    expect(result.error?.message).toContain('500 ms');
    expect(pidsWithArg(m1)).toEqual([]);
    expect(pidsWithArg(m2)).toEqual([]);
  });

  it('reports a cancellation before the deadline as ABORTED, also without orphans', async () => {
    const m = cleanup.marker();
    const run = new AbortController();
    const pending = attemptOnce(`sleep ${m} & sleep ${m}`, 60_000, run.signal);
    await waitFor(() => pidsWithArg(m).length === 2);
    run.abort(new Error('run cancelled'));
    const result = await pending;
    expect(result.error?.code).toBe('ABORTED');
    expect(pidsWithArg(m)).toEqual([]);
  });

  it('reports a missing binary as ENOENT, as argv and through the shell', async () => {
    const argv = await attemptOnce(['/nonexistent/pg_isready', '-h', 'db']);
    expect(argv.ok).toBe(false);
    expect(argv.error?.code).toBe('ENOENT');
    expect(argv.detail).toContain('/nonexistent/pg_isready');

    const viaShell = await attemptOnce('safe-restart-no-such-command --ping');
    expect(viaShell.error?.code).toBe('ENOENT');
    expect(viaShell.detail).toContain('not found');
  });

  it('leaves no file descriptors behind across attempts', async () => {
    const before = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 20; i++) await attemptOnce(['true']);
    // The check must not leak pipes per attempt (allow for unrelated fds vitest may open).
    expect(readdirSync('/proc/self/fd').length).toBeLessThan(before + 5);
  });
});
