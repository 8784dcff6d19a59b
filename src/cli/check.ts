// `safe-restart check FILE`: evaluate the dependencies (and with --gates the gates) against the live system.
// Changes nothing. Exit 0 when every check is ready, 1 otherwise.
import { parseVarFlags, type Command } from '../cli.js';
import { UsageError } from '../errors.js';
import { formatDuration as formatMs, type CheckOutcome } from '../poll.js';
import type { CheckSpec, ResolvedRecipe } from '../recipe/types.js';
import { checkStateDirFlag, readOnlyStateDir } from './restart-common.js';

type Option = Command['options'][string];

interface Row {
  kind: 'dependency' | 'gate';
  outcome: CheckOutcome;
}

const SNIPPET_SHOWN = 200;
const TABLE_ERROR_WIDTH = 72;

export const command: Command = {
  name: 'check',
  summary: 'Evaluate dependencies (and --gates) against the live system, waiting as `run` would. Changes nothing.',
  usage: 'check FILE [--gates] [--only NAME] [--once] [--json] [--var K=V] [--state-dir DIR]',
  minPositionals: 1,
  maxPositionals: 1,
  options: {
    gates: { type: 'boolean', description: 'also evaluate the gates' } as Option,
    only: { type: 'string', multiple: true, description: 'only the check(s) with this name (repeatable)' } as Option,
    once: { type: 'boolean', description: 'one attempt per check, no waiting (triage)' } as Option,
    json: { type: 'boolean', description: 'print one JSON document' } as Option,
    var: { type: 'string', multiple: true, description: 'set a recipe variable, NAME=value (repeatable)' } as Option,
    'state-dir': { type: 'string', description: 'where journals and locks live (read, never written)' } as Option,
  },
  help: 'Exit codes: 0 every check ready · 1 a check failed · 64 usage · 65 invalid recipe',
  async run(values, [file], io) {
    checkStateDirFlag(values, io);
    const { loadRecipeFileFast: loadRecipeFile } = await import('../recipe/load-fast.js');
    const { recipe, redactor, warnings } = await loadRecipeFile(file as string, {
      vars: parseVarFlags(values.var as string[] | undefined),
      env: io.env,
      cwd: io.cwd,
    });
    const redact = (text: string): string => redactor.redact(text);
    for (const w of warnings) io.stderr.write(`${redact(w)}\n`);
    // database drivers obey this variable (http checks verify regardless), as run and recover warn too
    if (io.env.NODE_TLS_REJECT_UNAUTHORIZED === '0') {
      io.stderr.write('warning: NODE_TLS_REJECT_UNAUTHORIZED=0 is set: TLS certificates are NOT verified for database checks (http checks still verify) – unset it\n');
    }

    const selected = selectChecks(recipe.dependencies, values.gates === true ? recipe.gates : [], values.only as string[] | undefined);
    const { checkAll, toJsonReport } = await import('../checks/run.js');
    const controller = new AbortController();
    const unsubscribe = io.onSignal(() => controller.abort());
    let report;
    try {
      report = await checkAll(
        await bindToCurrentRelease(recipe, selected),
        // recipe: checks read other recipes' locks and journals there
        { signal: controller.signal, once: values.once === true, ...(recipe.dependencies.some((d) => d.type === 'recipe') || values.gates === true ? { stateDir: await readOnlyStateDir(values, io) } : {}) },
      );
    } finally {
      unsubscribe();
    }
    const rows: Row[] = report.checks.map((outcome, i) => ({ kind: selected[i]?.kind ?? 'dependency', outcome }));
    if (values.json === true) {
      io.stdout.write(`${redact(JSON.stringify(toJsonReport(report), null, 2))}\n`);
    } else {
      io.stdout.write(redact(renderHuman(rows, values.gates === true, selected.map((s) => s.spec))));
    }
    return report.ok ? 0 : 1;
  },
};

function selectChecks(dependencies: CheckSpec[], gates: CheckSpec[], only: string[] | undefined): Array<{ kind: Row['kind']; spec: CheckSpec }> {
  const all = [
    ...dependencies.map((spec) => ({ kind: 'dependency' as const, spec })),
    ...gates.map((spec) => ({ kind: 'gate' as const, spec })),
  ];
  if (!only || only.length === 0) return all;
  const unknown = only.filter((name) => !all.some((c) => c.spec.name === name));
  if (unknown.length > 0) {
    const known = all.map((c) => c.spec.name).join(', ') || '(none)';
    throw new UsageError(`--only ${unknown.map((n) => JSON.stringify(n)).join(', ')}: no such check; the recipe has: ${known}`);
  }
  return all.filter((c) => only.includes(c.spec.name));
}

