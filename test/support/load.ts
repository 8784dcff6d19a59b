// A bounded, open-loop HTTP load generator for zero-failed-requests tests of restarts behind a load balancer.
// Loopback only. One 5 ms timer drives everything: the fixed send schedule, the time-outs and the accounting,
// so a stalled server shows as failures and latency instead of slowing the generator down.
import { Agent, request, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';

export type LoadMode = 'new' | 'keepalive' | 'mixed';

export interface LoadOptions {
  /** http://127.0.0.1:PORT/path — 127.0.0.0/8 or [::1] only; host names (even localhost) are refused */
  url: string;
  /** requests per second, sent on a fixed schedule (request i at i/rate s) whatever the answers do */
  rate: number;
  /** new: a fresh connection per request; keepalive: a pooled keep-alive agent; mixed: alternate, even ones new */
  mode: LoadMode;
  /** no request is sent after this; in-flight ones then get at most timeoutMs to finish */
  maxDurationMs: number;
  maxRequests?: number;
  /** per request, from the moment it is sent to the end of its body (queueing for a pooled socket included; time this
   *  process itself was stalled, a blocked event loop, is left out: it is not the server's) */
  timeoutMs?: number;
  /** sockets of the keep-alive agent (default 32) */
  maxSockets?: number;
  /** which statuses count as ok (default 2xx) */
  expectStatus?: (status: number) => boolean;
}

export interface LoadFailure {
  /** when the failed request was sent, ms since start */
  atMs: number;
  kind: FailureKind;
  detail: string;
}

export interface LoadReport {
  sent: number;
  ok: number;
  failed: number;
  /** sent but not settled yet (0 in the final report) */
  inFlight: number;
  byKind: { status5xx: number; status4xx: number; otherStatus: number; reset: number; refused: number; timeout: number; other: number };
  /** ok responses per first line of their body (at most 64 bytes, e.g. "slot blue"): who served */
  servedBy: Record<string, number>;
  /** the longest run of consecutive failed requests (in send order), from the first one's send to the last one's, plus one interval */
  longestFailureWindowMs: number;
  /** when that run started, ms since start; null when nothing failed */
  longestFailureWindowAtMs: number | null;
  /** the first 50 failures in the order they were observed */
  failures: LoadFailure[];
  /** of ok requests, from send to the end of the body; 0 when none succeeded */
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  durationMs: number;
}

export type FailureKind = keyof LoadReport['byKind'];

export interface LoadHandle {
  /** Stops sending, waits (at most timeoutMs) for in-flight requests and resolves the final report. Idempotent. */
  stop(): Promise<LoadReport>;
  /** Resolves with the final report when a bound is reached or after stop(). Never rejects. */
  done: Promise<LoadReport>;
  /** The report so far. */
  snapshot(): LoadReport;
}

/** The target is not a loopback address: this generator sends nowhere else. */
export class NotLoopbackError extends Error {
  readonly code = 'LOAD_NOT_LOOPBACK';
  constructor(message: string) {
    super(message);
    this.name = 'NotLoopbackError';
  }
}

/** An option is missing, out of range or of the wrong kind. */
export class LoadOptionsError extends Error {
  readonly code = 'LOAD_BAD_OPTIONS';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LoadOptionsError';
  }
}

const DEFAULTS = { timeoutMs: 2_000, maxSockets: 32 } as const;
const TICK_MS = 5;
/** a tick later than this after the previous one means the process itself was stalled for the excess */
const STALL_SLACK_MS = 4 * TICK_MS;
const MAX_RATE = 5_000;
const MAX_DURATION_MS = 3_600_000;
const FAILURES_KEPT = 50;
const KEY_MAX_BYTES = 64;
const KEYS_KEPT = 32;
const isStatus2xx = (status: number): boolean => status >= 200 && status < 300;

