// Runs one recipe step as a child in its own process group, bounded by its timeout and an AbortSignal.
// Built on node:child_process rather than execa: execa resolves only once stdout/stderr close (a daemonizing
// script's background child keeps them open: execa#1191) and its timeout/cancelSignal signal only the direct
// child, never its group. Here the step ends at the child's EXIT and timeouts take down the whole group.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { StepSpec } from '../recipe/types.js';
import { groupMembers, killGroup, waitForGroupGone } from './group.js';
import { redactFile } from './redact-file.js';
import { readAppended, TailBuffer, TAIL_BYTES } from './tail.js';

export interface StepResult {
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
  pid: number | undefined;
  pgid: number | undefined;
  /** Last 4 KiB of stdout+stderr, interleaved as written. */
  outputTail: string;
  /** Last 4 KiB of stdout alone; only without outputFile (a shared file cannot be split). */
  stdoutTail?: string;
  error?: { code: string; message: string };
  /** Set when outputFile could not be rewritten redacted (it still holds what the step wrote). */
  redactionError?: string;
}

export interface RunStepOptions {
  /** Layered over process.env, under step.env. */
  env: Record<string, string>;
  /** stdout/stderr go straight to this file (append); the tail is read back from it. */
  outputFile?: string;
  signal?: AbortSignal;
  /** Called synchronously once the child exists, before anything else can happen to it. Must not throw. */
  onSpawn?: (info: { pid: number; pgid: number }) => void;
  onOutput?: (text: string) => void;
  /** First signal sent to the group on timeout/abort (default SIGTERM). */
  killSignal?: NodeJS.Signals;
  /** Time between killSignal and SIGKILL of the group (default 2000 ms). */
  killGraceMs?: number;
  /** How often outputFile is read for onOutput (default 100 ms). */
  pollMs?: number;
  /** Applied to the tails, and to outputFile once the step has ended (rewritten redacted). */
  redact?: (text: string) => string;
}

export const STEP_DEFAULTS = {
  killSignal: 'SIGTERM' as NodeJS.Signals,
  killGraceMs: 2_000,
  pollMs: 100,
  /** After the child exits, how long to keep reading pipes a background process may hold open. */
  drainMs: 100,
  /** After SIGKILL, how long to wait for the group to disappear before reporting survivors. */
  reapMs: 5_000,
  /** Most bytes read from outputFile per poll; output beyond that between two polls is skipped. */
  pollMaxBytes: 64 * 1024,
} as const;

// setTimeout overflows past 2^31-1 ms and fires at once.
const MAX_TIMER_MS = 2_147_483_647;

/** A string runs through /bin/sh -c; an array is an argv, no shell. */
export function stepArgv(run: string[] | string): string[] {
  return typeof run === 'string' ? ['/bin/sh', '-c', run] : [...run];
}

/** process.env, then each layer over it; undefined values dropped. */
export function mergeEnv(...layers: Array<Record<string, string | undefined> | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const layer of [process.env, ...layers]) {
    for (const [key, value] of Object.entries(layer ?? {})) {
      if (value !== undefined) env[key] = value;
    }
  }
  return env;
}

export interface GroupTermination {
  gone: boolean;
  escalated: boolean;
  error?: Error;
}

/**
 * Sends killSignal to the group, waits up to graceMs, then SIGKILLs it and waits up to reapMs.
 * `leaderReaped` tells whether pgid could already name someone else's group: while our child is unreaped
 * its pid (the pgid) cannot be reused, afterwards we only signal a group that still has members.
 */
export async function terminateGroup(
  pgid: number,
  opts: { killSignal: NodeJS.Signals; graceMs: number; reapMs: number; leaderReaped: () => boolean },
): Promise<GroupTermination> {
  const stillOurs = (): boolean => !opts.leaderReaped() || groupMembers(pgid).length > 0;
  try {
    if (stillOurs()) killGroup(pgid, opts.killSignal);
    if (await waitForGroupGone(pgid, opts.graceMs)) return { gone: true, escalated: false };
    if (stillOurs()) killGroup(pgid, 'SIGKILL');
    return { gone: await waitForGroupGone(pgid, opts.reapMs), escalated: true };
  } catch (error) {
    return { gone: groupMembers(pgid).length === 0, escalated: false, error: error as Error };
  }
}

