import type { Command } from '../cli.js';
import { RESTART_OPTIONS, createRenderer, loadForRestart, stateDirFor } from './restart-common.js';

export const command: Command = {
  name: 'recover',
  summary:
    'Finish an interrupted run: kill the process groups it left, re-activate the last release that passed its gates (else the PREVIOUS of the unfinished run), start it and run the gates.',
  usage: 'recover FILE [--var K=V] [--state-dir DIR] [--json]',
  minPositionals: 1,
  maxPositionals: 1,
  options: { ...RESTART_OPTIONS },
  help: 'Exit codes: 2 healthy again · 1 failed before any change · 3 still not healthy, needs a human · 4 a live run holds the lock',
  async run(values, [file], io) {
    const loaded = await loadForRestart(file as string, values, io);
    const { runRestart, newRunId } = await import('../runner/run.js');
    const runId = newRunId();
    const emit = await createRenderer(values, io, runId);
    const summary = await runRestart({
      recipe: loaded.recipe,
      redact: (t) => loaded.redactor.redact(t),
      stateDir: await stateDirFor(values, io),
      reason: values.reason as string | undefined,
      env: io.env,
      emit,
      onSignal: io.onSignal,
      runId,
      mode: 'recover',
      warnings: loaded.warnings,
    });
    return summary.exitCode;
  },
};
