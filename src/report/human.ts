// Plain, timestamped lines for people and CI logs: one per state change, never one per poll attempt.
import type { EventOf, EventSink, Renderers, RunEvent } from './events.js';
import { renderWith } from './events.js';
import { formatDuration, renderSummary } from './summary.js';

export interface HumanOptions {
  write: (text: string) => void;
  /** only the final outcome */
  quiet?: boolean;
  color?: boolean;
  now?: () => number;
  /** at most one progress line per check per this many ms */
  progressEveryMs?: number;
  /** GitHub Actions workflow commands: a group per phase, ::error:: / ::warning:: annotations */
  github?: boolean;
}

/** Workflow-command data must not contain raw newlines or '%'. */
function escapeData(text: string): string {
  return text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** A check that passes and waits out stable_for (or success_threshold) is not failing: "passing, stable for 3.0s of 10s". */
export function passingText(e: EventOf<'check_progress'>): string {
  if (e.stableForMs !== undefined && e.stableRequiredMs) return `passing, stable for ${(e.stableForMs / 1000).toFixed(1)}s of ${Number((e.stableRequiredMs / 1000).toFixed(1))}s`;
  return `passing, ${e.attempts} attempts`;
}

const CODES = { ok: '\u001b[32m', bad: '\u001b[31m', dim: '\u001b[2m', reset: '\u001b[0m' } as const;

export function createHumanRenderer(opts: HumanOptions): EventSink {
  const now = opts.now ?? (() => performance.now());
  const t0 = now();
  const color = (kind: 'ok' | 'bad' | 'dim', text: string) => (opts.color ? `${CODES[kind]}${text}${CODES.reset}` : text);
  const stamp = () => `[${((now() - t0) / 1000).toFixed(3).padStart(7)}s]`;
  const every = opts.progressEveryMs ?? 5_000;
  const lastProgress = new Map<string, number>();

  const renderers: Renderers<string | null> = {
    run_started: (e) => `safe-restart ${e.recipe} on ${e.host}${e.userReason ? ` (reason: ${e.userReason})` : ''}\n  journal ${e.journal}`,
    releases_resolved: (e) =>
      e.previousRelease === e.targetRelease
        ? `  release: ${e.targetRelease ?? 'none'} (restart in place)`
        : `  release: ${e.previousRelease ?? 'none (first run)'} → ${e.targetRelease ?? 'none'}`,
    phase_started: (e) => `▸ ${e.phase}${e.detail ? `: ${e.detail}` : ''}`,
    phase_finished: (e) => (e.ok ? color('ok', `✓ ${e.phase} (${formatDuration(e.durationMs)})`) : color('bad', `✗ ${e.phase} (${formatDuration(e.durationMs)}): ${e.detail ?? 'failed'}`)),
    step_started: (e) => `  ↳ ${e.step}${e.pid ? ` (pid ${e.pid})` : ''}`,
    step_output: (e) =>
      e.text
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => color('dim', `    │ ${l}`))
        .join('\n') || null,
    step_finished: (e) => (e.ok ? `  ✓ ${e.step}: ${e.detail}` : color('bad', `  ✗ ${e.step}: ${e.detail}`)),
    check_started: (e) => `  … ${e.check} (${e.checkType} ${e.target})`,
    check_progress: (e) => {
      const key = `${e.phase}/${e.check}`;
      const last = lastProgress.get(key) ?? -Infinity;
      if (e.elapsedMs - last < every) return null;
      lastProgress.set(key, e.elapsedMs);
      return color('dim', `  … ${e.check}: ${e.passing ? passingText(e) : `still waiting after ${formatDuration(e.elapsedMs)}, ${e.attempts} attempts${e.lastError ? `, last: ${e.lastError}` : ''}`}`);
    },
    check_finished: (e) =>
      e.check.status === 'ready'
        ? `  ✓ ${e.check.name} ready after ${formatDuration(e.check.elapsedMs)} (${e.check.attempts} attempt${e.check.attempts === 1 ? '' : 's'})`
        : e.check.status === 'cancelled'
          ? color('dim', `  – ${e.check.name}: ${e.check.error?.message ?? 'cancelled'}`)
          : color('bad', `  ✗ ${e.check.name}: ${e.check.error?.message ?? 'failed'}`),
    warning: (e) => color('bad', `warning: ${e.message}`),
    signal: (e) => color('bad', `received ${e.signal}: ${e.action}`),
    summary: (e) => renderSummary(e.summary, { color }),
  };

  const github = (event: RunEvent): string[] => {
    if (!opts.github) return [];
    if (event.kind === 'warning') return [`::warning::${escapeData(event.message)}`];
    if (event.kind === 'summary') {
      const s = event.summary;
      return [s.exitCode === 0 ? `::notice title=safe-restart ${s.recipe}::${escapeData(s.description)}` : `::error title=safe-restart ${s.recipe} ${s.outcome} (exit ${s.exitCode})::${escapeData(s.description)}`];
    }
    return [];
  };

  return (event: RunEvent) => {
    const grouped = opts.github && !opts.quiet;
    if (grouped && event.kind === 'phase_started') opts.write(`::group::${escapeData(`${event.phase}${event.detail ? `: ${event.detail}` : ''}`)}\n`);
    for (const line of github(event)) opts.write(`${line}\n`);
    if (!opts.quiet || event.kind === 'summary') {
      const text = opts.quiet && event.kind === 'summary' ? `${event.summary.description} (exit ${event.summary.exitCode})` : renderWith(renderers, event);
      if (text !== null) {
        const out = event.kind === 'summary' ? text : text.split('\n').map((l, i) => (i === 0 ? `${stamp()} ${l}` : `${' '.repeat(stamp().length)} ${l}`)).join('\n');
        opts.write(`${out}\n`);
      }
    }
    if (grouped && event.kind === 'phase_finished') opts.write('::endgroup::\n');
  };
}
