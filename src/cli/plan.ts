import type { Command } from '../cli.js';
import { UsageError } from '../errors.js';

// Placeholder until the plan command lands.
export const command: Command = {
  name: 'plan',
  summary: 'plan',
  usage: 'plan',
  options: {},
  async run() {
    throw new UsageError('"plan" is not available yet');
  },
};