export async function runStep(step: StepSpec, opts: RunStepOptions): Promise<StepResult> {
  const started = performance.now();
  const tail = new TailBuffer(TAIL_BYTES);
  const stdoutTail = opts.outputFile === undefined ? new TailBuffer(TAIL_BYTES) : undefined;
  const clean = (text: string): string => (opts.redact ? opts.redact(text) : text);
  let redactionError: string | undefined;
  const result = (fields: Partial<StepResult>): StepResult => ({
    ok: false,
    exitCode: null,
    signal: null,
    timedOut: false,
    aborted: false,
    durationMs: Math.round(performance.now() - started),
    pid: undefined,
    pgid: undefined,
    outputTail: clean(tail.toString()),
    ...(stdoutTail ? { stdoutTail: clean(stdoutTail.toString()) } : {}),
    ...(redactionError ? { redactionError } : {}),
    ...fields,
  });
  const label = `step "${step.name}"`;

  const argv = stepArgv(step.run);
  const file = argv[0];
  if (!file) return result({ error: { code: 'EINVAL', message: `${label} has an empty command` } });
  if (opts.signal?.aborted) {
    return result({ aborted: true, error: { code: 'ABORTED', message: `${label} aborted before it started` } });
  }
  if (step.cwd !== undefined && !isDirectory(step.cwd)) {
    return result({ error: { code: 'ENOENT', message: `${label}: working directory ${step.cwd} does not exist` } });
  }

  let outFd: number | undefined;
  let fileOffset = 0;
  if (opts.outputFile !== undefined) {
    try {
      // step output may carry secrets the step printed: private like the journal
      outFd = openSync(opts.outputFile, 'a', 0o600);
      fileOffset = fstatSync(outFd).size;
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      return result({
        error: { code: e.code ?? 'EIO', message: `${label}: cannot open output file ${opts.outputFile}: ${e.message}` },
      });
    }
  }

  let child: ChildProcess;
  try {
    child = spawn(file, argv.slice(1), {
      cwd: step.cwd,
      env: mergeEnv(opts.env, step.env),
      // detached = setsid(): a new session and process group led by the child, so pgid === pid.
      detached: true,
      stdio: ['ignore', outFd ?? 'pipe', outFd ?? 'pipe'],
    });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return result({ error: { code: e.code ?? 'ESPAWN', message: `${label} could not start: ${e.message}` } });
  } finally {
    // The child holds its own copy; ours must not keep the file open.
    if (outFd !== undefined) closeSync(outFd);
  }

  const pid = child.pid;
  const pgid = pid;
  let reaped = false;
  let reason: 'timeout' | 'abort' | null = null;
  let termination: Promise<GroupTermination> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let poller: NodeJS.Timeout | undefined;

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      reaped = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve({ code, signal });
    });
  });
  const failed = new Promise<NodeJS.ErrnoException>((resolve) => {
    child.on('error', (error) => {
      // After a successful spawn an 'error' can only come from kill(); the exit event still decides.
      if (pid === undefined) resolve(error);
    });
  });

  // Resolves only when termination could not end the group (a leader in uninterruptible sleep never exits).
  let giveUp: (value: null) => void = () => {};
  const gaveUp = new Promise<null>((resolve) => (giveUp = resolve));
  const terminate = (why: 'timeout' | 'abort'): void => {
    if (reason !== null || reaped || pgid === undefined) return;
    reason = why;
    termination = terminateGroup(pgid, {
      killSignal: opts.killSignal ?? STEP_DEFAULTS.killSignal,
      graceMs: opts.killGraceMs ?? STEP_DEFAULTS.killGraceMs,
      reapMs: STEP_DEFAULTS.reapMs,
      leaderReaped: () => reaped,
    });
    void termination.then((t) => {
      if (!t.gone) giveUp(null);
    });
  };
  function onAbort(): void {
    terminate('abort');
  }

  // Output: from pipes, or by polling the file the child writes to.
  const decoders: StringDecoder[] = [];
  const deliver = (decoder: StringDecoder, chunk: Buffer): void => {
    tail.push(chunk);
    if (opts.onOutput) {
      const text = decoder.write(chunk);
      if (text) safeCall(() => opts.onOutput?.(text));
    }
  };
  const pipes = [child.stdout, child.stderr].filter((s): s is Readable => s !== null);
  for (const stream of pipes) {
    const decoder = new StringDecoder('utf8');
    decoders.push(decoder);
    stream.on('data', (chunk: Buffer) => {
      if (stream === child.stdout) stdoutTail?.push(chunk);
      deliver(decoder, chunk);
    });
    stream.on('error', () => {});
  }
  const fileDecoder = new StringDecoder('utf8');
  const pumpFile = (maxBytes: number): void => {
    if (opts.outputFile === undefined) return;
    try {
      const read = readAppended(opts.outputFile, fileOffset, maxBytes);
      fileOffset = read.offset;
      if (read.bytes.length > 0) deliver(fileDecoder, read.bytes);
    } catch {
      // The file vanished or became unreadable: the step itself is unaffected.
    }
  };

  if (pid === undefined) {
    const error = await failed;
    return result({
      error: { code: error.code ?? 'ESPAWN', message: `${label} could not start ${file}: ${error.message}` },
    });
  }

  if (opts.outputFile !== undefined && opts.onOutput) {
    poller = setInterval(() => pumpFile(STEP_DEFAULTS.pollMaxBytes), opts.pollMs ?? STEP_DEFAULTS.pollMs);
  }
  let callbackError: Error | undefined;
  if (opts.onSpawn) {
    try {
      opts.onSpawn({ pid, pgid: pid });
    } catch (error) {
      // Whoever needed to record this child could not: do not leave it running unrecorded.
      callbackError = error as Error;
      terminate('abort');
    }
  }
  if (Number.isFinite(step.timeoutMs) && step.timeoutMs > 0) {
    timer = setTimeout(() => terminate('timeout'), Math.min(step.timeoutMs, MAX_TIMER_MS));
  }
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  // Aborted while onSpawn ran (e.g. the journal write failed and the caller aborted): the listener came too late.
  if (opts.signal?.aborted) terminate('abort');

  const exit = await Promise.race([exited, gaveUp]);
  const ended = termination ? await termination : undefined;

  clearTimeout(timer);
  clearInterval(poller);
  opts.signal?.removeEventListener('abort', onAbort);
  if (opts.outputFile !== undefined) {
    pumpFile(opts.onOutput ? STEP_DEFAULTS.pollMaxBytes : TAIL_BYTES);
    flush(fileDecoder, opts.onOutput);
    if (opts.redact) {
      try {
        redactFile(opts.outputFile, opts.redact);
      } catch (error) {
        redactionError = `${label}: could not redact ${opts.outputFile}: ${(error as Error).message}`;
      }
    }
  } else {
    await drainPipes(pipes, STEP_DEFAULTS.drainMs);
    for (const decoder of decoders) flush(decoder, opts.onOutput);
  }

  const base: Partial<StepResult> = {
    pid,
    pgid,
    exitCode: exit?.code ?? null,
    signal: exit?.signal ?? null,
    timedOut: reason === 'timeout',
    aborted: reason === 'abort',
  };
  if (ended && !ended.gone) {
    const survivors = groupMembers(pid);
    return result({
      ...base,
      error: {
        code: 'GROUP_SURVIVED',
        message: `${label}: process group ${pid} still has ${survivors.length} process(es) after SIGKILL (${survivors.join(', ')})${ended.error ? `: ${ended.error.message}` : ''}`,
      },
    });
  }
  if (callbackError) {
    return result({ ...base, error: { code: 'CALLBACK_FAILED', message: `${label}: onSpawn threw: ${callbackError.message}` } });
  }
  if (reason === 'timeout') {
    const how = ended?.escalated ? 'killed with SIGKILL' : `ended with ${opts.killSignal ?? STEP_DEFAULTS.killSignal}`;
    return result({
      ...base,
      error: { code: 'ETIMEDOUT', message: `${label} timed out after ${step.timeoutMs} ms; process group ${pid} ${how}` },
    });
  }
  if (reason === 'abort') {
    return result({ ...base, error: { code: 'ABORTED', message: `${label} aborted; process group ${pid} ended` } });
  }
  if (exit?.code === 0) return result({ ...base, ok: true });
  if (exit?.signal) {
    return result({ ...base, error: { code: 'KILLED_BY_SIGNAL', message: `${label} was killed by ${exit.signal}` } });
  }
  return result({ ...base, error: { code: 'EXIT_NONZERO', message: `${label} exited with code ${exit?.code}` } });
}

/**
 * Reads what the child wrote before it exited, then lets go: waits for the pipes to close, at most drainMs
 * (a background process may hold them forever). Afterwards data is discarded, not left unread, so that
 * process neither blocks on a full pipe nor gets SIGPIPE while we live; the pipes no longer hold our event loop.
 */
async function drainPipes(pipes: Readable[], drainMs: number): Promise<void> {
  await Promise.race([
    Promise.all(pipes.map((p) => (p.readableEnded || p.destroyed ? undefined : new Promise((r) => p.once('close', r))))),
    new Promise((r) => setTimeout(r, drainMs).unref()),
  ]);
  for (const pipe of pipes) {
    pipe.removeAllListeners('data');
    pipe.on('data', () => {});
    (pipe as Socket).unref?.();
  }
}

function flush(decoder: StringDecoder, onOutput: ((text: string) => void) | undefined): void {
  const rest = decoder.end();
  if (rest && onOutput) safeCall(() => onOutput(rest));
}

// A logging callback must not break the step's bookkeeping.
function safeCall(fn: () => void): void {
  try {
    fn();
  } catch {
    // ignored on purpose: output delivery is best effort
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
