// The evidence bundle of a run that did not simply succeed: everything an incident note needs,
// redacted, in one folder: the journal, each step's output, the failing checks' last responses,
// the recipe, and summary.md.
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { CheckOutcome } from '../poll.js';
import type { Summary } from '../report/events.js';
import { formatDuration, markdownTimeline } from '../report/summary.js';

export interface EvidenceInput {
  dir: string;
  summary: Summary;
  journalPath: string;
  stepLogDir: string;
  recipeFile: string;
  failedChecks: Array<{ phase: string; outcome: CheckOutcome }>;
  redact: (text: string) => string;
  userReason?: string;
  /** what the service manager knows: systemctl status/show and the unit's journal, supervisorctl tails … */
  serviceFiles?: Array<{ name: string; text: string }>;
}

// the journal/log file whose last lines the incident note quotes
const SERVICE_LOG_FILES = ['journal.txt', 'program-stderr.txt', 'program-stdout.txt', 'service-log-tail.txt'];
const NOTE_LOG_LINES = 10;

export function writeEvidence(input: EvidenceInput): string {
  const { dir, redact } = input;
  mkdirSync(join(dir, 'steps'), { recursive: true, mode: 0o700 });
  if (existsSync(input.journalPath)) copyFileSync(input.journalPath, join(dir, 'journal.jsonl'));
  if (existsSync(input.stepLogDir)) {
    for (const f of readdirSync(input.stepLogDir)) {
      writeFileSync(join(dir, 'steps', f), redact(readFileSync(join(input.stepLogDir, f), 'utf8')), { mode: 0o600 });
    }
  }
  try {
    writeFileSync(join(dir, 'recipe.yaml'), redact(readFileSync(input.recipeFile, 'utf8')), { mode: 0o600 });
  } catch {
    // an inline recipe has no file
  }
  for (const f of input.serviceFiles ?? []) {
    mkdirSync(join(dir, 'service'), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 'service', basename(f.name)), redact(f.text), { mode: 0o600 });
  }
  const checks = input.failedChecks.map(({ phase, outcome }) => ({
    phase,
    name: outcome.name,
    type: outcome.type,
    target: redact(outcome.target),
    attempts: outcome.attempts,
    elapsedMs: outcome.elapsedMs,
    error: outcome.error && { code: outcome.error.code, message: redact(outcome.error.message) },
    last: outcome.last && {
      ok: outcome.last.ok,
      detail: redact(outcome.last.detail),
      error: outcome.last.error && { code: outcome.last.error.code, message: redact(outcome.last.error.message) },
      addresses: outcome.last.addresses,
      http: outcome.last.http && {
        status: outcome.last.http.status,
        headers: JSON.parse(redact(JSON.stringify(outcome.last.http.headers))) as Record<string, string>,
        bodySnippet: redact(outcome.last.http.bodySnippet),
      },
      output: outcome.last.output === undefined ? undefined : redact(outcome.last.output),
    },
  }));
  writeFileSync(join(dir, 'checks.json'), `${JSON.stringify(checks, null, 2)}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'summary.md'), renderIncidentNote(input, checks), { mode: 0o600 });
  return dir;
}

function renderIncidentNote(input: EvidenceInput, checks: Array<{ phase: string; name: string; error: { code: string; message: string } | null; last: { http?: { status: number; bodySnippet: string } | undefined } | null }>): string {
  const s = input.summary;
  const what =
    s.targetRelease && s.previousRelease !== s.targetRelease
      ? `switch ${s.recipe} from release ${s.previousRelease ?? 'none'} to ${s.targetRelease}`
      : `restart ${s.recipe} in place${s.targetRelease ? ` (release ${s.targetRelease})` : ''}`;
  const lines = [
    `# safe-restart: ${s.recipe} ${s.outcome.replace('_', ' ')} (exit ${s.exitCode})`,
    '',
    `- **Run:** ${s.runId}, started ${s.startedAt}, took ${formatDuration(s.durationMs)}`,
    `- **Attempted:** ${what}${input.userReason ? ` — reason: ${input.redact(input.userReason)}` : ''}`,
    `- **What failed:** ${s.reason}`,
    `- **What was done:** ${s.action}`,
    '',
    '## Timeline',
    '',
    ...markdownTimeline(s),
  ];
  if (checks.length > 0) {
    lines.push('', '## Failing checks', '');
    for (const c of checks) {
      lines.push(`- **${c.name}** (${c.phase}): ${c.error ? `${c.error.code} – ${c.error.message}` : 'failed'}`);
      if (c.last?.http) lines.push(`  - last HTTP status ${c.last.http.status}, body: \`${c.last.http.bodySnippet.slice(0, 200).replace(/`/g, "'").replace(/\n/g, ' ')}\``);
    }
  }
  const log = (input.serviceFiles ?? []).find((f) => SERVICE_LOG_FILES.includes(f.name) && f.text.trim() !== '');
  if (log) {
    const tail = log.text.trimEnd().split('\n').slice(-NOTE_LOG_LINES);
    lines.push('', `## The service's last words (\`service/${log.name}\`)`, '', '```', ...tail, '```');
  }
  if (s.leftState?.length) lines.push('', '## State left behind', '', ...s.leftState.map((l) => `- ${l}`));
  if (s.warnings.length) lines.push('', '## Warnings', '', ...s.warnings.map((w) => `- ${w}`));
  lines.push('', '## Files', '', `- journal: \`${basename(input.journalPath)}\` (copied as journal.jsonl)`, '- step output: `steps/`', '- failing checks, last responses: `checks.json`', '- recipe (redacted): `recipe.yaml`', ...((input.serviceFiles ?? []).length > 0 ? ['- the service manager\'s view (unit state, journal, program logs): `service/`'] : []), '');
  return input.redact(lines.join('\n'));
}
