// Durations as written ("250ms", "1.5s", "2m", "1h", or whole milliseconds) to and from milliseconds.
import { DURATION_PATTERN } from './constants.js';

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** Node's timers overflow above this (about 24.8 days). */
export const MAX_DURATION_MS = 2_147_483_647;

/** Milliseconds of a written duration, or undefined when it is not one. Rounds to whole ms. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const match = DURATION_PATTERN.exec(value);
  if (!match) return undefined;
  return Math.round(Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]);
}

/** A readable duration for messages and plans: 0s, 250ms, 1.5s, 30s, 2m, 1h30m. */
export function formatMs(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1_000) return `${ms}ms`;
  if (ms < 60_000) return `${Number((ms / 1_000).toFixed(3))}s`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Number(((ms % 60_000) / 1_000).toFixed(3));
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s ? `${s}s` : ''}`;
}

/** How a duration was written, for messages that print both values: "30s", "5000ms". */
export function formatWritten(value: string | number): string {
  return typeof value === 'number' ? `${value}ms` : value;
}
