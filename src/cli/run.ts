import type { Command } from '../cli.js';
import { UsageError } from '../errors.js';

// Placeholder until the run command lands.
export const command: Command = {
  name: 'run',
  summary: 'run',
  usage: 'run',
  options: {},
  async run() {
    throw new UsageError('"run" is not available yet');
  },
};
