// The final summary as text: a timeline table and the outcome as "reason – action".
import type { Summary } from './events.js';

const ms = (n: number) => (n < 1000 ? `${n}ms` : `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)}s`);

export function formatDuration(n: number): string {
  return ms(n);
}

export function renderSummary(summary: Summary, opts: { color?: (kind: 'ok' | 'bad' | 'dim', text: string) => string } = {}): string {
  const color = opts.color ?? ((_k, t) => t);
  const rows = summary.timeline.map((t) => [t.phase, `+${ms(t.startMs)}`, ms(t.durationMs), t.result, t.detail ?? '']);
  const header = ['phase', 'start', 'duration', 'result', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) =>
    r
      .slice(0, 4)
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ') + (r[4] ? `  ${r[4].length > 100 ? `${r[4].slice(0, 97)}...` : r[4]}` : '');
  const lines = ['', 'Timeline:', `  ${fmt(header)}`.trimEnd()];
  for (const r of rows) {
    const line = `  ${fmt(r)}`;
    lines.push(r[3] === 'ok' ? line : r[3] === 'skipped' ? color('dim', line) : color('bad', line));
  }
  const label = { succeeded: 'SUCCEEDED', rolled_back: 'ROLLED BACK', failed: 'FAILED – NEEDS A HUMAN', aborted: 'ABORTED – NOTHING TOUCHED' }[summary.outcome];
  lines.push('');
  lines.push(color(summary.exitCode === 0 ? 'ok' : 'bad', `${label} (exit ${summary.exitCode}) in ${ms(summary.durationMs)}: ${summary.description}`));
  for (const b of summary.baselines ?? []) {
    const mark = b.verdict === 'passed' ? '✓' : b.verdict === 'failed' ? '✗' : '–';
    lines.push(`baseline ${mark} ${b.gate}: ${b.detail}`);
  }
  if (summary.deadline?.cut) lines.push(`deadline: ${summary.deadline.cut}`);
  for (const w of summary.warnings) lines.push(`warning: ${w}`);
  if (summary.leftState?.length) {
    lines.push('State left behind:');
    for (const l of summary.leftState) lines.push(`  - ${l}`);
  }
  lines.push(color('dim', `journal: ${summary.journal}`));
  if (summary.evidence) lines.push(`evidence: ${summary.evidence}`);
  return lines.join('\n');
}

/** The timeline as a Markdown table (GitHub step summary, evidence summary.md). */
export function markdownTimeline(summary: Summary): string[] {
  return [
    '| phase | start | duration | result | detail |',
    '|---|---|---|---|---|',
    ...summary.timeline.map((t) => `| ${t.phase} | +${ms(t.startMs)} | ${ms(t.durationMs)} | ${t.result} | ${(t.detail ?? '').replace(/\|/g, '\\|')} |`),
  ];
}

/** A short Markdown report of one run, for $GITHUB_STEP_SUMMARY. */
export function renderMarkdownSummary(summary: Summary): string {
  const icon = { succeeded: '✅', rolled_back: '↩️', failed: '🚨', aborted: '⛔' }[summary.outcome];
  return [
    `### ${icon} safe-restart ${summary.recipe}: ${summary.outcome.replace('_', ' ')} (exit ${summary.exitCode})`,
    '',
    `${summary.description}`,
    '',
    `Release: ${summary.previousRelease ?? 'none'} → ${summary.targetRelease ?? 'none'} · run ${summary.runId} · ${ms(summary.durationMs)}`,
    '',
    ...markdownTimeline(summary),
    '',
    ...(summary.leftState?.length ? ['**State left behind:**', '', ...summary.leftState.map((l) => `- ${l}`), ''] : []),
    ...(summary.evidence ? [`Evidence: \`${summary.evidence}\``, ''] : []),
  ].join('\n');
}
