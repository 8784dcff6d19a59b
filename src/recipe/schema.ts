// The written recipe, as the user types it. Single source of truth for validation and for
// restart-recipe.schema.json (generated with z.toJSONSchema). Normalisation (durations to ms,
// defaults, labels) happens after this, in normalize.ts.
import { z } from 'zod';
import { CHECK_TYPES, DURATION_PATTERN, type CheckType } from './constants.js';

export { CHECK_TYPES, DURATION_PATTERN, type CheckType };


export const Duration = z
  .union([
    z.string().regex(DURATION_PATTERN, { message: 'expected a duration like 250ms, 1.5s, 2m or 1h' }),
    z.number().int().nonnegative(),
  ], { error: 'expected a duration like 250ms, 1.5s, 2m or 1h, or a whole number of milliseconds' })
  .meta({ id: 'Duration', description: 'A duration: "250ms", "1.5s", "30s", "2m", "1h", or a whole number of milliseconds.' });

const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const CHECK_NAME = z.string().min(1).max(128);

export const Argv = z.array(z.string()).min(1).meta({ description: 'argv array, run without a shell' });
export const CommandLine = z
  .union([z.string().min(1), Argv], { error: 'expected a command: a string (run by /bin/sh -c) or a list of arguments' })
  .meta({ id: 'Command', description: 'A string (run by /bin/sh -c) or an argv array (no shell).' });

const Env = z.record(z.string(), z.string()).meta({ description: 'Environment variables merged over the inherited environment.' });

const Port = z.number().int().min(1).max(65535);

const TcpObject = z.strictObject({
  host: z.string().min(1),
  port: Port,
  state: z
    .enum(['open', 'closed', 'drained'])
    .optional()
    .meta({
      description:
        'open (default): a connection is accepted; closed: connections are refused; drained: no ESTABLISHED connections to that local port remain.',
    }),
});

export const TcpTarget = z.union(
  [z.string().min(1).meta({ description: 'Shorthand "host:port" or "[::1]:port".' }), TcpObject],
  { error: 'expected "host:port" or a mapping { host, port }' },
);

const StatusClass = z.string().regex(/^[1-5]xx$/, { message: 'expected a status class like "2xx"' });
const StatusCode = z.number().int().min(100).max(599);
export const HttpStatus = z.union([StatusCode, StatusClass, z.array(z.union([StatusCode, StatusClass])).min(1)], {
  error: 'expected a status code (200), a class ("2xx") or a list of them',
});

const HttpObject = z.strictObject({
  url: z.string().min(1),
  method: z.enum(['GET', 'HEAD']).optional(),
  status: HttpStatus.optional().meta({ description: 'Accepted status: int, list, or class strings like "2xx". Default "2xx".' }),
  body: z
    .union([z.string(), z.strictObject({ regex: z.string().min(1) })])
    .optional()
    .meta({ description: 'Body must contain this substring, or match { regex }.' }),
  headers: z.record(z.string(), z.string()).optional(),
  ca: z.string().min(1).optional().meta({ description: 'PEM file of the CA to trust (TLS stays verified).' }),
  insecure: z.boolean().optional().meta({ description: 'true disables TLS verification (a warning is logged).' }),
  follow_redirects: z.boolean().optional(),
});

export const HttpTarget = z.union(
  [z.string().min(1).meta({ description: 'The URL; everything else takes its default.' }), HttpObject],
  { error: 'expected a URL or a mapping { url, ... }' },
);


const checkTiming = {
  name: CHECK_NAME.optional().meta({ description: 'Unique in its list; default: a readable label such as "tcp 127.0.0.1:9092".' }),
  interval: Duration.optional().meta({ description: 'Time between the starts of two attempts. Default 100ms.' }),
  attempt_timeout: Duration.optional().meta({ description: "One attempt's deadline (connect + response). Default 2s." }),
  timeout: Duration.optional().meta({ description: 'Overall deadline for the check to pass. Default 60s.' }),
  initial_delay: Duration.optional().meta({ description: 'Wait before the first attempt. Default 0.' }),
  success_threshold: z.number().int().min(1).max(1000).optional().meta({ description: 'Consecutive passes needed. Default 1.' }),
  stable_for: Duration.optional().meta({ description: 'After passing, it must keep passing for this long. Default 0.' }),
};

// One object with every type key optional (exactly one required, enforced in rules.ts) gives
// far clearer errors than a union of six objects would.
export const Check = z.strictObject({
  ...checkTiming,
  tcp: TcpTarget.optional(),
  http: HttpTarget.optional(),
  postgres: z.string().min(1).optional().meta({ description: 'postgres://user:password@host:port/db?sslmode=...' }),
  mysql: z.string().min(1).optional().meta({ description: 'mysql://user:password@host:port/db (MySQL or MariaDB)' }),
  redis: z.string().min(1).optional().meta({ description: 'redis://[:password@]host:port/db or rediss://' }),
  command: CommandLine.optional().meta({ description: 'Ready when it exits 0.' }),
}).meta({ id: 'Check', description: 'A check: exactly one of tcp, http, postgres, mysql, redis, command, plus timing.' });

