import type { Command } from '../cli.js';
import { UsageError } from '../errors.js';

// Placeholder until the demo command lands.
export const command: Command = {
  name: 'demo',
  summary: 'demo',
  usage: 'demo',
  options: {},
  async run() {
    throw new UsageError('"demo" is not available yet');
  },
};
