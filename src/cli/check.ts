import type { Command } from '../cli.js';
import { UsageError } from '../errors.js';

// Placeholder until the check command lands.
export const command: Command = {
  name: 'check',
  summary: 'check',
  usage: 'check',
  options: {},
  async run() {
    throw new UsageError('"check" is not available yet');
  },
};