/** Parses the URL and refuses anything but plain http to an IPv4 127.0.0.0/8 or IPv6 ::1 literal. */
export function parseLoopbackUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new LoadOptionsError(`load: url ${JSON.stringify(raw)} is not a URL – use http://127.0.0.1:PORT/path`, { cause });
  }
  if (url.protocol !== 'http:') throw new LoadOptionsError(`load: url ${raw} uses ${url.protocol} – only http: is supported`);
  if (!isLoopbackLiteral(url.hostname)) {
    throw new NotLoopbackError(`load: host ${url.hostname} of ${raw} is not a loopback address – use 127.0.0.0/8 or [::1]`);
  }
  return url;
}

// Only IP literals: a name (even "localhost") goes through resolution that could point anywhere.
function isLoopbackLiteral(hostname: string): boolean {
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (isIPv4(host)) return host.startsWith('127.');
  // WHATWG URL has already compressed and lower-cased IPv6, so every spelling of ::1 arrives as "::1"
  if (isIPv6(host)) return host === '::1';
  return false;
}

interface Settings {
  url: URL;
  rate: number;
  mode: LoadMode;
  maxDurationMs: number;
  maxRequests: number;
  timeoutMs: number;
  maxSockets: number;
  expectStatus: (status: number) => boolean;
}

function normaliseOptions(opts: LoadOptions): Settings {
  const url = parseLoopbackUrl(opts.url);
  const positive = (name: string, value: unknown, max: number): number => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) {
      throw new LoadOptionsError(`load: ${name} (${String(value)}) must be a number above 0 and at most ${max}`);
    }
    return value;
  };
  const whole = (name: string, value: unknown): number => {
    if (!Number.isSafeInteger(value) || (value as number) < 1) {
      throw new LoadOptionsError(`load: ${name} (${String(value)}) must be a whole number of at least 1`);
    }
    return value as number;
  };
  if (opts.mode !== 'new' && opts.mode !== 'keepalive' && opts.mode !== 'mixed') {
    throw new LoadOptionsError(`load: mode (${String(opts.mode)}) must be one of new, keepalive, mixed`);
  }
  if (opts.expectStatus !== undefined && typeof opts.expectStatus !== 'function') {
    throw new LoadOptionsError('load: expectStatus must be a function of the status');
  }
  return {
    url,
    rate: positive('rate', opts.rate, MAX_RATE),
    mode: opts.mode,
    maxDurationMs: positive('maxDurationMs', opts.maxDurationMs, MAX_DURATION_MS),
    maxRequests: opts.maxRequests === undefined ? Number.POSITIVE_INFINITY : whole('maxRequests', opts.maxRequests),
    timeoutMs: positive('timeoutMs', opts.timeoutMs ?? DEFAULTS.timeoutMs, MAX_DURATION_MS),
    maxSockets: whole('maxSockets', opts.maxSockets ?? DEFAULTS.maxSockets),
    expectStatus: opts.expectStatus ?? isStatus2xx,
  };
}

/** Error codes to failure kinds; our own time-out never arrives here (the sweep settles it directly). */
export function classifyError(err: unknown): FailureKind {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ECONNRESET' || code === 'EPIPE' || (err as Error | null)?.message === 'socket hang up') return 'reset';
  if (code === 'ECONNREFUSED') return 'refused';
  return 'other';
}

export function classifyStatus(status: number): FailureKind {
  if (status >= 500 && status < 600) return 'status5xx';
  if (status >= 400 && status < 500) return 'status4xx';
  return 'otherStatus';
}

/** Runs of consecutive failures, fed in send order. */
class FailureRuns {
  first = -1;
  last = -1;
  longest = 0;
  longestAt: number | null = null;
  constructor(private readonly intervalMs: number) {}

  add(ok: boolean, atMs: number): void {
    if (!ok) {
      if (this.first < 0) this.first = atMs;
      this.last = atMs;
      return;
    }
    this.close();
  }

  close(): void {
    if (this.first < 0) return;
    const length = this.last - this.first + this.intervalMs;
    if (length > this.longest) {
      this.longest = length;
      this.longestAt = this.first;
    }
    this.first = -1;
  }

