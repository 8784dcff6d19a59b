import type { Command } from '../cli.js';
import { UsageError } from '../errors.js';

// Placeholder until the recover command lands.
export const command: Command = {
  name: 'recover',
  summary: 'recover',
  usage: 'recover',
  options: {},
  async run() {
    throw new UsageError('"recover" is not available yet');
  },
};
