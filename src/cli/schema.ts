import type { Command } from '../cli.js';
import { UsageError } from '../errors.js';

// Placeholder until the schema command lands.
export const command: Command = {
  name: 'schema',
  summary: 'schema',
  usage: 'schema',
  options: {},
  async run() {
    throw new UsageError('"schema" is not available yet');
  },
};