function renderHuman(rows: Row[], withKind: boolean, specs: CheckSpec[]): string {
  if (rows.length === 0) return 'no checks to evaluate\n';
  const header = [...(withKind ? ['KIND'] : []), 'NAME', 'TYPE', 'TARGET', 'STATUS', 'ATTEMPTS', 'TIME TO READY', 'LAST ERROR'];
  const table = rows.map(({ kind, outcome: o }) => [
    ...(withKind ? [kind] : []),
    o.name,
    o.type,
    o.target,
    o.cancelled ? 'cancelled' : o.status,
    String(o.attempts),
    o.status === 'ready' ? formatMs(o.elapsedMs) : '-',
    shorten(lastErrorText(o), TABLE_ERROR_WIDTH),
  ]);
  const widths = header.map((h, col) => Math.max(h.length, ...table.map((r) => (r[col] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  const out = [line(header), ...table.map(line)];

  for (const [i, { kind, outcome: o }] of rows.entries()) {
    if (o.status === 'ready') continue;
    out.push('', ...whyNotReady(kind, o, specs[i]));
  }
  const ready = rows.filter((r) => r.outcome.status === 'ready').length;
  const failed = rows.length - ready;
  out.push('', `${rows.length} check${rows.length === 1 ? '' : 's'}: ${ready} ready, ${failed} not ready`);
  return `${out.join('\n')}\n`;
}

function whyNotReady(kind: Row['kind'], o: CheckOutcome, spec: CheckSpec | undefined): string[] {
  const lines = [`why not ready: ${o.name} (${kind}, ${o.type} ${o.target})`];
  if (o.error) lines.push(`  error:      ${o.error.code}: ${o.error.message}`);
  const last = o.last;
  if (last?.error && !(o.error?.message ?? '').includes(last.error.message)) lines.push(`  last try:   ${last.error.code}: ${last.error.message}`);
  if (last?.addresses && last.addresses.length > 0) lines.push(`  addresses:  ${last.addresses.join(', ')}`);
  if (last?.http) {
    lines.push(`  http:       last status ${last.http.status}`);
    const body = last.http.bodySnippet.replace(/\s+/g, ' ').trim();
    if (body) lines.push(`  body:       ${JSON.stringify(shorten(body, SNIPPET_SHOWN))}`);
  }
  if (last?.output) {
    lines.push('  output:');
    for (const l of last.output.trimEnd().split('\n').slice(-10)) lines.push(`    ${l}`);
  }
  const limit = spec ? ` (timeout ${formatMs(spec.timeoutMs)}, attempt_timeout ${formatMs(spec.attemptTimeoutMs)}, interval ${formatMs(spec.intervalMs)})` : '';
  lines.push(`  waited:     ${formatMs(o.elapsedMs)} over ${o.attempts} attempt${o.attempts === 1 ? '' : 's'}${o.cancelled ? ', cancelled' : limit}`);
  return lines;
}

function lastErrorText(o: CheckOutcome): string {
  const err = o.last?.error ?? (o.status === 'failed' ? o.error : null);
  return err ? `${err.code} ${err.message}` : '-';
}

function shorten(text: string, max: number): string {
  const oneLine = text.replace(/\s*\n\s*/g, ' ');
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1)}…`;
}

// Run-time variables in a check are bound as a run would bind them for the release that is active now.
async function bindToCurrentRelease(recipe: ResolvedRecipe, selected: Array<{ kind: Row['kind']; spec: CheckSpec }>): Promise<CheckSpec[]> {
  const { bindDeep, mentionsRuntimeVars, runtimeVars } = await import('../recipe/runtime-vars.js');
  if (!mentionsRuntimeVars(selected.map((s) => s.spec))) return selected.map((s) => s.spec);
  const { readCurrentRelease } = await import('../runner/release.js');
  const { runStep } = await import('../process/step.js');
  const current = recipe.release
    ? await readCurrentRelease(recipe.release, async (step) => {
        const r = await runStep(step, { env: {} });
        return { ok: r.ok, stdout: r.stdoutTail ?? r.outputTail, detail: r.ok ? 'ok' : `exited ${r.exitCode}` };
      }).catch(() => null)
    : null;
  return selected.map(({ kind, spec }) =>
    bindDeep(spec, runtimeVars({ name: recipe.name, runId: 'check', phase: kind === 'gate' ? 'gates' : 'dependencies', release: current, previous: current, target: current }), new Set(['command'])),
  );
}
