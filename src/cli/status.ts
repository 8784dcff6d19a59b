import type { Command } from '../cli.js';
import { UsageError } from '../errors.js';

// Placeholder until the status command lands.
export const command: Command = {
  name: 'status',
  summary: 'status',
  usage: 'status',
  options: {},
  async run() {
    throw new UsageError('"status" is not available yet');
  },
};
