// A bounded open-loop load: `rate` GET requests per second to 127.0.0.1:port, keep-alive off (a new connection
// each), each request abandoned after `requestTimeoutMs`, at most `maxInFlight` outstanding. Every request's
// start, end and outcome are recorded so downtime can be measured from the client's side.
import http from 'node:http';
import { now } from './util.mjs';

export function startLoad({ port, path = '/', rate = 200, requestTimeoutMs = 300, maxInFlight = 100 }) {
  const records = [];
  const periodMs = 1000 / rate;
  const startedAt = now();
  let issued = 0;
  let inFlight = 0;
  let skipped = 0;
  let stopped = false;
  let idle = null;

  const fire = () => {
    const rec = { start: now(), end: null, ok: false, status: null, error: null };
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
      inFlight -= 1;
      if (stopped && inFlight === 0) idle?.();
    };
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
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
  const tick = setInterval(() => {
    const due = Math.floor((now() - startedAt) / periodMs) + 1;
    while (issued < due) {
      issued += 1;
      if (inFlight >= maxInFlight) skipped += 1;
      else fire();
    }
  }, Math.max(1, Math.floor(periodMs)));

  return {
    records,
    stop: () =>
      new Promise((resolveStop) => {
        stopped = true;
        clearInterval(tick);
        if (inFlight === 0) return resolveStop({ skipped });
        idle = () => resolveStop({ skipped });
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
