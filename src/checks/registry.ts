// Maps a recipe's check key to its module. Modules are imported on first use, so a recipe with only
// tcp checks never loads pg, mysql2 or ioredis (cold start of `check` stays cheap).
import type { CheckType } from '../recipe/types.js';
import type { AttemptFn } from './types.js';

type Loader = () => Promise<{ attempt: AttemptFn<never> }>;

const LOADERS: Record<CheckType, Loader> = {
  tcp: () => import('./tcp.js'),
  http: () => import('./http.js'),
  postgres: () => import('./postgres.js'),
  mysql: () => import('./mysql.js'),
  redis: () => import('./redis.js'),
  command: () => import('./command.js'),
  recipe: () => import('./recipe.js'),
};

/** The single-attempt function for a check type, its module loaded on first call. */
export async function loadAttempt(type: CheckType): Promise<AttemptFn> {
  const load = LOADERS[type];
  if (!load) throw new TypeError(`unknown check type "${String(type)}"`);
  const mod = await load();
  // Each module's attempt takes its own probe type; the spec's type selected the module, so the probe matches.
  return mod.attempt as unknown as AttemptFn;
}
