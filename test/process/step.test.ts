import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StepSpec } from '../../src/recipe/types.js';
import { groupMembers, readProcStat } from '../../src/process/group.js';
import { runStep, type RunStepOptions, type StepResult } from '../../src/process/step.js';
import { Cleanup, FIXTURES, pidsWithArg, waitFor } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

function step(run: string | string[], extra: Partial<StepSpec> = {}): StepSpec {
  return { name: 'test', run, timeoutMs: 30_000, env: {}, ...extra };
}

async function run(spec: StepSpec, opts: Partial<RunStepOptions> = {}): Promise<StepResult> {
  const result = await runStep(spec, {
    env: {},
    ...opts,
    onSpawn: (info) => {
      cleanup.group(info.pgid);
      opts.onSpawn?.(info);
    },
  });
  cleanup.group(result.pgid);
  return result;
}

describe('runStep: commands, env, cwd, exit codes', () => {
  it('runs a string through /bin/sh in its own process group', async () => {
    const seen: Array<{ pid: number; pgid: number }> = [];
    const result = await run(step(`echo "sum=$((1 + 2))"; echo "pgrp=$(cut -d' ' -f5 /proc/$$/stat)"`), { onSpawn: (i) => seen.push(i) });
    expect(result.ok).toBe(true);
    expect(result.exitCode).toBe(0);
    expect(result.outputTail).toContain('sum=3');
    expect(result.pid).toBeDefined();
    expect(result.pgid).toBe(result.pid);
    expect(seen).toEqual([{ pid: result.pid, pgid: result.pgid }]);
    expect(result.outputTail).toContain(`pgrp=${result.pid}`);
  });

  it('passes argv elements and env values verbatim: no shell ever interprets them', async () => {
    const dir = cleanup.tempDir();
    const pwned = join(dir, `pwned-${Math.random().toString(36).slice(2)}`);
    const hostile = `x; touch ${pwned}`;

    const viaArgv = await run(step(['/bin/echo', hostile, `$(touch ${pwned})`]));
    expect(viaArgv.ok).toBe(true);
    expect(viaArgv.outputTail).toBe(`${hostile} $(touch ${pwned})\n`);

    const viaEnv = await run(step('printf "%s\\n" "$HOSTILE"; echo $HOSTILE', { env: { HOSTILE: hostile } }));
    expect(viaEnv.ok).toBe(true);
    expect(viaEnv.outputTail).toContain(hostile);

    const viaArgvToShell = await run(step(['/bin/sh', '-c', 'printf "%s" "$1"', 'sh', hostile]));
    expect(viaArgvToShell.outputTail).toBe(hostile);
    expect(existsSync(pwned)).toBe(false);
  });

  it('merges env: inherited, then opts.env, then step.env', async () => {
    process.env.SR_TEST_INHERITED = 'inherited';
    try {
      const result = await run(
        step('echo "$SR_TEST_INHERITED|$SAFE_RESTART_PHASE|$LAYER|${PATH:+has-path}"', { env: { LAYER: 'step' } }),
        { env: { SAFE_RESTART_PHASE: 'start', LAYER: 'opts' } },
      );
      expect(result.outputTail).toBe('inherited|start|step|has-path\n');
    } finally {
      delete process.env.SR_TEST_INHERITED;
    }
  });

  it('runs in cwd, and reports a missing cwd as ENOENT without starting anything', async () => {
    const dir = cleanup.tempDir();
    const here = await run(step(['pwd'], { cwd: dir }));
    expect(here.outputTail).toBe(`${dir}\n`);

    const missing = await run(step(['pwd'], { cwd: join(dir, 'nope') }));
    expect(missing.ok).toBe(false);
    expect(missing.pid).toBeUndefined();
    expect(missing.error?.code).toBe('ENOENT');
    expect(missing.error?.message).toContain(join(dir, 'nope'));
  });

  it('reports exit codes, death by signal, and a missing binary', async () => {
    const failed = await run(step('echo out; echo failing >&2; exit 3'));
    expect(failed).toMatchObject({ ok: false, exitCode: 3, signal: null, timedOut: false, aborted: false });
    expect(failed.error?.code).toBe('EXIT_NONZERO');
    expect(failed.outputTail).toBe('out\nfailing\n');
    expect(failed.stdoutTail).toBe('out\n');

    const killed = await run(step('kill -KILL $$'));
    expect(killed).toMatchObject({ ok: false, exitCode: null, signal: 'SIGKILL' });
    expect(killed.error?.code).toBe('KILLED_BY_SIGNAL');

    const missing = await run(step(['/nonexistent/safe-restart-binary', 'x']));
    expect(missing).toMatchObject({ ok: false, pid: undefined, pgid: undefined });
    expect(missing.error?.code).toBe('ENOENT');

    const empty = await run(step([]));
    expect(empty.error?.code).toBe('EINVAL');
  });
});

