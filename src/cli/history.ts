import type { Command } from '../cli.js';
import { UsageError } from '../errors.js';
import { readOnlyStateDir } from './restart-common.js';

function ms(n: number | null): string {
  if (n === null) return '-';
  return n < 1000 ? `${n}ms` : `${(n / 1000).toFixed(1)}s`;
}

export const command: Command = {
  name: 'history',
  summary: 'List past runs from the journals, newest first.',
  usage: 'history [NAME] [--limit N] [--json] [--state-dir DIR]',
  maxPositionals: 1,
  options: {
    limit: { type: 'string', description: 'at most N runs (default 20)' } as Command['options'][string],
    json: { type: 'boolean', description: 'one JSON document { "runs": [...] }' } as Command['options'][string],
    'state-dir': { type: 'string', description: 'where the journals live' } as Command['options'][string],
  },
  async run(values, [name], io) {
    const limit = values.limit === undefined ? 20 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a positive integer (got "${String(values.limit)}")`);
    const { listRuns, runJson } = await import('../history.js');
    const runs = listRuns(await readOnlyStateDir(values, io), { recipe: name, limit });
    if (values.json) {
      io.stdout.write(`${JSON.stringify({ runs: runs.map(runJson) }, null, 2)}\n`);
      return 0;
    }
    if (runs.length === 0) {
      io.stdout.write(`no runs recorded${name ? ` for ${name}` : ''}\n`);
      return 0;
    }
    const rows = runs.map((r) => [
      r.runId,
      (r.startedAt ?? '-').replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
      r.recipe,
      `${r.previousRelease ?? '-'} → ${r.targetRelease ?? '-'}`,
      r.command === 'recover' ? `${r.outcome} (recover)` : r.outcome,
      r.exitCode === null ? '-' : String(r.exitCode),
      ms(r.durationMs),
      `${r.reason}${r.userReason ? ` [${r.userReason}]` : ''}`,
    ]);
    const header = ['RUN', 'STARTED', 'RECIPE', 'RELEASE', 'OUTCOME', 'EXIT', 'TOOK', 'REASON'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.slice(0).map((r) => (i === 7 ? 0 : (r[i] ?? '').length))));
    const line = (r: string[]) => r.map((c, i) => (i === 7 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
    io.stdout.write(`${[line(header), ...rows.map(line)].join('\n')}\n`);
    return 0;
  },
};
