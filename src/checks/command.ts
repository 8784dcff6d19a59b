// The `command` check: one run of a command; exit 0 means ready. On the attempt deadline the command's
// whole process group is killed, grandchildren included.
import type { CommandProbe } from '../recipe/types.js';
import { runStep } from '../process/step.js';
import { tellingLine } from '../process/telling-line.js';
import type { AttemptFn } from './types.js';

// A probe changes nothing, so at its deadline its group is SIGKILLed at once: the poller waits only
// a few ms for a cut-off attempt, and the group must be gone by then.
const CHECK_KILL_SIGNAL = 'SIGKILL';
// An abort this close to the deadline is the deadline (the poller's timer and ours start a moment apart).
const DEADLINE_SLACK_MS = 50;
const SNIPPET_CHARS = 200;

export const attempt: AttemptFn<CommandProbe> = async (probe, ctx) => {
  const shown = typeof probe.command === 'string' ? probe.command : probe.command.join(' ');
  const started = performance.now();
  let abortedAfterMs = ctx.signal.aborted ? 0 : Infinity;
  const onAbort = (): void => {
    abortedAfterMs = performance.now() - started;
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const result = await runStep(
    { name: 'check', run: probe.command, timeoutMs: ctx.timeoutMs, env: {} },
    { env: ctx.env ?? {}, signal: ctx.signal, killSignal: CHECK_KILL_SIGNAL },
  ).finally(() => ctx.signal.removeEventListener('abort', onAbort));
  const output = result.outputTail;
  // a failure's detail is the line that says why (as a failed step's), a success's what it printed
  const said = result.ok ? snippet(output) : shorten(tellingLine(output));
  const tail = said ? `: ${said}` : '';

  if (result.ok) return { ok: true, detail: `\`${shown}\` exited 0${tail}`, error: null, output };

  // The context signal fires at the deadline too; only an earlier abort is a cancellation.
  const cancelled = result.aborted && abortedAfterMs < ctx.timeoutMs - DEADLINE_SLACK_MS;
  if (result.timedOut || (result.aborted && !cancelled)) {
    const message = `\`${shown}\` did not finish within ${ctx.timeoutMs} ms; its process group was killed`;
    return { ok: false, detail: message + tail, error: { code: 'ETIMEDOUT', message }, output };
  }
  if (result.aborted) {
    const message = `\`${shown}\` was cancelled; its process group was killed`;
    return { ok: false, detail: message, error: { code: 'ABORTED', message }, output };
  }
  // sh reports a command it cannot find as exit 127.
  const missing =
    result.error?.code === 'ENOENT' || (typeof probe.command === 'string' && result.exitCode === 127);
  if (missing) {
    const message = result.error?.code === 'ENOENT' ? result.error.message : `\`${shown}\`: command not found (exit 127)${tail}`;
    return { ok: false, detail: message, error: { code: 'ENOENT', message }, output };
  }
  if (result.exitCode !== null || result.signal !== null) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
    // the headline a report shows carries the telling line: "exited with code 3" alone says nothing
    const message = `\`${shown}\` ${how}${tail}`;
    return { ok: false, detail: message, error: { code: 'COMMAND_FAILED', message }, output };
  }
  const message = result.error?.message ?? `\`${shown}\` failed`;
  return { ok: false, detail: message, error: { code: result.error?.code ?? 'COMMAND_FAILED', message }, output };
};

/** The last line or so of output, on one line, for the detail. */
function snippet(output: string): string {
  const flat = output.trim().replace(/\s+/g, ' ');
  return flat.length > SNIPPET_CHARS ? `…${flat.slice(-SNIPPET_CHARS)}` : flat;
}

function shorten(line: string): string {
  return line.length > SNIPPET_CHARS ? `${line.slice(0, SNIPPET_CHARS)}…` : line;
}