describe('runStep: timeouts and aborts take down the whole group', () => {
  it('kills grandchildren on timeout and resolves with timedOut', async () => {
    const m1 = cleanup.marker();
    const m2 = cleanup.marker();
    const result = await run(step(`sleep ${m1} & sleep ${m2}`, { timeoutMs: 300 }));
    expect(result).toMatchObject({ ok: false, timedOut: true, aborted: false });
    expect(result.error?.code).toBe('ETIMEDOUT');
    expect(result.durationMs).toBeGreaterThanOrEqual(250);
    expect(result.durationMs).toBeLessThan(20_000);
    expect(groupMembers(result.pgid as number)).toEqual([]);
    expect(pidsWithArg(m1)).toEqual([]);
    expect(pidsWithArg(m2)).toEqual([]);
  });

  it('SIGKILLs a group that ignores SIGTERM after the grace period', async () => {
    const m = cleanup.marker();
    const controller = new AbortController();
    const result = await run(step([join(FIXTURES, 'ignore-term.sh'), m], { timeoutMs: 60_000 }), {
      killGraceMs: 300,
      signal: controller.signal,
      // Abort only once the trap is in place and the child exists.
      onOutput: (text) => {
        if (text.includes('ignoring TERM')) controller.abort();
      },
    });
    expect(result).toMatchObject({ ok: false, aborted: true, signal: 'SIGKILL' });
    expect(groupMembers(result.pgid as number)).toEqual([]);
    expect(pidsWithArg(m)).toEqual([]);
  });

  it('aborts via AbortSignal: SIGTERM to the group, no orphans, never rejects', async () => {
    const m = cleanup.marker();
    const controller = new AbortController();
    const pending = run(step(`sleep ${m} & sleep ${m}`), { signal: controller.signal });
    // Abort once both sleeps exist, so the abort really has a grandchild to kill.
    await waitFor(() => pidsWithArg(m).length === 2);
    controller.abort();
    const result = await pending;
    expect(result).toMatchObject({ ok: false, aborted: true, timedOut: false, signal: 'SIGTERM' });
    expect(result.error?.code).toBe('ABORTED');
    expect(groupMembers(result.pgid as number)).toEqual([]);
    expect(pidsWithArg(m)).toEqual([]);
  });

  it('does not start at all when the signal is already aborted', async () => {
    const dir = cleanup.tempDir();
    const result = await run(step(['touch', join(dir, 'ran')]), { signal: AbortSignal.abort() });
    expect(result).toMatchObject({ ok: false, aborted: true, pid: undefined });
    expect(existsSync(join(dir, 'ran'))).toBe(false);
  });
});

