// Newline-delimited JSON events (pino): each line has runId, phase and event; the last is the summary.
import pino from 'pino';
import type { EventSink, RunEvent } from './events.js';

export function createJsonRenderer(opts: { fd?: number; stream?: NodeJS.WritableStream; runId: () => string }): EventSink {
  const destination = opts.stream ?? pino.destination({ fd: opts.fd ?? 1, sync: true });
  const logger = pino(
    {
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination as pino.DestinationStream,
  );
  return (event: RunEvent) => {
    const { kind, phase, ...fields } = event;
    const level = kind === 'warning' || kind === 'signal' ? 'warn' : kind === 'summary' && event.summary.exitCode !== 0 ? 'error' : 'info';
    logger[level]({ runId: opts.runId(), phase, event: kind, ...fields });
  };
}
