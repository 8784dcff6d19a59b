import type { Command } from '../cli.js';
import { RESTART_OPTIONS, loadForRestart, restartFromCli } from './restart-common.js';

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
    return restartFromCli(values, io, loaded, { mode: 'recover' });
  },
};