  copy(): FailureRuns {
    return Object.assign(new FailureRuns(this.intervalMs), this);
  }
}

/** Counts ok answers by the first line of their body, comparing bytes so that a known line allocates nothing. */
class ServedBy {
  private readonly lines: Buffer[] = [];
  private readonly names: string[] = ['(empty)', '(other)'];
  private readonly counts: number[] = [0, 0];
  static readonly EMPTY = 0;
  static readonly OTHER = 1;

  indexOf(chunk: Buffer): number {
    let start = 0;
    while (start < chunk.length && isSpace(chunk[start]!)) start++;
    let end = start;
    const limit = Math.min(chunk.length, start + KEY_MAX_BYTES);
    while (end < limit && chunk[end] !== 0x0a && chunk[end] !== 0x0d) end++;
    while (end > start && (chunk[end - 1] === 0x20 || chunk[end - 1] === 0x09)) end--;
    if (end === start) return ServedBy.EMPTY;
    const length = end - start;
    for (let i = 0; i < this.lines.length; i++) {
      const line = this.lines[i]!;
      if (line.length === length && line.compare(chunk, start, end) === 0) return i + 2;
    }
    if (this.lines.length >= KEYS_KEPT) return ServedBy.OTHER;
    const line = Buffer.from(chunk.subarray(start, end));
    this.lines.push(line);
    this.names.push(line.toString('utf8'));
    this.counts.push(0);
    return this.lines.length + 1;
  }

  count(index: number): void {
    this.counts[index]!++;
  }

  toRecord(): Record<string, number> {
    const record: Record<string, number> = {};
    for (let i = 0; i < this.names.length; i++) if (this.counts[i]! > 0) record[this.names[i]!] = this.counts[i]!;
    return record;
  }
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/** Latencies of ok requests in a growing typed array; percentiles by nearest rank. */
class Latencies {
  private values = new Float64Array(1024);
  private n = 0;

  add(ms: number): void {
    if (this.n === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.n++] = ms;
  }

  summary(): LoadReport['latencyMs'] {
    if (this.n === 0) return { p50: 0, p90: 0, p99: 0, max: 0 };
    const sorted = this.values.slice(0, this.n).sort();
    const rank = (p: number): number => roundMs(sorted[Math.max(0, Math.ceil(p * this.n) - 1)]!);
    return { p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: roundMs(sorted[this.n - 1]!) };
  }
}

function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException | null;
  if (e?.code) return `${e.code}: ${e.message}`;
  return e?.message ?? String(err);
}

/** One request's state; reused once the sweep has retired it. Its listeners are made once, with the slot. */
interface Slot {
  req: ClientRequest | null;
  res: IncomingMessage | null;
  sentAt: number;
  /** the process's stalled time (see tick) when this was sent: a stall of ours is not the server's time */
  stalledAtSend: number;
  keepAlive: boolean;
  settled: boolean;
  ok: boolean;
  line: number;
  onResponse(this: ClientRequest, res: IncomingMessage): void;
  onRequestError(this: ClientRequest, err: Error): void;
  onData(this: IncomingMessage, chunk: Buffer): void;
  onEnd(this: IncomingMessage): void;
  onResponseError(this: IncomingMessage, err: Error): void;
  onResponseClose(this: IncomingMessage): void;
}

