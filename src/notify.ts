// Webhook notifications. Each has a total budget (retries included); a failure is a warning
// and never changes the run's outcome or delays it beyond that budget.
import pRetry, { AbortError } from 'p-retry';
import { hostname } from 'node:os';
import type { NotifySpec } from './recipe/types.js';
import type { Outcome, Summary } from './report/events.js';

export type NotifyEvent = 'started' | Outcome;

export interface NotifyPayload {
  event: NotifyEvent;
  recipe: string;
  runId: string;
  host: string;
  previousRelease: string | null;
  targetRelease: string | null;
  outcome: Outcome | null;
  reason: string;
  userReason: string | null;
  durationMs: number | null;
  evidence: string | null;
}

export function payloadFor(event: NotifyEvent, base: { recipe: string; runId: string; userReason?: string }, summary?: Summary): NotifyPayload {
  return {
    event,
    recipe: base.recipe,
    runId: base.runId,
    host: hostname(),
    previousRelease: summary?.previousRelease ?? null,
    targetRelease: summary?.targetRelease ?? null,
    outcome: summary?.outcome ?? null,
    reason: summary?.description ?? 'run started',
    userReason: base.userReason ?? null,
    durationMs: summary?.durationMs ?? null,
    evidence: summary?.evidence ?? null,
  };
}

function body(spec: NotifySpec, p: NotifyPayload): string {
  if (spec.format === 'slack') {
    const icon = { started: ':arrows_counterclockwise:', succeeded: ':white_check_mark:', rolled_back: ':leftwards_arrow_with_hook:', failed: ':rotating_light:', aborted: ':no_entry_sign:' }[p.event];
    const rel = `${p.previousRelease ?? 'none'} → ${p.targetRelease ?? 'none'}`;
    return JSON.stringify({ text: `${icon} safe-restart ${p.recipe} on ${p.host}: *${p.event}* (${rel}) – ${p.reason}${p.userReason ? ` [${p.userReason}]` : ''} (run ${p.runId})` });
  }
  return JSON.stringify(p);
}

/** Send one notification within its budget. Resolves to null on success, else the warning text. */
export async function sendOne(spec: NotifySpec, payload: NotifyPayload, redact: (t: string) => string): Promise<string | null> {
  const budget = AbortSignal.timeout(spec.timeoutMs);
  const text = redact(body(spec, payload));
  try {
    await pRetry(
      async () => {
        const res = await fetch(spec.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...spec.headers },
          body: text,
          signal: budget,
          redirect: 'manual',
        });
        await res.body?.cancel().catch(() => undefined);
        if (res.status >= 500 || res.status === 429) throw new Error(`HTTP ${res.status}`);
        if (res.status >= 300) throw new AbortError(`HTTP ${res.status}`);
      },
      { retries: 3, minTimeout: 200, maxTimeout: 2_000, signal: budget },
    );
    return null;
  } catch (error) {
    const why = budget.aborted ? `no answer within its ${spec.timeoutMs}ms budget` : (error as Error).message;
    return redact(`notification to ${safeUrl(spec.url)} failed: ${why}`);
  }
}

function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    // webhook URLs often carry their secret in the path: keep only the origin
    return `${u.origin}/…`;
  } catch {
    return '(invalid url)';
  }
}

/** Send to every webhook that subscribed to this event, concurrently. Returns the warnings. */
export async function notifyAll(specs: NotifySpec[], payload: NotifyPayload, redact: (t: string) => string): Promise<string[]> {
  const targets = specs.filter((s) => s.on.includes(payload.event as NotifySpec['on'][number]));
  const results = await Promise.all(targets.map((s) => sendOne(s, payload, redact)));
  return results.filter((r): r is string => r !== null);
}
