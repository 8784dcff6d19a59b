import type { Command } from '../cli.js';

export const command: Command = {
  name: 'demo',
  summary:
    'Real restarts of a bundled HTTP service in a temp dir: v1→v2 succeeds; v2→v3 fails its gates and rolls back to v2, proven healthy. Cleans up every process.',
  usage: 'demo [--keep] [--json]',
  maxPositionals: 0,
  options: {
    keep: { type: 'boolean', description: 'keep the temp dir (journals, logs) for reading' } as Command['options'][string],
    json: { type: 'boolean', description: 'JSON events instead of human progress' } as Command['options'][string],
  },
  async run(values, _positionals, io) {
    const { runDemo } = await import('../demo/demo.js');
    const { createRenderer } = await import('./restart-common.js');
    const result = await runDemo({
      out: (t) => (values.json ? io.stderr : io.stdout).write(t),
      // with --json the events go to stdout and the narration to stderr
      emitFor: (runId) => createRenderer(values, values.json ? io : { ...io, stderr: io.stdout }, runId),
      env: io.env,
      nodePath: process.execPath,
      onSignal: io.onSignal,
      keep: Boolean(values.keep),
    });
    return result.ok ? 0 : 1;
  },
};