export function startLoad(opts: LoadOptions): LoadHandle {
  const s = normaliseOptions(opts);
  const intervalMs = 1000 / s.rate;
  const agent = s.mode === 'new' ? undefined : new Agent({ keepAlive: true, maxSockets: s.maxSockets });
  // http.request copies its options, so two shared objects serve every request
  const base: RequestOptions = {
    hostname: s.url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: s.url.port === '' ? 80 : Number(s.url.port),
    path: `${s.url.pathname}${s.url.search}`,
    method: 'GET',
  };
  const freshOptions: RequestOptions = { ...base, agent: false };
  const pooledOptions: RequestOptions = { ...base, agent };

  const byKind: LoadReport['byKind'] = { status5xx: 0, status4xx: 0, otherStatus: 0, reset: 0, refused: 0, timeout: 0, other: 0 };
  const failures: LoadFailure[] = [];
  const servedBy = new ServedBy();
  const latencies = new Latencies();
  const runs = new FailureRuns(intervalMs);
  let sent = 0;
  let ok = 0;
  let failed = 0;

  // Slots in send order: [head, head + size) are sent and not yet retired; deadlines grow along the ring.
  let ring: Slot[] = Array.from({ length: 64 }, makeSlot);
  let head = 0;
  let size = 0;

  const t0 = performance.now();
  let previousTick = t0;
  // Time this process did not run (ticks more than STALL_SLACK_MS late: GC, a busy CPU, a blocked loop). A request
  // in flight then could not be sent, connected or read by us, so its time-out clock stops for that time.
  let stalledMs = 0;
  let sending = true;
  let final: LoadReport | undefined;
  let resolveDone!: (report: LoadReport) => void;
  const done = new Promise<LoadReport>((resolve) => (resolveDone = resolve));

  function makeSlot(): Slot {
    const slot: Slot = {
      req: null,
      res: null,
      sentAt: 0,
      stalledAtSend: 0,
      keepAlive: false,
      settled: true,
      ok: false,
      line: ServedBy.EMPTY,
      onResponse(res) {
        if (this !== slot.req) {
          res.resume();
          return;
        }
        const status = res.statusCode ?? 0;
        let expected: boolean;
        try {
          expected = s.expectStatus(status);
        } catch (err) {
          res.resume();
          fail(slot, 'other', `expectStatus(${status}) threw ${describeError(err)}`);
          return;
        }
        if (!expected) {
          res.resume();
          fail(slot, classifyStatus(status), `HTTP ${status}`);
          return;
        }
        slot.res = res;
        slot.line = -1;
        res.on('data', slot.onData);
        res.on('end', slot.onEnd);
        res.on('error', slot.onResponseError);
        res.on('close', slot.onResponseClose);
      },
      onRequestError(err) {
        if (this === slot.req) fail(slot, classifyError(err), describeError(err));
      },
      onData(chunk) {
        if (this === slot.res && slot.line < 0) slot.line = servedBy.indexOf(chunk);
      },
      onEnd() {
        if (this === slot.res) succeed(slot);
      },
      onResponseError(err) {
        if (this === slot.res) fail(slot, classifyError(err), `body: ${describeError(err)}`);
      },
      onResponseClose() {
        if (this === slot.res) fail(slot, 'reset', 'body: closed before its end');
      },
    };
    return slot;
  }

  function acquire(): Slot {
    if (size === ring.length) {
      const bigger: Slot[] = new Array<Slot>(ring.length * 2);
      for (let i = 0; i < size; i++) bigger[i] = ring[(head + i) % ring.length]!;
      for (let i = size; i < bigger.length; i++) bigger[i] = makeSlot();
      ring = bigger;
      head = 0;
    }
    const slot = ring[(head + size) % ring.length]!;
    size++;
    return slot;
  }

  function send(index: number): void {
    const slot = acquire();
    slot.keepAlive = s.mode === 'keepalive' || (s.mode === 'mixed' && (index & 1) === 1);
    slot.settled = false;
    slot.ok = false;
    slot.res = null;
    slot.line = ServedBy.EMPTY;
    slot.sentAt = performance.now();
    slot.stalledAtSend = stalledMs;
    sent++;
    let req: ClientRequest;
    try {
      req = request(slot.keepAlive ? pooledOptions : freshOptions);
    } catch (err) {
      fail(slot, 'other', `http.request threw ${describeError(err)}`);
      return;
    }
    slot.req = req;
    req.on('response', slot.onResponse);
    req.on('error', slot.onRequestError);
    req.end();
  }

  function release(slot: Slot): void {
    slot.settled = true;
    slot.req = null;
    slot.res = null;
  }

  function succeed(slot: Slot): void {
    if (slot.line < 0) slot.line = ServedBy.EMPTY;
    latencies.add(performance.now() - slot.sentAt);
    servedBy.count(slot.line);
    slot.ok = true;
    ok++;
    release(slot);
  }

  function fail(slot: Slot, kind: FailureKind, detail: string): void {
    byKind[kind]++;
    failed++;
    if (failures.length < FAILURES_KEPT) {
      const afterMs = roundMs(performance.now() - slot.sentAt);
      const how = s.mode === 'mixed' ? (slot.keepAlive ? 'keepalive ' : 'new ') : '';
      failures.push({ atMs: roundMs(slot.sentAt - t0), kind, detail: `${how}${detail} (after ${afterMs} ms)` });
    }
    release(slot);
  }

  function expire(slot: Slot): void {
    const req = slot.req;
    const where = slot.res === null ? 'no response' : 'body not complete';
    fail(slot, 'timeout', `${where} within ${s.timeoutMs} ms`);
    // its 'error' (and the body's) now finds a different slot.req and is ignored
    req?.destroy();
  }

  // Time out the overdue and retire settled slots in send order, which is the order failure runs need.
  // Overdue means overdue by the previous tick: an I/O phase has run since, so after a stall of this process an
  // answer that arrived in time is read before its request is judged. The age leaves out the time we were stalled
  // ourselves (stalledAt: the stalled total as of overdueAt); it still shrinks along the ring, since what is
  // stalled between two sends is never more than the time between them.
  function sweep(overdueAt: number, stalledAt: number): void {
    while (size > 0) {
      const slot = ring[head]!;
      if (!slot.settled) {
        if (overdueAt - slot.sentAt - (stalledAt - slot.stalledAtSend) < s.timeoutMs) return;
        expire(slot);
      }
      runs.add(slot.ok, slot.sentAt - t0);
      head = (head + 1) % ring.length;
      size--;
    }
  }

  function tick(): void {
    const now = performance.now();
    if (sending) {
      const elapsed = now - t0;
      // open loop: everything due is sent now, a stalled answer never holds the next request back
      while (sent < s.maxRequests) {
        const due = sent * intervalMs;
        if (due >= s.maxDurationMs || due > elapsed) break;
        send(sent);
      }
      if (sent >= s.maxRequests || elapsed >= s.maxDurationMs || sent * intervalMs >= s.maxDurationMs) sending = false;
    }
    sweep(previousTick, stalledMs);
    stalledMs += Math.max(0, now - previousTick - STALL_SLACK_MS);
    previousTick = now;
    if (!sending && size === 0) finish(now);
  }

  function report(now: number): LoadReport {
    const windows = runs.copy();
    // the snapshot also counts settled requests the sweep has not retired yet, up to the first unsettled one
    for (let i = 0; i < size; i++) {
      const slot = ring[(head + i) % ring.length]!;
      if (!slot.settled) break;
      windows.add(slot.ok, slot.sentAt - t0);
    }
    windows.close();
    return {
      sent,
      ok,
      failed,
      inFlight: sent - ok - failed,
      byKind: { ...byKind },
      servedBy: servedBy.toRecord(),
      longestFailureWindowMs: roundMs(windows.longest),
      longestFailureWindowAtMs: windows.longestAt === null ? null : roundMs(windows.longestAt),
      failures: failures.slice(),
      latencyMs: latencies.summary(),
      durationMs: roundMs(now - t0),
    };
  }

  function finish(now: number): void {
    clearInterval(timer);
    agent?.destroy();
    final = report(now);
    resolveDone(final);
  }

  const timer = setInterval(tick, TICK_MS);
  tick();

  return {
    stop(): Promise<LoadReport> {
      sending = false;
      return done;
    },
    done,
    snapshot(): LoadReport {
      return final ?? report(performance.now());
    },
  };
}
