// One tcp attempt: is the port open, closed (refused on every address), or drained (no ESTABLISHED
// connection left on that local port)? Every address of a name is tried; every socket is destroyed.
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import type { TcpProbe } from '../recipe/types.js';
import { parseHostPort } from '../recipe/targets.js';
import { systemResolver } from './resolve.js';
import type { AttemptContext, AttemptFn, AttemptResult } from './types.js';

interface Address {
  address: string;
  family: number;
}

type ConnectOutcome =
  | { kind: 'connected' }
  | { kind: 'error'; code: string; message: string }
  /** the attempt's deadline passed (or the run was cancelled) */
  | { kind: 'timeout' }
  /** another address already answered; this one was not needed */
  | { kind: 'skipped' };

// Preallocated: an abort without a reason allocates a DOMException with a stack, on every probe.
const NOT_NEEDED = Object.freeze({ reason: 'another address answered' });

export const attempt: AttemptFn<TcpProbe> = async (written, ctx) => {
  // a slot's "127.0.0.1:${SAFE_RESTART_PORT}", bound by the runner just before this attempt
  let probe = written;
  if (written.template !== undefined) {
    const parsed = parseHostPort(written.template);
    if (!parsed.ok) return { ok: false, detail: `tcp target ${written.template}: ${parsed.error}`, error: { code: 'EINVAL', message: `tcp target ${written.template}: ${parsed.error}` } };
    probe = { ...written, host: parsed.value.host, port: parsed.value.port };
  }
  if (probe.state === 'drained') return checkDrained(probe.port);
  const host = unbracket(probe.host);
  const resolved = await resolveAddresses(host, ctx);
  if (!Array.isArray(resolved)) return resolved;
  const labels = resolved.map((a) => formatAddress(a.address, probe.port));
  const outcomes = await connectAll(resolved, probe.port, ctx, probe.state === 'open');
  return probe.state === 'open' ? judgeOpen(labels, outcomes, ctx) : judgeClosed(labels, outcomes, ctx);
};

function judgeOpen(labels: string[], outcomes: ConnectOutcome[], ctx: AttemptContext): AttemptResult {
  const hit = outcomes.findIndex((o) => o.kind === 'connected');
  if (hit >= 0) return { ok: true, detail: `connected to ${labels[hit]}`, error: null, addresses: labels };
  return { ok: false, detail: describeFailures(labels, outcomes, ctx), error: firstError(labels, outcomes, ctx), addresses: labels };
}

function judgeClosed(labels: string[], outcomes: ConnectOutcome[], ctx: AttemptContext): AttemptResult {
  const open = outcomes.findIndex((o) => o.kind === 'connected');
  if (open >= 0) {
    const message = `${labels[open]} still accepts connections`;
    return { ok: false, detail: message, error: { code: 'PORT_OPEN', message }, addresses: labels };
  }
  if (outcomes.every((o) => o.kind === 'error' && o.code === 'ECONNREFUSED')) {
    return { ok: true, detail: `connection refused on ${labels.join(', ')} (closed)`, error: null, addresses: labels };
  }
  // A timeout or an unreachable network proves nothing about the port: not closed yet.
  return { ok: false, detail: describeFailures(labels, outcomes, ctx), error: firstError(labels, outcomes, ctx), addresses: labels };
}

function describeFailures(labels: string[], outcomes: ConnectOutcome[], ctx: AttemptContext): string {
  return outcomes.map((o, i) => `${labels[i]}: ${describeOutcome(o, labels[i] ?? '', ctx)}`).join('; ');
}

function describeOutcome(o: ConnectOutcome, label: string, ctx: AttemptContext): string {
  switch (o.kind) {
    case 'connected':
      return 'connected';
    case 'error':
      return o.message;
    case 'timeout':
      return `connect to ${label} timed out after ${ctx.timeoutMs}ms`;
    case 'skipped':
      return 'not tried';
  }
}

// The reported code is the first address's failure (resolver order), so it is stable from attempt to attempt.
function firstError(labels: string[], outcomes: ConnectOutcome[], ctx: AttemptContext): { code: string; message: string } {
  const failures = outcomes.map((o, i) => ({ o, label: labels[i] ?? '' })).filter(({ o }) => o.kind === 'error' || o.kind === 'timeout');
  const first = failures[0];
  if (!first) return { code: 'ETIMEDOUT', message: `no address answered within ${ctx.timeoutMs}ms` };
  const code = first.o.kind === 'error' ? first.o.code : 'ETIMEDOUT';
  const message =
    failures.length === 1 ? describeOutcome(first.o, first.label, ctx) : failures.map(({ o, label }) => `${label}: ${describeOutcome(o, label, ctx)}`).join('; ');
  return { code, message };
}

