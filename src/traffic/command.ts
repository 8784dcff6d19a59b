// Any other load balancer, through the recipe's own commands: enable and disable get the slot in their
// environment; an optional status command lets waitUp/waitDrained observe instead of trusting.
// Also the one way a traffic provider runs a command (nginx.ts uses it): argv or /bin/sh -c, in its own
// process group, bounded by a timeout and the AbortSignal, the group killed when either ends it.
import { spawn, type ChildProcess } from 'node:child_process';
import { killGroup } from '../process/group.js';
import { mergeEnv, stepArgv } from '../process/step.js';
import { tellingLine } from '../process/telling-line.js';
import { TrafficError, type AdminState, type ServerView, type TrafficProvider, type WaitResult } from './provider.js';

export type CommandLine = string[] | string;

export interface CommandResult {
  /** exit code; null when killed (timeout, abort) or never started */
  code: number | null;
  /** the signal that ended it, when one did */
  signal: string | null;
  /** stdout and stderr interleaved, at most OUTPUT_LIMIT characters (the end kept) */
  output: string;
  timedOut: boolean;
  aborted: boolean;
  /** spawn failure (ENOENT …) */
  error?: string;
  durationMs: number;
}

const OUTPUT_LIMIT = 64 * 1024;
// after the child exits, how long a background process may keep its pipes open before we stop reading
const PIPE_DRAIN_MS = 100;

export const COMMAND_DEFAULTS = {
  timeoutMs: 30_000,
  /** how often waitUp/waitDrained run the status command */
  pollMs: 200,
} as const;

/** "nginx -t" for an argv, the string itself for a shell line. */
export function describeCommand(cmd: CommandLine): string {
  return typeof cmd === 'string' ? cmd : cmd.join(' ');
}

/** Runs cmd (argv, or a string through /bin/sh -c) in its own process group; never rejects. */
export function runCommand(cmd: CommandLine, opts: { env?: Record<string, string>; timeoutMs: number; signal?: AbortSignal }): Promise<CommandResult> {
  const started = performance.now();
  const [file, ...args] = stepArgv(cmd);
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    let aborted = false;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let exitSignal: string | null = null;
    let child: ChildProcess | undefined;
    const kill = (): void => {
      try {
        if (child?.pid) killGroup(child.pid, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    };
    const onAbort = (): void => {
      aborted = true;
      kill();
    };
    const append = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
    };
    const finish = (code: number | null, error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve({ code, signal: exitSignal, output, timedOut, aborted, ...(error ? { error } : {}), durationMs: Math.round(performance.now() - started) });
    };
    if (!file) return finish(null, 'empty command');
    if (opts.signal?.aborted) {
      aborted = true;
      return finish(null, 'aborted before it started');
    }
    try {
      child = spawn(file, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: mergeEnv(opts.env) });
    } catch (error) {
      return finish(null, (error as Error).message);
    }
    timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, Math.max(1, opts.timeoutMs));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    child.once('error', (error) => finish(null, error.message));
    let exitCode: number | null = null;
    child.once('exit', (code, sig) => {
      exitCode = code;
      exitSignal = sig;
      setTimeout(() => finish(exitCode), PIPE_DRAIN_MS).unref();
    });
    child.once('close', () => finish(exitCode));
  });
}

/** "exited 1: <the telling line>", "timed out after 30s", "could not start: spawn nginx ENOENT". */
export function describeResult(r: CommandResult, timeoutMs: number): string {
  if (r.error && r.code === null && !r.timedOut && !r.aborted) return `could not start: ${r.error}`;
  if (r.timedOut) return `timed out after ${timeoutMs}ms${r.output.trim() ? `: ${tellingLine(r.output)}` : ''}`;
  if (r.aborted) return 'aborted';
  const line = tellingLine(r.output);
  return `${r.code === null && r.signal ? `was killed by ${r.signal}` : `exited ${r.code}`}${line ? `: ${line}` : ''}`;
}

