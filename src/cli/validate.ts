import type { Command } from '../cli.js';
import { UsageError } from '../errors.js';

// Placeholder until the validate command lands.
export const command: Command = {
  name: 'validate',
  summary: 'validate',
  usage: 'validate',
  options: {},
  async run() {
    throw new UsageError('"validate" is not available yet');
  },
};
