// A bounded open-loop load: `rate` GET requests per second to 127.0.0.1:port (loopback only, by construction),
// each request abandoned after `requestTimeoutMs`, at most `maxInFlight` outstanding, and no request sent after
// `maxDurationMs` or beyond `maxRequests`. mode 'new' (default): keep-alive off, a new connection each; 'mixed':
// every other request on a pooled keep-alive agent (the strategy tests' load). Every request's start, end,
// outcome and failure kind are recorded (with `body`, also the first line of an answer: who served it), so
// downtime can be measured from the client's side.
import http from 'node:http';
import { now } from './util.mjs';

/** A failed request's kind: 5xx, 4xx, status (another non-200), reset, refused, timeout, other. */
export function failureKind(status, error) {
  if (status !== null && status !== undefined && error && /^HTTP /.test(error)) return status >= 500 && status < 600 ? '5xx' : status >= 400 && status < 500 ? '4xx' : 'status';
  if (error === 'TIMEOUT') return 'timeout';
  if (error === 'ECONNRESET' || error === 'EPIPE' || error === 'socket hang up') return 'reset';
  if (error === 'ECONNREFUSED') return 'refused';
  return 'other';
}

export function startLoad({
  port,
  path = '/',
  rate = 200,
  requestTimeoutMs = 300,
  maxInFlight = 100,
  mode = 'new',
  maxDurationMs = 120_000,
  maxRequests = 50_000,
  body = false,
}) {
  const records = [];
  const periodMs = 1000 / rate;
  const agent = mode === 'mixed' ? new http.Agent({ keepAlive: true, maxSockets: 32 }) : null;
  const startedAt = now();
  let issued = 0;
  let inFlight = 0;
  let skipped = 0;
  let stopped = false;
  let idle = null;

  const fire = (index) => {
    const keepAlive = agent !== null && index % 2 === 1;
    const rec = { start: now(), end: null, ok: false, status: null, error: null, kind: null, keepAlive };
    if (body) rec.body = null;
    records.push(rec);
    inFlight += 1;
    let settled = false;
    const finish = (ok, status, error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      rec.end = now();
      rec.ok = ok;
      rec.status = status;
      rec.error = error;
      if (!ok) rec.kind = failureKind(status, error);
      inFlight -= 1;
      if (stopped && inFlight === 0) idle?.();
    };
    const options = keepAlive ? { host: '127.0.0.1', port, path, agent } : { host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } };
    const req = http.get(options, (res) => {
      if (body && res.statusCode === 200) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          if (text.length < 64) text += c;
        });
        res.on('end', () => (rec.body = text.split('\n')[0].trim().slice(0, 64)));
      } else res.resume();
      res.on('end', () => finish(res.statusCode === 200, res.statusCode, res.statusCode === 200 ? null : `HTTP ${res.statusCode}`));
      res.on('error', (e) => finish(false, res.statusCode, e.code ?? e.message));
    });
    const timer = setTimeout(() => {
      finish(false, null, 'TIMEOUT');
      req.destroy();
    }, requestTimeoutMs);
    req.on('error', (e) => finish(false, null, e.code ?? e.message));
  };

  // open loop on an absolute schedule: a late tick catches up (bounded by maxInFlight), so the rate holds
  // bounded: nothing is sent after maxDurationMs or beyond maxRequests (stop() is still needed to collect)
  const tick = setInterval(() => {
    const elapsed = now() - startedAt;
    const due = Math.min(maxRequests, Math.floor(Math.min(elapsed, maxDurationMs) / periodMs) + 1);
    while (issued < due) {
      issued += 1;
      if (inFlight >= maxInFlight) skipped += 1;
      else fire(issued);
    }
    if (issued >= maxRequests || elapsed >= maxDurationMs) clearInterval(tick);
  }, Math.max(1, Math.floor(periodMs)));

  return {
    records,
    stop: () =>
      new Promise((resolveStop) => {
        stopped = true;
        clearInterval(tick);
        const finished = () => {
          agent?.destroy();
          resolveStop({ skipped, issued });
        };
        if (inFlight === 0) return finished();
        idle = finished;
      }),
  };
}

/**
 * Client-side downtime in [from, to]: requests started in the window, how many failed, and the longest
 * stretch without a successful response (measured between completion times of successes; the window's
 * edges count as successes only if the service answered just before / after).
 */
export function downtime(records, from, to) {
  const inWindow = records.filter((r) => r.start >= from && r.start <= to);
  const failed = inWindow.filter((r) => !r.ok);
  const successes = records.filter((r) => r.ok && r.end !== null).map((r) => r.end).sort((a, b) => a - b);
  let longestGap = 0;
  let gapFrom = null;
  const marks = [from, ...successes.filter((t) => t > from && t < to), to];
  // the left edge counts only if there was a success before `from` (the service was up), and likewise the right
  for (let i = 1; i < marks.length; i++) {
    const gap = marks[i] - marks[i - 1];
    if (gap > longestGap) {
      longestGap = gap;
      gapFrom = marks[i - 1];
    }
  }
  const errors = {};
  for (const r of failed) errors[r.error ?? 'unknown'] = (errors[r.error ?? 'unknown'] ?? 0) + 1;
  return {
    requests: inWindow.length,
    failed: failed.length,
    failedPct: inWindow.length ? Math.round((1000 * failed.length) / inWindow.length) / 10 : null,
    longestGapMs: Math.round(longestGap),
    gapStartsAt: gapFrom,
    errors,
  };
}

/**
 * Failed requests by kind among those started in [from, to], and the longest failure window: the longest run of
 * consecutive failed requests in send order, from the first one's send to the last one's plus one send interval
 * (test/support/load.ts's longestFailureWindowMs). With `body` records, also who served the ok answers.
 */
export function failures(records, from, to, periodMs = 5) {
  const inWindow = records.filter((r) => r.start >= from && r.start <= to).sort((a, b) => a.start - b.start);
  const byKind = { '5xx': 0, '4xx': 0, status: 0, reset: 0, refused: 0, timeout: 0, other: 0 };
  const servedBy = {};
  let failed = 0;
  let longest = 0;
  let longestAt = null;
  let first = null;
  let last = null;
  const close = () => {
    if (first === null) return;
    const length = last - first + periodMs;
    if (length > longest) {
      longest = length;
      longestAt = first;
    }
    first = null;
  };
  for (const r of inWindow) {
    if (r.ok) {
      close();
      if ('body' in r) servedBy[r.body ?? '(none)'] = (servedBy[r.body ?? '(none)'] ?? 0) + 1;
      continue;
    }
    failed += 1;
    byKind[r.kind ?? failureKind(r.status, r.error)] += 1;
    first ??= r.start;
    last = r.start;
  }
  close();
  const lat = inWindow.filter((r) => r.ok).map((r) => r.end - r.start).sort((a, b) => a - b);
  const rank = (q) => (lat.length ? Math.round(lat[Math.max(0, Math.ceil(q * lat.length) - 1)] * 10) / 10 : null);
  return {
    requests: inWindow.length,
    failed,
    failedPct: inWindow.length ? Math.round((1000 * failed) / inWindow.length) / 10 : null,
    byKind,
    longestFailureWindowMs: Math.round(longest),
    longestFailureWindowAt: longestAt,
    servedBy,
    // of the ok requests, send → end of the body: a retrying load balancer turns a failure into latency
    latencyMs: { p50: rank(0.5), p99: rank(0.99), max: lat.length ? Math.round(lat.at(-1) * 10) / 10 : null },
  };
}