async function resolveAddresses(host: string, ctx: AttemptContext): Promise<Address[] | AttemptResult> {
  const family = net.isIP(host);
  if (family !== 0) return [{ address: host, family }];
  const resolver = ctx.resolver ?? systemResolver;
  let onAbort: (() => void) | undefined;
  try {
    // The signal cancels the system resolver's lookup; one that ignores it is simply no longer waited for.
    const aborted = new Promise<'aborted'>((resolve) => {
      onAbort = () => resolve('aborted');
      if (ctx.signal.aborted) resolve('aborted');
      else ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
    const list = await Promise.race([resolver(host, { signal: ctx.signal }), aborted]);
    if (list === 'aborted' || ctx.signal.aborted) {
      const message = `resolving "${host}" timed out after ${ctx.timeoutMs}ms`;
      return { ok: false, detail: message, error: { code: 'ETIMEDOUT', message } };
    }
    if (list.length === 0) {
      const message = `"${host}" resolved to no address`;
      return { ok: false, detail: message, error: { code: 'ENOTFOUND', message } };
    }
    return list.map((a) => ({ address: a.address, family: a.family }));
  } catch (error) {
    if (ctx.signal.aborted) {
      const message = `resolving "${host}" timed out after ${ctx.timeoutMs}ms`;
      return { ok: false, detail: message, error: { code: 'ETIMEDOUT', message } };
    }
    const err = error as NodeJS.ErrnoException;
    const code = typeof err.code === 'string' ? err.code : 'ENOTFOUND';
    const message = `cannot resolve "${host}": ${err.message ?? String(error)}`;
    return { ok: false, detail: message, error: { code, message } };
  } finally {
    if (onAbort) ctx.signal.removeEventListener('abort', onAbort);
  }
}

// All addresses at once: a black-holed first address must not eat the whole attempt before the second is tried.
async function connectAll(addresses: Address[], port: number, ctx: AttemptContext, stopOnFirst: boolean): Promise<ConnectOutcome[]> {
  const siblings = new AbortController();
  try {
    return await Promise.all(
      addresses.map(async (a) => {
        const outcome = await connectOnce(a, port, ctx.signal, siblings.signal);
        if (stopOnFirst && outcome.kind === 'connected') siblings.abort(NOT_NEEDED);
        return outcome;
      }),
    );
  } finally {
    siblings.abort(NOT_NEEDED);
  }
}

function connectOnce(a: Address, port: number, deadline: AbortSignal, siblings: AbortSignal): Promise<ConnectOutcome> {
  return new Promise((resolve) => {
    if (deadline.aborted) return resolve({ kind: 'timeout' });
    if (siblings.aborted) return resolve({ kind: 'skipped' });
    const socket = net.connect({ host: a.address, port, family: a.family });
    const finish = (outcome: ConnectOutcome): void => {
      deadline.removeEventListener('abort', onDeadline);
      siblings.removeEventListener('abort', onSibling);
      socket.removeAllListeners('connect');
      // keep an error listener: a late error on a destroyed socket must not crash the process
      socket.on('error', () => {});
      socket.destroy();
      resolve(outcome);
    };
    const onDeadline = (): void => finish({ kind: 'timeout' });
    const onSibling = (): void => finish({ kind: 'skipped' });
    deadline.addEventListener('abort', onDeadline, { once: true });
    siblings.addEventListener('abort', onSibling, { once: true });
    socket.once('connect', () => finish({ kind: 'connected' }));
    socket.once('error', (err: NodeJS.ErrnoException) => finish({ kind: 'error', code: err.code ?? 'ECONNERROR', message: err.message }));
  });
}

async function checkDrained(port: number): Promise<AttemptResult> {
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      // A kernel without IPv6 has no tcp6 table: nothing can be established there.
      if (file.endsWith('6') && (error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      const message = `cannot read ${file}: ${(error as Error).message}`;
      return { ok: false, detail: message, error: { code: 'PROC_UNREADABLE', message } };
    }
    count += countEstablished(text, port);
  }
  if (count === 0) return { ok: true, detail: `no ESTABLISHED connections on local port ${port}`, error: null };
  const message = `${count} ESTABLISHED connection${count === 1 ? '' : 's'} on local port ${port}`;
  return { ok: false, detail: message, error: { code: 'NOT_DRAINED', message } };
}

const ESTABLISHED = '01';

/** Rows of /proc/net/tcp{,6}: "sl local_address rem_address st ...", addresses as HEXADDR:HEXPORT. */
export function countEstablished(table: string, port: number): number {
  let count = 0;
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    if (!local || fields[3] !== ESTABLISHED) continue;
    const hexPort = local.slice(local.lastIndexOf(':') + 1);
    if (Number.parseInt(hexPort, 16) === port) count += 1;
  }
  return count;
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** "127.0.0.1:80", "[::1]:80" */
export function formatAddress(address: string, port: number): string {
  // a resolved address has a colon only when it is IPv6 (net.isIPv6 compiles a large regex on first use: ~5 ms of a cold start)
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
