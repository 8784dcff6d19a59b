import type { Command, Io, Values } from '../cli.js';
import type { RunRecord } from '../history.js';
import { RESTART_OPTIONS, loadForRestart, restartFromCli, stateDirFor } from './restart-common.js';

export const command: Command = {
  name: 'recover',
  summary:
    'Finish an interrupted run: kill the process groups it left, re-activate the last release that passed its gates (else the PREVIOUS of the unfinished run), start it and run the gates. With nothing unfinished it says so and touches nothing.',
  usage: 'recover FILE [--force] [--var K=V] [--state-dir DIR] [--json]',
  minPositionals: 1,
  maxPositionals: 1,
  options: {
    ...RESTART_OPTIONS,
    force: { type: 'boolean', description: 'even when no run is unfinished: stop, re-activate the last good release, start it and run the gates' } as Command['options'][string],
  },
  help: 'Exit codes: 0 nothing to recover (nothing touched) · 2 healthy again · 1 failed before any change · 3 still not healthy, needs a human · 4 a live run holds the lock',
  async run(values, [file], io) {
    const loaded = await loadForRestart(file as string, values, io);
    if (!values.force) {
      const stateDir = await stateDirFor(values, io);
      const { nothingToRecover } = await import('../history.js');
      const nothing = nothingToRecover(stateDir, loaded.recipe.name);
      if (nothing) return reportNothing(values, io, { recipe: loaded.recipe.name, stateDir, ...nothing }, loaded.redactor.redact.bind(loaded.redactor));
    }
    return restartFromCli(values, io, loaded, { mode: 'recover' });
  },
};

interface Nothing {
  recipe: string;
  stateDir: string;
  lastRun: RunRecord | null;
  needsHuman: RunRecord | null;
}

async function reportNothing(values: Values, io: Io, nothing: Nothing, redact: (t: string) => string): Promise<number> {
  const message = redact(describeNothing(nothing));
  if (values.json) {
    const { runJson } = await import('../history.js');
    const { recipe, lastRun, needsHuman } = nothing;
    const line = { time: new Date().toISOString(), event: 'nothing_to_recover', recipe, message, lastRun: lastRun && runJson(lastRun), needsHuman: needsHuman && runJson(needsHuman) };
    io.stdout.write(`${redact(JSON.stringify(line))}\n`);
  } else {
    io.stdout.write(`${message}\n`);
  }
  return 0;
}

function describeNothing({ recipe, stateDir, lastRun: run, needsHuman }: Nothing): string {
  if (!run) return `nothing to recover: no run of ${recipe} is recorded in ${stateDir}`;
  const outcome = run.command === 'recover' ? `${run.outcome} (recover)` : run.outcome;
  // a run that died before stop is no reason to restart anything: the next run takes its lock over
  const said =
    run.outcome === 'unfinished'
      ? `nothing to recover: the last run of ${recipe} (${run.runId}) ${run.reason}, before anything was touched`
      : `nothing to recover: the last run of ${recipe} finished (${outcome}, ${releaseText(run)})`;
  if (!needsHuman) return said;
  const who = needsHuman === run ? 'it' : `run ${needsHuman.runId} (exit 3)`;
  return `${said} – ${who} left the service needing a human: read ${needsHuman.evidence ?? needsHuman.journal}; \`safe-restart recover --force ${needsHuman.file ?? 'FILE'}\` restarts the last good release`;
}

/** "v2" for a run that ended on its target, else "v2 → v3"; one id when both are the same (in place). */
function releaseText(run: RunRecord): string {
  const previous = run.previousRelease ?? 'none';
  const target = run.targetRelease ?? 'none';
  if (run.outcome === 'succeeded' || previous === target) return target === 'none' ? 'no release recorded' : target;
  return `${previous} → ${target}`;
}
