import type { Command } from '../cli.js';
import { UsageError } from '../errors.js';

// Placeholder until the history command lands.
export const command: Command = {
  name: 'history',
  summary: 'history',
  usage: 'history',
  options: {},
  async run() {
    throw new UsageError('"history" is not available yet');
  },
};
