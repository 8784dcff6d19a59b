// What `run` and `recover` share: loading, the state directory, renderers, signals.
import type { Io, Options, Values } from '../cli.js';
import { parseVarFlags } from '../cli.js';
import { UsageError } from '../errors.js';
import type { EventSink } from '../report/events.js';
import type { LoadedRecipe } from '../recipe/load-core.js';
import { appendFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';

export const RESTART_OPTIONS: Options = {
  var: { type: 'string', multiple: true, description: 'NAME=value, wins over vars and the environment (repeatable)' } as Options[string],
  'state-dir': { type: 'string', description: 'where journals, locks and the last good release live' } as Options[string],
  json: { type: 'boolean', description: 'newline-delimited JSON events on stdout; the last is the summary' } as Options[string],
  quiet: { type: 'boolean', short: 'q', description: 'print only the final outcome' } as Options[string],
  reason: { type: 'string', description: 'why this run happens (ticket id …), recorded in the journal and history' } as Options[string],
  'no-tty': { type: 'boolean', description: 'plain timestamped lines even on a terminal' } as Options[string],
};

export async function loadForRestart(file: string, values: Values, io: Io) {
  const { loadRecipeFileFast: loadRecipeFile } = await import('../recipe/load-fast.js');
  const vars = parseVarFlags(values.var as string[] | undefined);
  return loadRecipeFile(file, { vars, env: io.env });
}

export async function stateDirFor(values: Values, io: Io): Promise<string> {
  const { resolveStateDir } = await import('../runner/state.js');
  return resolveStateDir({ flag: values['state-dir'] as string | undefined, env: io.env });
}

/**
 * The state directory for commands that only read it (history, status, and later plan and check):
 * resolved as `run` resolves it, never created.
 */
export async function readOnlyStateDir(values: Values, io: Io): Promise<string> {
  checkStateDirFlag(values, io);
  return stateDirFor(values, io);
}

/** An empty --state-dir, or one that names a file, is a usage error; one that does not exist yet is fine (nothing recorded). */
export function checkStateDirFlag(values: Values, io: Io): void {
  const flag = values['state-dir'];
  if (flag === undefined) return;
  if (typeof flag !== 'string' || flag === '') throw new UsageError(`--state-dir needs a directory (got ${JSON.stringify(flag)})`);
  let isDirectory = true;
  try {
    isDirectory = statSync(resolve(io.cwd, flag)).isDirectory();
  } catch (error) {
    isDirectory = (error as NodeJS.ErrnoException).code !== 'ENOTDIR';
  }
  if (!isDirectory) throw new UsageError(`--state-dir ${flag} is not a directory`);
}

/** --json: NDJSON on stdout; a terminal: the live view; otherwise (CI, pipes, --no-tty): plain lines. */
export async function createRenderer(values: Values, io: Io, runId: string): Promise<EventSink> {
  const sink = await pickRenderer(values, io, runId);
  const summaryFile = io.env.GITHUB_ACTIONS === 'true' ? io.env.GITHUB_STEP_SUMMARY : undefined;
  if (!summaryFile) return sink;
  const { renderMarkdownSummary } = await import('../report/summary.js');
  return (event) => {
    sink(event);
    if (event.kind === 'summary') {
      try {
        appendFileSync(summaryFile, `${renderMarkdownSummary(event.summary)}\n`);
      } catch {
        // the step summary is a courtesy; the run's outcome stands
      }
    }
  };
}

// only the chosen renderer is loaded: the terminal UI's dependencies cost a pipe-fed CI run ~25ms
async function pickRenderer(values: Values, io: Io, runId: string): Promise<EventSink> {
  if (values.json) {
    const { createJsonRenderer } = await import('../report/json.js');
    return createJsonRenderer({ stream: io.stdout, runId: () => runId });
  }
  const color = 'NO_COLOR' in io.env && io.env.NO_COLOR !== '' ? false : io.env.FORCE_COLOR ? io.env.FORCE_COLOR !== '0' : Boolean(io.stderr.isTTY);
  if (!values.quiet && !values['no-tty'] && io.stderr.isTTY && io.env.TERM !== 'dumb') {
    const { createTtyRenderer } = await import('../report/tty.js');
    return createTtyRenderer({ stream: io.stderr, color });
  }
  const { createHumanRenderer } = await import('../report/human.js');
  return createHumanRenderer({ write: (t) => io.stderr.write(t), quiet: Boolean(values.quiet), color, github: io.env.GITHUB_ACTIONS === 'true' });
}

export function checkReleaseFlag(release: unknown): string | undefined {
  if (release === undefined) return undefined;
  if (typeof release !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(release)) {
    throw new UsageError(`--release must match [A-Za-z0-9][A-Za-z0-9._-]* (got "${String(release)}")`);
  }
  return release;
}

/** Ask on the terminal; anything but y/yes is no. */
export async function askYesNo(io: Io, question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: io.stdin, output: io.stderr, terminal: true });
  try {
    const answer = await rl.question(question);
    return /^(y|yes)$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** Run (or recover) with the CLI's renderers, state directory and signals; returns the exit code. */
export async function restartFromCli(values: Values, io: Io, loaded: LoadedRecipe, extra: { release?: string; mode: 'run' | 'recover' }): Promise<number> {
  const { runRestart, newRunId } = await import('../runner/run.js');
  const runId = newRunId();
  const summary = await runRestart({
    recipe: loaded.recipe,
    redact: (t) => loaded.redactor.redact(t),
    stateDir: await stateDirFor(values, io),
    ...(extra.release !== undefined ? { release: extra.release } : {}),
    reason: values.reason as string | undefined,
    env: io.env,
    emit: await createRenderer(values, io, runId),
    onSignal: io.onSignal,
    ...(io.onHangup ? { onHangup: io.onHangup.bind(io) } : {}),
    runId,
    mode: extra.mode,
    warnings: loaded.warnings,
  });
  return summary.exitCode;
}
