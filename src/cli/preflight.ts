// `safe-restart preflight FILE`: would a run go ahead now? Everything `run` does before it would stop anything,
// and nothing else. Exit 0 yes · 1 it would abort (why) · 4 locked or `recover` needed.
import type { Command } from '../cli.js';
import { formatDuration } from '../poll.js';
import type { PreflightReport } from '../runner/preflight.js';
import { RESTART_OPTIONS, checkReleaseFlag, loadForRestart, stateDirFor } from './restart-common.js';

type Option = Command['options'][string];

export const command: Command = {
  name: 'preflight',
  summary: 'Would a run go ahead now? Lock, releases, rollback readiness, dependencies and verify, as `run` checks them before it stops anything. Touches nothing.',
  usage: 'preflight FILE [--release ID] [--var K=V]... [--state-dir DIR] [--json]',
  minPositionals: 1,
  maxPositionals: 1,
  options: {
    release: { type: 'string', description: 'the release a run would switch to' } as Option,
    var: RESTART_OPTIONS.var as Option,
    'state-dir': RESTART_OPTIONS['state-dir'] as Option,
    json: { type: 'boolean', description: 'print one JSON object' } as Option,
  },
  help: 'Exit codes: 0 a run would go ahead now · 1 it would abort (nothing touched) · 4 locked, or `safe-restart recover` must run first · 64 usage · 65 invalid recipe',
  async run(values, [file], io) {
    const release = checkReleaseFlag(values.release);
    const loaded = await loadForRestart(file as string, values, io);
    const redact = (t: string) => loaded.redactor.redact(t);
    for (const w of loaded.warnings) io.stderr.write(`${redact(w)}\n`);
    const { preflight } = await import('../runner/preflight.js');
    const controller = new AbortController();
    const unsubscribe = io.onSignal(() => controller.abort(new Error('interrupted')));
    let report: PreflightReport;
    try {
      report = await preflight({
        recipe: loaded.recipe,
        redact,
        stateDir: await stateDirFor(values, io),
        ...(release !== undefined ? { release } : {}),
        signal: controller.signal,
      });
    } finally {
      unsubscribe();
    }
    io.stdout.write(values.json ? `${redact(JSON.stringify(report))}\n` : redact(renderPreflight(report)));
    return report.exitCode;
  },
};

export function renderPreflight(r: PreflightReport): string {
  const lines: string[] = [];
  const verdict = r.exitCode === 0 ? 'a run would go ahead now' : r.exitCode === 4 ? 'a run would not start' : 'a run would abort, nothing touched';
  lines.push(`preflight ${r.recipe}: ${verdict}`);
  if (r.reason) lines.push(`  reason:       ${r.reason}`);
  if (r.previousRelease !== null || r.targetRelease !== null) {
    const exists = r.targetExists === null ? '' : r.targetExists ? ` (${r.targetRelease} exists)` : ` (${r.targetRelease} NOT found)`;
    lines.push(`  releases:     ${r.previousRelease ?? '(none)'} → ${r.targetRelease ?? '(none)'}${exists}`);
  }
  if (r.rollbackReady) lines.push(`  rollback:     ${r.rollbackReady.ok ? `${r.previousRelease} is there to roll back to` : r.rollbackReady.detail}`);
  lines.push(`  lock:         ${r.lock.state === 'free' ? 'free' : r.lock.detail}`);
  if (r.dependencies.length > 0) {
    const ready = r.dependencies.filter((d) => d.status === 'ready').length;
    lines.push(`  dependencies: ${ready}/${r.dependencies.length} ready`);
    for (const d of r.dependencies) lines.push(`    ${d.status === 'ready' ? '✓' : '✗'} ${d.name}${d.error ? `: ${d.error.message}` : ''}`);
  }
  if (r.verify.length > 0) {
    const passed = r.verify.filter((v) => v.ok).length;
    lines.push(`  verify:       ${passed}/${r.verify.length} passed`);
    for (const v of r.verify) lines.push(`    ${v.ok ? '✓' : '✗'} ${v.name}${v.ok ? '' : `: ${v.detail}`}`);
  }
  if (r.service) lines.push(`  service:      ${r.service.ok ? `${r.service.label}${r.service.live ? ` – ${r.service.live}` : ''}` : r.service.reason}`);
  for (const warning of r.warnings) lines.push(`  warning:      ${warning}`);
  const w = r.worstCase;
  lines.push(`  worst case:   ${formatDuration(w.totalMs)} (forward ${formatDuration(w.forwardMs)}${w.rollback.length > 0 ? `, rollback ${formatDuration(w.rollbackMs)}` : ', no rollback'})`);
  if (r.deadline) lines.push(`  deadline:     ${r.deadline.fits ? `fits, ${formatDuration(r.deadline.slackMs)} left for dependencies and gates` : 'does NOT fit'} (${r.deadline.arithmetic})`);
  return `${lines.join('\n')}\n`;
}