export const Defaults = z.strictObject({
  interval: checkTiming.interval,
  attempt_timeout: checkTiming.attempt_timeout,
  timeout: checkTiming.timeout,
});

const stepFields = {
  timeout: Duration.optional().meta({ description: "The step's deadline; its whole process group is killed after it. Default 60s." }),
  env: Env.optional(),
  cwd: z.string().min(1).optional(),
};

export const RunStep = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  run: CommandLine,
  ...stepFields,
}).meta({ id: 'Step', description: 'A command run to completion, bounded by its timeout.' });

export const Stop = z.strictObject({
  run: CommandLine.optional(),
  signal: z
    .string()
    .regex(/^SIG[A-Z0-9]+$/, { message: 'expected a signal name like SIGTERM' })
    .optional()
    .meta({ description: 'Signal sent to the pid in pidfile; escalated to SIGKILL of the process group after grace.' }),
  pidfile: z.string().min(1).optional(),
  grace: Duration.optional().meta({ description: 'How long to wait after the signal before SIGKILL. Default 30s.' }),
  ...stepFields,
});

export const Start = z.strictObject({
  run: CommandLine.optional().meta({ description: "Command whose exit (not its stdout's close) ends the start." }),
  spawn: Argv.optional().meta({ description: 'Started detached by safe-restart in its own process group.' }),
  pidfile: z.string().min(1).optional(),
  log: z.string().min(1).optional().meta({ description: "File that receives a spawned process's stdout and stderr." }),
  ...stepFields,
});

// A hook item is a step (has `run`) or a check (has a check type key).
export const HookItem = z.union([RunStep, Check]);

export const Release = z.strictObject({
  symlink: z.string().min(1).optional().meta({ description: 'The link the service runs from; switched atomically.' }),
  releases_dir: z.string().min(1).optional().meta({ description: '--release ID means releases_dir/ID.' }),
  current: z.strictObject({ run: CommandLine }).optional().meta({ description: 'Prints the active release id.' }),
  activate: z
    .strictObject({ run: CommandLine, ...stepFields })
    .optional()
    .meta({ description: 'Activates $SAFE_RESTART_RELEASE.' }),
});

export const NOTIFY_EVENTS = ['started', 'succeeded', 'rolled_back', 'failed', 'aborted'] as const;

export const Notify = z.strictObject({
  url: z.string().min(1),
  on: z.array(z.enum(NOTIFY_EVENTS)).min(1).optional().meta({ description: 'Default: succeeded, rolled_back, failed.' }),
  headers: z.record(z.string(), z.string()).optional(),
  format: z.enum(['json', 'slack']).optional(),
  timeout: Duration.optional().meta({ description: 'Total budget for this notification, retries included. Default 10s.' }),
});

export const Recipe = z
  .strictObject({
    version: z.literal(1),
    name: z.string().regex(NAME_PATTERN, {
      message: 'expected 1 to 63 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit',
    }),
    description: z.string().optional(),
    vars: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'must be letters, digits and _, not starting with a digit' }), z.string())
      .optional()
      .meta({ description: 'String values; may use ${ENV} and earlier vars. Names containing PASSWORD, SECRET, TOKEN or KEY are redacted.' }),
    defaults: Defaults.optional(),
    dependencies: z.array(Check).optional(),
    release: Release.optional(),
    stop: Stop,
    start: Start,
    gates: z.array(Check).optional(),
    hooks: z
      .strictObject({
        before_stop: z.array(HookItem).optional(),
        after_start: z.array(HookItem).optional(),
        on_success: z.array(HookItem).optional(),
        on_rollback: z.array(HookItem).optional(),
      })
      .optional(),
    rollback: z
      .strictObject({
        enabled: z.boolean().optional(),
        steps: z.array(RunStep).optional(),
      })
      .optional(),
    lock: z.strictObject({ timeout: Duration.optional() }).optional(),
    notify: z.array(Notify).optional(),
    confirm: z.boolean().optional().meta({ description: 'Ask "Proceed? [y/N]" before a run (skip with --yes).' }),
  })
  .meta({
    title: 'safe-restart recipe',
    description: 'A restart recipe for safe-restart, version 1.',
  });

export type WrittenRecipe = z.infer<typeof Recipe>;
export type WrittenCheck = z.infer<typeof Check>;
export type WrittenRunStep = z.infer<typeof RunStep>;

export function buildJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(Recipe, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
  return { ...schema, $id: 'https://safe-restart.dev/restart-recipe.schema.json' };
}
