// The live view for a terminal: the phases with a spinner and elapsed time, each check with its
// attempts and last error, finished phases collapsed to one line. log-update owns the cursor work
// (erase and redraw the frame): small, focused, and the frame is just a string we compute here.
import { createLogUpdate } from 'log-update';
import type { EventSink, Phase, Renderers, RunEvent } from './events.js';
import { renderWith } from './events.js';
import { formatDuration, renderSummary } from './summary.js';
import { passingText } from './human.js';

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const CODES = { ok: '\u001b[32m', bad: '\u001b[31m', dim: '\u001b[2m', reset: '\u001b[0m' } as const;

interface PhaseView {
  phase: Phase;
  startedAt: number;
  status: 'running' | 'ok' | 'failed';
  durationMs?: number;
  detail?: string;
  lines: Map<string, string>;
}

export interface TtyOptions {
  stream: NodeJS.WritableStream;
  color: boolean;
  now?: () => number;
  frameMs?: number;
}

export function createTtyRenderer(opts: TtyOptions): EventSink {
  const now = opts.now ?? (() => performance.now());
  // a pseudo-terminal without a size (script, some CI runners) reports 0 columns: assume 100x40
  const sized = opts.stream as NodeJS.WritableStream & { columns?: number; rows?: number };
  const view = {
    write: (text: string) => sized.write(text),
    get columns() {
      return sized.columns || 100;
    },
    get rows() {
      return sized.rows || 40;
    },
  };
  const log = createLogUpdate(view as unknown as NodeJS.WritableStream);
  const color = (kind: keyof typeof CODES, text: string) => (opts.color ? `${CODES[kind]}${text}${CODES.reset}` : text);
  const header: string[] = [];
  const phases: PhaseView[] = [];
  const checkStarted = new Map<string, number>();
  let tick = 0;
  let timer: NodeJS.Timeout | null = null;

  const current = () => phases[phases.length - 1];

  const frame = (): string => {
    const spin = SPINNER[tick % SPINNER.length] ?? '-';
    const out = [...header];
    for (const p of phases) {
      if (p.status === 'running') {
        out.push(`${color('dim', spin)} ${p.phase}${p.detail ? `: ${p.detail}` : ''} ${color('dim', formatDuration(Math.round(now() - p.startedAt)))}`);
        for (const line of p.lines.values()) out.push(`    ${line}`);
      } else if (p.status === 'ok') {
        out.push(color('ok', `✓ ${p.phase}`) + color('dim', ` ${formatDuration(p.durationMs ?? 0)}`));
      } else {
        out.push(color('bad', `✗ ${p.phase} ${formatDuration(p.durationMs ?? 0)}: ${p.detail ?? 'failed'}`));
      }
    }
    return out.join('\n');
  };

  const redraw = () => log(frame());
  const startTimer = () => {
    if (timer) return;
    timer = setInterval(() => {
      tick++;
      redraw();
    }, opts.frameMs ?? 100);
    timer.unref();
  };

  const renderers: Renderers<void> = {
    run_started: (e) => {
      header.push(`safe-restart ${e.recipe} on ${e.host}${e.userReason ? ` (reason: ${e.userReason})` : ''}`);
      startTimer();
    },
    releases_resolved: (e) => {
      header.push(
        e.previousRelease === e.targetRelease ? `release ${e.targetRelease ?? 'none'} (restart in place)` : `release ${e.previousRelease ?? 'none (first run)'} → ${e.targetRelease ?? 'none'}`,
      );
    },
    phase_started: (e) => {
      phases.push({ phase: e.phase, startedAt: now(), status: 'running', ...(e.detail ? { detail: e.detail } : {}), lines: new Map() });
    },
    phase_finished: (e) => {
      const p = [...phases].reverse().find((x) => x.phase === e.phase);
      if (!p) return;
      p.status = e.ok ? 'ok' : 'failed';
      p.durationMs = e.durationMs;
      if (!e.ok) p.detail = e.detail;
      else delete p.detail;
    },
    step_started: (e) => {
      current()?.lines.set(`step:${e.step}`, `↳ ${e.step}${e.pid ? ` (pid ${e.pid})` : ''}`);
    },
    step_output: (e) => {
      const last = e.text.trimEnd().split('\n').pop();
      if (last) current()?.lines.set(`out:${e.step}`, color('dim', `│ ${last.slice(0, 120)}`));
    },
    step_finished: (e) => {
      current()?.lines.delete(`out:${e.step}`);
      current()?.lines.set(`step:${e.step}`, e.ok ? `✓ ${e.step} ${color('dim', formatDuration(e.durationMs))}` : color('bad', `✗ ${e.step}: ${e.detail}`));
    },
    check_started: (e) => {
      checkStarted.set(e.check, now());
      current()?.lines.set(`check:${e.check}`, `… ${e.check} ${color('dim', `${e.checkType} ${e.target}`)}`);
    },
    check_progress: (e) => {
      const text = e.passing ? passingText(e) : `${e.attempts} attempts${e.lastError ? color('dim', ` · last: ${e.lastError.slice(0, 100)}`) : ''}`;
      current()?.lines.set(`check:${e.check}`, `… ${e.check}: ${text}`);
    },
    check_finished: (e) => {
      const c = e.check;
      current()?.lines.set(
        `check:${c.name}`,
        c.status === 'ready'
          ? `✓ ${c.name} ${color('dim', `${formatDuration(c.elapsedMs)}, ${c.attempts} attempts`)}`
          : c.status === 'cancelled'
            ? color('dim', `– ${c.name}: ${c.error?.message ?? 'cancelled'}`)
            : color('bad', `✗ ${c.name}: ${c.error?.message ?? 'failed'}`),
      );
    },
    warning: (e) => {
      header.push(color('bad', `warning: ${e.message}`));
    },
    signal: (e) => {
      header.push(color('bad', `received ${e.signal}: ${e.action}`));
    },
    summary: (e) => {
      if (timer) clearInterval(timer);
      timer = null;
      redraw();
      log.done();
      opts.stream.write(`${renderSummary(e.summary, { color })}\n`);
    },
  };

  return (event: RunEvent) => {
    renderWith(renderers, event);
    if (event.kind !== 'summary') redraw();
  };
}