export interface CommandProviderSpec {
  /** puts $SAFE_RESTART_SLOT into rotation */
  enable: CommandLine;
  /** takes $SAFE_RESTART_SLOT out of rotation ($SAFE_RESTART_STATE says drain or maint) */
  disable: CommandLine;
  /** prints UP, DOWN, MAINT, DRAIN or NOLB, optionally followed by a session count, for $SAFE_RESTART_SLOT */
  status?: CommandLine;
  /** slot → the load balancer's name for it ($SAFE_RESTART_SERVER); a slot not listed is refused */
  servers?: Record<string, string>;
  /** bound of each command (default 30s) */
  timeoutMs?: number;
}

export interface ParsedStatus {
  status: string;
  sessions: number | null;
}

/** The first word of the status command's output (UP, DOWN, MAINT, DRAIN, NOLB) and an optional session count after it. */
export function parseStatusLine(output: string): ParsedStatus | null {
  const line = output.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? '';
  // "DRAIN 3", "DRAIN sessions=3", "UP": the first number after the word, if any
  const m = /^(UP|DOWN|MAINT|DRAIN|NOLB)\b(?:\D*?(\d+))?/i.exec(line);
  if (!m?.[1]) return null;
  return { status: m[1].toUpperCase(), sessions: m[2] !== undefined ? Number(m[2]) : null };
}

export class CommandProvider implements TrafficProvider {
  readonly label: string;
  private readonly timeoutMs: number;
  /** what this run asked for, per slot: the commands alone cannot say */
  private readonly asked = new Map<string, AdminState>();

  constructor(private readonly spec: CommandProviderSpec) {
    this.timeoutMs = spec.timeoutMs ?? COMMAND_DEFAULTS.timeoutMs;
    this.label = `load balancer commands (enable: ${describeCommand(spec.enable)})`;
  }

  private slots(): string[] {
    return Object.keys(this.spec.servers ?? {});
  }

  private server(slot: string): string {
    if (!this.spec.servers) return slot;
    const server = this.spec.servers[slot];
    if (server === undefined) throw new TrafficError('SR_TRAFFIC_UNKNOWN_SLOT', `${this.label}: no server for slot ${slot} (known: ${this.slots().join(', ') || 'none'})`);
    return server;
  }

  private env(slot: string, state?: AdminState): Record<string, string> {
    return { SAFE_RESTART_SLOT: slot, SAFE_RESTART_SERVER: this.server(slot), ...(state ? { SAFE_RESTART_STATE: state } : {}) };
  }

  private async status(slot: string, signal: AbortSignal): Promise<ParsedStatus> {
    const cmd = this.spec.status as CommandLine;
    const r = await runCommand(cmd, { env: this.env(slot), timeoutMs: this.timeoutMs, signal });
    if (r.aborted) throw new TrafficError('SR_TRAFFIC_ABORTED', `status command for ${slot} (${describeCommand(cmd)}) aborted`);
    if (r.code !== 0) throw new TrafficError(r.timedOut ? 'SR_TRAFFIC_TIMEOUT' : 'SR_TRAFFIC_REFUSED', `status command for ${slot} (${describeCommand(cmd)}) ${describeResult(r, this.timeoutMs)}`);
    const parsed = parseStatusLine(r.output);
    if (!parsed) throw new TrafficError('SR_TRAFFIC_REFUSED', `status command for ${slot} (${describeCommand(cmd)}) printed ${JSON.stringify(r.output.trim().slice(0, 200))}, not one of UP, DOWN, MAINT, DRAIN, NOLB [sessions]`);
    return parsed;
  }

  async inspect(signal: AbortSignal): Promise<{ ok: boolean; reason?: string; warnings: string[] }> {
    if (!this.spec.status) return { ok: true, warnings: ['the traffic commands have no status command: safe-restart cannot see whether a slot is UP or drained, and trusts enable/disable'] };
    for (const slot of this.slots()) {
      try {
        await this.status(slot, signal);
      } catch (error) {
        return { ok: false, reason: (error as Error).message, warnings: [] };
      }
    }
    return { ok: true, warnings: [] };
  }