describe('runStep: daemonizing scripts and output', () => {
  it('resolves when a script exits even though its background child holds stdout (pipes)', async () => {
    const m = cleanup.marker();
    const result = await run(step(`sleep ${m} & echo started`, { timeoutMs: 60_000 }));
    expect(result.ok).toBe(true);
    expect(result.outputTail).toBe('started\n');
    expect(result.durationMs).toBeLessThan(20_000);
    // Success leaves what the script started alone: that is the start script's business.
    const left = pidsWithArg(m);
    expect(left).toHaveLength(1);
    expect(readProcStat(left[0] as number)?.pgid).toBe(result.pgid);
  });

  it('does not SIGPIPE a background child that writes to the pipes after the script exited', async () => {
    const m = cleanup.marker();
    const dir = cleanup.tempDir();
    const go = join(dir, 'go');
    const result = await run(step(`(while [ ! -e ${go} ]; do sleep 0.02; done; echo later; exec sleep ${m}) & echo started`));
    expect(result.ok).toBe(true);
    writeFileSync(go, '');
    // Had `echo later` hit a closed pipe, the subshell would die before exec'ing the marked sleep.
    await waitFor(() => pidsWithArg(m).length === 1);
  });

  it('with outputFile, writes straight to the file, streams it to onOutput, and resolves on exit', async () => {
    const m = cleanup.marker();
    const dir = cleanup.tempDir();
    const log = join(dir, 'out.log');
    const flag = join(dir, 'flag');
    writeFileSync(log, 'earlier line\n');
    const chunks: string[] = [];
    const result = await run(
      step(`echo one; while [ ! -e ${flag} ]; do sleep 0.02; done; echo two >&2; sleep ${m} & echo started`),
      {
        outputFile: log,
        pollMs: 20,
        onOutput: (text) => {
          chunks.push(text);
          // Streaming, not buffered until exit: the script waits for this.
          if (text.includes('one')) writeFileSync(flag, '');
        },
      },
    );
    expect(result.ok).toBe(true);
    expect(chunks.join('')).toBe('one\ntwo\nstarted\n');
    expect(result.outputTail).toBe('one\ntwo\nstarted\n');
    expect(readFileSync(log, 'utf8')).toBe('earlier line\none\ntwo\nstarted\n');
    // the background job outlives the step; it may not have exec'd `sleep` yet when the script's own shell exits
    await waitFor(() => pidsWithArg(m).length === 1);
  });

  it('streams piped output to onOutput while the step runs', async () => {
    const dir = cleanup.tempDir();
    const flag = join(dir, 'flag');
    const chunks: string[] = [];
    const result = await run(step(`echo one; while [ ! -e ${flag} ]; do sleep 0.02; done; echo two`), {
      onOutput: (text) => {
        chunks.push(text);
        if (text.includes('one')) writeFileSync(flag, '');
      },
    });
    expect(result.ok).toBe(true);
    expect(chunks.join('')).toBe('one\ntwo\n');
  });

  it('keeps only the last 4 KiB of output, from pipes and from a file', async () => {
    const script = "head -c 10000 /dev/zero | tr '\\0' a; printf 'é END'";
    const piped = await run(step(script));
    expect(Buffer.byteLength(piped.outputTail)).toBeLessThanOrEqual(4096);
    expect(piped.outputTail.endsWith('aé END')).toBe(true);

    const dir = cleanup.tempDir();
    const toFile = await run(step(script), { outputFile: join(dir, 'out.log') });
    expect(Buffer.byteLength(toFile.outputTail)).toBeLessThanOrEqual(4096);
    expect(toFile.outputTail.endsWith('aé END')).toBe(true);
    expect(toFile.outputTail).toBe(piped.outputTail);
  });
});

describe('runStep: redact', () => {
  const SECRET = 'Canary-Step-5u7Yt';
  const redact = (text: string): string => text.split(SECRET).join('***');

  it('rewrites the output file redacted once the step ended, private, and redacts the tails', async () => {
    const dir = cleanup.tempDir();
    const log = join(dir, 'out.log');
    // a secret on every line, one split across two writes, and a long line around it
    const script = `echo "as $DB_PASSWORD"; printf 'Canary-'; printf 'Step-5u7Yt end\\n' >&2; head -c 3000000 /dev/zero | tr '\\0' b; echo " $DB_PASSWORD"`;
    const result = await run(step(script, { env: { DB_PASSWORD: SECRET } }), { outputFile: log, redact });
    expect(result.ok).toBe(true);
    expect(result.redactionError).toBeUndefined();
    const text = readFileSync(log, 'utf8');
    expect(text).not.toContain(SECRET);
    expect(text.startsWith('as ***\n*** end\nbbb')).toBe(true);
    expect(text.endsWith('b ***\n')).toBe(true);
    expect(text.length).toBe('as ***\n*** end\n'.length + 3_000_000 + ' ***\n'.length);
    expect(statSync(log).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['out.log']);
    expect(result.outputTail).not.toContain(SECRET);
    expect(result.outputTail.endsWith('b ***\n')).toBe(true);
  });

  it('leaves a file with nothing to redact as it is (a background writer keeps appending to it)', async () => {
    const dir = cleanup.tempDir();
    const log = join(dir, 'out.log');
    writeFileSync(log, 'earlier line\n', { mode: 0o600 });
    const before = statSync(log).ino;
    const result = await run(step('echo nothing secret'), { outputFile: log, redact });
    expect(result.ok).toBe(true);
    expect(statSync(log).ino).toBe(before);
    expect(readFileSync(log, 'utf8')).toBe('earlier line\nnothing secret\n');
    expect(readdirSync(dir)).toEqual(['out.log']);
  });

  it('says so when the file cannot be rewritten, and the step keeps its outcome', async () => {
    const dir = cleanup.tempDir();
    const log = join(dir, 'out.log');
    // something already occupies the temp file's name (it is created O_EXCL, never reused or removed)
    const squatter = `${log}.redacting-${process.pid}`;
    mkdirSync(squatter);
    const result = await run(step('echo "$DB_PASSWORD"', { env: { DB_PASSWORD: SECRET } }), { outputFile: log, redact });
    expect(result.ok).toBe(true);
    expect(result.redactionError).toMatch(/could not redact .*out\.log: EEXIST/);
    expect(result.outputTail).toBe('***\n');
    expect(statSync(squatter).isDirectory()).toBe(true);
  });
});