  async observe(signal: AbortSignal): Promise<ServerView[]> {
    const views: ServerView[] = [];
    for (const slot of this.slots()) {
      const server = this.server(slot);
      if (!this.spec.status) {
        views.push({ slot, server, status: 'UNKNOWN', admin: this.asked.get(slot) ?? 'ready', sessions: 0, queued: 0 });
        continue;
      }
      const s = await this.status(slot, signal);
      const admin = this.asked.get(slot) ?? (s.status === 'MAINT' ? 'maint' : s.status === 'DRAIN' ? 'drain' : 'ready');
      views.push({ slot, server, status: s.status, admin, sessions: s.sessions ?? 0, queued: 0 });
    }
    return views;
  }

  async set(slot: string, state: AdminState, signal: AbortSignal): Promise<void> {
    const cmd = state === 'ready' ? this.spec.enable : this.spec.disable;
    const which = state === 'ready' ? 'enable' : 'disable';
    const r = await runCommand(cmd, { env: this.env(slot, state), timeoutMs: this.timeoutMs, signal });
    if (r.aborted) throw new TrafficError('SR_TRAFFIC_ABORTED', `${which} command for ${slot} (${describeCommand(cmd)}) aborted`);
    if (r.code !== 0) throw new TrafficError(r.timedOut ? 'SR_TRAFFIC_TIMEOUT' : 'SR_TRAFFIC_REFUSED', `${which} command for ${slot} → ${state} (${describeCommand(cmd)}) ${describeResult(r, this.timeoutMs)}`);
    this.asked.set(slot, state);
  }

  async waitUp(slot: string, timeoutMs: number, signal: AbortSignal): Promise<WaitResult> {
    return this.waitFor(slot, timeoutMs, signal, 'UP', (s) => (s.status === 'UP' ? `${slot} UP` : null));
  }

  async waitDrained(slot: string, timeoutMs: number, signal: AbortSignal): Promise<WaitResult> {
    return this.waitFor(slot, timeoutMs, signal, 'drained', (s) => {
      if (s.status === 'UP') return null;
      if (s.sessions === null) return `${slot} ${s.status} (the status command printed no session count)`;
      return s.sessions === 0 ? `${slot} ${s.status} with no sessions` : null;
    });
  }

  private async waitFor(slot: string, timeoutMs: number, signal: AbortSignal, what: string, done: (s: ParsedStatus) => string | null): Promise<WaitResult> {
    this.server(slot);
    const started = performance.now();
    const elapsed = (): number => Math.round(performance.now() - started);
    if (!this.spec.status) return { ok: true, detail: `no status command: nothing observed, ${slot} assumed ${what}`, elapsedMs: 0 };
    let last: ParsedStatus | null = null;
    for (;;) {
      last = await this.status(slot, signal);
      const ok = done(last);
      if (ok) return { ok: true, detail: `${ok} after ${elapsed()}ms`, elapsedMs: elapsed() };
      if (elapsed() >= timeoutMs) break;
      await pause(Math.min(COMMAND_DEFAULTS.pollMs, Math.max(0, timeoutMs - elapsed())), signal);
    }
    const sessions = last.sessions !== null ? `, ${last.sessions} sessions` : '';
    return { ok: false, detail: `${slot} not ${what} after ${elapsed()}ms: the status command says ${last.status}${sessions}`, elapsedMs: elapsed() };
  }

  async snapshot(signal: AbortSignal): Promise<string> {
    if (!this.spec.status) return 'no status command: the load balancer cannot be observed\n';
    const lines: string[] = [];
    for (const slot of this.slots()) {
      const s = await this.status(slot, signal);
      lines.push(`${slot} ${this.server(slot)} ${s.status}${s.sessions !== null ? ` ${s.sessions}` : ''}`);
    }
    return `${lines.join('\n')}\n`;
  }
}

/** Sleeps ms; rejects with SR_TRAFFIC_ABORTED when signal fires. */
export async function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw new TrafficError('SR_TRAFFIC_ABORTED', 'aborted while waiting on the load balancer');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new TrafficError('SR_TRAFFIC_ABORTED', 'aborted while waiting on the load balancer'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
