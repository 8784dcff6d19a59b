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
  host: z.string().min(1).meta({ description: 'Host name or IP address; every address of a name is tried.' }),
  port: Port.meta({ description: 'TCP port, 1 to 65535.' }),
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
  url: z.string().min(1).meta({ description: 'The http:// or https:// URL to request.' }),
  method: z.enum(['GET', 'HEAD']).optional().meta({ description: 'GET (default) or HEAD.' }),
  status: HttpStatus.optional().meta({ description: 'Accepted status: int, list, or class strings like "2xx". Default "2xx".' }),
  body: z
    .union([z.string(), z.strictObject({ regex: z.string().min(1).meta({ description: 'A regular expression the body must match.' }) })])
    .optional()
    .meta({ description: 'Body must contain this substring, or match { regex }.' }),
  headers: z.record(z.string(), z.string()).optional().meta({ description: 'Request headers, name: value.' }),
  ca: z.string().min(1).optional().meta({ description: 'PEM file of the CA to trust (TLS stays verified).' }),
  insecure: z.boolean().optional().meta({ description: 'true disables TLS verification (a warning is logged).' }),
  follow_redirects: z.boolean().optional().meta({ description: 'true: follow redirects and judge the final response. Default false: a 3xx fails unless status lists it.' }),
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

export const Baseline = z
  .strictObject({
    samples: z.number().int().min(3).max(1000).optional().meta({ description: 'Attempts measured on each release (the running one before stop, the new one after its gate passed). Default 20.' }),
    latency_p90: z
      .string()
      .regex(/^\d+(\.\d+)?x$/, { message: 'expected a factor like "1.5x"' })
      .optional()
      .meta({ description: "The new release's p90 latency may be at most this factor of the running release's (\"1.5x\")." }),
    error_rate: z
      .string()
      .regex(/^\+?\d+(\.\d+)?%$/, { message: 'expected a margin in percentage points like "+1%"' })
      .optional()
      .meta({ description: "The new release's error rate may be at most the running release's plus this many percentage points (\"+1%\")." }),
    latency_slack: Duration.optional().meta({ description: 'A p90 within this of the limit still passes: on one host a few ms are scheduling noise, not a slower release. Default 5ms.' }),
  })
  .meta({ description: "Gates only: compare the new release with the running one by the same probe, instead of (as well as) an absolute threshold. Blue/green compares the two slots; rolling compares each instance with the first instance's measure before the rollout." });

// One object with every type key optional (exactly one required, enforced in rules.ts) gives
// far clearer errors than a union of six objects would.
export const Check = z.strictObject({
  ...checkTiming,
  tcp: TcpTarget.optional().meta({ description: 'Ready when a connection to host:port is accepted (or, with state, refused or drained).' }),
  http: HttpTarget.optional().meta({ description: 'Ready when the URL answers an accepted status (and body). TLS is verified.' }),
  postgres: z.string().min(1).optional().meta({ description: 'postgres://user:password@host:port/db?sslmode=...' }),
  mysql: z.string().min(1).optional().meta({ description: 'mysql://user:password@host:port/db (MySQL or MariaDB)' }),
  redis: z.string().min(1).optional().meta({ description: 'redis://[:password@]host:port/db or rediss://' }),
  command: CommandLine.optional().meta({ description: 'Ready when it exits 0.' }),
  recipe: z
    .string()
    .regex(NAME_PATTERN, { message: 'expected a recipe name (1 to 63 of a-z, 0-9, ".", "_", "-")' })
    .optional()
    .meta({ description: 'Another recipe, by name, in the same state directory: ready when it has no run in progress, no unfinished run, and its last run succeeded. Two restarts of things that depend on each other cannot overlap.' }),
  baseline: Baseline.optional(),
}).meta({ id: 'Check', description: 'A check: exactly one of tcp, http, postgres, mysql, redis, command, plus timing.' });

export const Defaults = z.strictObject({
  interval: checkTiming.interval,
  attempt_timeout: checkTiming.attempt_timeout,
  timeout: checkTiming.timeout,
});

const stepFields = {
  timeout: Duration.optional().meta({ description: "The step's deadline; its whole process group is killed after it. Default 60s." }),
  env: Env.optional(),
  cwd: z.string().min(1).optional().meta({ description: 'Working directory of the command.' }),
};

export const RunStep = z.strictObject({
  name: z.string().min(1).max(128).optional().meta({ description: 'Shown in output and the journal. Default: the command itself.' }),
  run: CommandLine.meta({ description: 'The command, run to its exit: a string (run by /bin/sh -c) or an argv list (no shell).' }),
  ...stepFields,
}).meta({ id: 'Step', description: 'A command run to completion, bounded by its timeout.' });

export const Stop = z.strictObject({
  run: CommandLine.optional().meta({ description: 'Command that stops the service; its whole process group is killed after timeout.' }),
  signal: z
    .string()
    .regex(/^SIG[A-Z0-9]+$/, { message: 'expected a signal name like SIGTERM' })
    .optional()
    .meta({ description: 'Signal sent to the pid in pidfile; escalated to SIGKILL of the process group after grace.' }),
  pidfile: z.string().min(1).optional().meta({ description: 'File holding the pid to signal. A missing file or a dead pid means already stopped.' }),
  grace: Duration.optional().meta({ description: 'How long to wait after the signal before SIGKILL. Default 30s.' }),
  ...stepFields,
});

export const Start = z.strictObject({
  run: CommandLine.optional().meta({ description: "Command whose exit (not its stdout's close) ends the start." }),
  spawn: Argv.optional().meta({ description: 'Started detached by safe-restart in its own process group.' }),
  pidfile: z.string().min(1).optional().meta({ description: 'With spawn: where safe-restart writes the pid (atomically), for stop.signal to read.' }),
  log: z.string().min(1).optional().meta({ description: "File that receives a spawned process's stdout and stderr." }),
  ...stepFields,
});

// A hook item is a step (has `run`) or a check (has a check type key). The description doubles as the
// message when an item mixes both (schema-problems.ts).
export const HookItem = z
  .union([RunStep, Check])
  .meta({ description: 'A step (run) or a check (tcp, http, postgres, mysql, redis, command, recipe), not both.' });

export const Release = z.strictObject({
  symlink: z.string().min(1).optional().meta({ description: 'The link the service runs from; switched atomically.' }),
  releases_dir: z.string().min(1).optional().meta({ description: '--release ID means releases_dir/ID.' }),
  current: z.strictObject({ run: CommandLine.meta({ description: 'Prints the id of the active release on stdout.' }) }).optional().meta({ description: 'Prints the active release id.' }),
  activate: z
    .strictObject({ run: CommandLine.meta({ description: 'Makes $SAFE_RESTART_RELEASE the active release.' }), ...stepFields })
    .optional()
    .meta({ description: 'Activates $SAFE_RESTART_RELEASE.' }),
  exists: z
    .strictObject({ run: CommandLine.meta({ description: 'Exits 0 when release $SAFE_RESTART_RELEASE exists.' }), ...stepFields })
    .optional()
    .meta({ description: 'Exits 0 when release $SAFE_RESTART_RELEASE exists (checked for TARGET and, for rollback readiness, PREVIOUS, before anything is stopped).' }),
});

export const Service = z.strictObject({
  systemd: z
    .string()
    .min(1)
    .optional()
    .meta({ description: 'The systemd unit (".service" optional): stopped, started (after reset-failed), watched and its journal kept as evidence.' }),
  supervisor: z
    .strictObject({
      program: z.string().min(1).meta({ description: 'The supervisord program name.' }),
      config: z.string().min(1).optional().meta({ description: 'supervisord.conf, passed to supervisorctl -c.' }),
      serverurl: z.string().min(1).optional().meta({ description: 'supervisord URL (unix:///run/supervisor.sock, http://127.0.0.1:9001), passed to supervisorctl -s.' }),
    })
    .optional()
    .meta({ description: 'A supervisord program, driven through supervisorctl.' }),
  reload: z.boolean().optional().meta({ description: 'systemd only: run reloads the unit (systemctl reload) instead of stopping and starting it; MainPID must stay the same.' }),
  stop_timeout: Duration.optional().meta({ description: "Our bound on the stop. Default: the manager's own stop timeout (systemd TimeoutStopSec) plus a margin; a shorter value only warns." }),
  start_timeout: Duration.optional().meta({ description: "Our bound on the start. Default: the manager's own start timeout (systemd TimeoutStartSec) plus a margin." }),
});

const CommandOrArgv = CommandLine;

export const Traffic = z
  .strictObject({
    haproxy: z
      .strictObject({
        socket: z.string().min(1).meta({ description: 'The HAProxy stats socket, with `level admin` (stats socket /run/haproxy/admin.sock mode 600 level admin).' }),
        backend: z.string().min(1).meta({ description: 'The backend whose servers are the slots.' }),
        servers: z.record(z.string(), z.string().min(1)).optional().meta({ description: 'blue/green: slot name → HAProxy server name (rolling: each instance names its server).' }),
        state_file: z.string().min(1).optional().meta({ description: 'The path the HAProxy config names in server-state-file: `show servers state` is written there after every change, so a reload keeps the runtime state.' }),
      })
      .optional()
      .meta({ description: 'HAProxy, through its runtime API on the stats socket.' }),
    nginx: z
      .strictObject({
        upstream_file: z.string().min(1).meta({ description: 'The file that holds the whole `upstream NAME { server …; }` block; rewritten atomically.' }),
        upstream: z.string().min(1).meta({ description: 'The upstream name.' }),
        servers: z.record(z.string(), z.string().min(1)).optional().meta({ description: 'slot name → "host:port" in the upstream (default 127.0.0.1:<the slot port>).' }),
        test: CommandOrArgv.optional().meta({ description: 'Config test, default "nginx -t".' }),
        reload: CommandOrArgv.optional().meta({ description: 'Reload, default "nginx -s reload".' }),
        pidfile: z.string().min(1).meta({ description: "nginx's pid file: the reload is proven when the old workers have exited." }),
        check_url: z.string().min(1).optional().meta({ description: 'A URL through nginx that must answer 2xx after a switch.' }),
      })
      .optional()
      .meta({ description: 'nginx: the upstream file is rewritten, tested and reloaded, and the reload proven.' }),
    command: z
      .strictObject({
        enable: CommandOrArgv.meta({ description: 'Puts $SAFE_RESTART_SLOT into rotation.' }),
        disable: CommandOrArgv.meta({ description: 'Takes $SAFE_RESTART_SLOT out of rotation.' }),
        status: CommandOrArgv.optional().meta({ description: 'Prints UP, DOWN, MAINT or DRAIN (and optionally a session count) for $SAFE_RESTART_SLOT.' }),
      })
      .optional()
      .meta({ description: 'Any other load balancer, through your commands.' }),
  })
  .meta({ description: 'The load balancer in front of the slots: exactly one of haproxy, nginx, command.' });

const Drain = z
  .strictObject({
    timeout: Duration.optional().meta({ description: 'How long a drained server may keep sessions. Default 30s.' }),
    on_timeout: z.enum(['shutdown', 'proceed', 'fail']).optional().meta({ description: 'shutdown (default; HAProxy: shutdown sessions) | proceed (leave them) | fail (roll back).' }),
  })
  .meta({ description: 'Draining a server out of rotation.' });

export const Strategy = z
  .union([
    z.literal('in_place').meta({ description: 'Stop, start, gate one instance (default).' }),
    z.strictObject({
      blue_green: z
        .strictObject({
          slots: z.record(z.string(), z.strictObject({ port: Port.meta({ description: 'The port this slot listens on: ${SAFE_RESTART_PORT}.' }) })).meta({ description: 'Exactly two slots, e.g. { blue: { port: 8081 }, green: { port: 8082 } }.' }),
          traffic: Traffic,
          links_dir: z.string().min(1).optional().meta({ description: 'Where each slot\'s release link lives (default <releases_dir>/../slots/<slot>).' }),
          drain: Drain.optional(),
          bake: Duration.optional().meta({ description: 'After the switch the gates must keep passing this long. Default 0.' }),
          keep_previous: Duration.optional().meta({ description: 'The old slot stays up (drained) this long for an instant switch back; then the next run stops it. ≥ bake. Default 0: stopped at the end of the run.' }),
        })
        .meta({ description: 'Start the idle slot with the target, gate it on its own port, switch the load balancer to it, drain the old slot, bake.' }),
    }),
    z.strictObject({
      rolling: z
        .strictObject({
          instances: z
            .array(
              z.strictObject({
                name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/).meta({ description: 'The instance: ${SAFE_RESTART_SLOT}.' }),
                port: Port.meta({ description: '${SAFE_RESTART_PORT} of this instance.' }),
                server: z.string().min(1).optional().meta({ description: 'Its server name in the load balancer (default: the instance name).' }),
              }),
            )
            .min(1)
            .meta({ description: 'The instances, updated in this order.' }),
          traffic: Traffic,
          links_dir: z.string().min(1).optional().meta({ description: 'Where each instance\'s release link lives (default <releases_dir>/../slots/<name>).' }),
          max_unavailable: z.number().int().min(1).optional().meta({ description: 'Instances out of rotation at once. Default 1.' }),
          drain: Drain.optional(),
          bake: Duration.optional().meta({ description: 'After the last instance the gates must keep passing this long. Default 0.' }),
        })
        .meta({ description: 'Per instance: drain, stop, activate, start, gate, back in, wait UP; a failure rolls the updated instances back in reverse order.' }),
    }),
  ], { error: 'expected in_place, { blue_green: … } or { rolling: … }' })
  .meta({ description: 'How the new release reaches traffic: in_place (default), blue_green or rolling behind a load balancer.' });

export const NOTIFY_EVENTS = ['started', 'succeeded', 'rolled_back', 'failed', 'aborted'] as const;

export const Notify = z.strictObject({
  url: z.string().min(1).meta({ description: 'Webhook URL; each notification is a POST of JSON.' }),
  on: z.array(z.enum(NOTIFY_EVENTS)).min(1).optional().meta({ description: 'Default: succeeded, rolled_back, failed.' }),
  headers: z.record(z.string(), z.string()).optional().meta({ description: 'Extra request headers, name: value.' }),
  format: z.enum(['json', 'slack']).optional().meta({ description: 'json (default): the run as a JSON object; slack: a { text } message for a Slack webhook.' }),
  timeout: Duration.optional().meta({ description: 'Total budget for this notification, retries included. Default 10s.' }),
});

export const Recipe = z
  .strictObject({
    version: z.literal(1).meta({ description: 'The recipe format version: 1.' }),
    name: z.string().regex(NAME_PATTERN, {
      message: 'expected 1 to 63 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit',
    }).meta({ description: 'The service: 1 to 63 of a-z, 0-9, ".", "_", "-". Also the name of its lock and journals.' }),
    description: z.string().optional().meta({ description: 'Free text for people reading the recipe.' }),
    vars: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'must be letters, digits and _, not starting with a digit' }), z.string())
      .optional()
      .meta({ description: 'String values; may use ${ENV} and earlier vars. Names containing PASSWORD, SECRET, TOKEN or KEY are redacted.' }),
    defaults: Defaults.optional().meta({ description: 'Timing for every check (dependencies, gates, hook checks) that does not set its own.' }),
    dependencies: z
      .array(Check)
      .optional()
      .meta({ description: 'Checks that must all pass before anything is stopped; otherwise exit 1 with nothing touched.' }),
    verify: z
      .array(HookItem)
      .optional()
      .meta({
        description:
          'Steps or checks that test the TARGET release before anything is stopped (after dependencies, before before_stop hooks), with SAFE_RESTART_RELEASE = the target. A failure exits 1 with nothing touched.',
      }),
    release: Release.optional().meta({
      description: 'What the current and the previous release are: a symlink into releases_dir, or current + activate commands. Without it a run restarts in place and cannot roll back.',
    }),
    strategy: Strategy.optional(),
    on_dependency_outage: z
      .enum(['wait', 'rollback', 'stop'])
      .optional()
      .meta({
        description:
          'When a gate fails and a dependency is down too, the release is not to blame: wait (default) holds the new release and re-runs the gates once the dependencies are back within outage_wait; rollback does what a bad release gets; stop exits 3 and leaves the new release running.',
      }),
    deadline: Duration.optional().meta({
      description:
        "A time budget for the whole run. The rollback's worst case is reserved first; a run whose fixed steps (before_stop, stop, activate, start, after_start at their own deadlines) plus that reserve do not fit is refused before anything is stopped (exit 1); waits that can be shortened (dependencies, gates, outage_wait) are cut so the reserve is always left.",
    }),
    outage_wait: Duration.optional().meta({ description: 'How long on_dependency_outage: wait holds for the dependencies to come back, from the moment the outage is classified. Default 2m.' }),
    service: Service.optional().meta({
      description: 'The service manager that runs the service: { systemd: UNIT } or { supervisor: { program } }. A recipe has either service, or both stop and start.',
    }),
    stop: Stop.optional().meta({ description: 'How the service stops (without service:): exactly one of run (a command) or signal (to the pid in pidfile).' }),
    start: Start.optional().meta({ description: 'How the service starts (without service:): exactly one of run (a command; its exit ends the step) or spawn (started detached by safe-restart).' }),
    gates: z
      .array(Check)
      .optional()
      .meta({ description: 'Checks that prove the started release healthy; when one fails, the run rolls back and runs the same gates against the previous release.' }),
    hooks: z
      .strictObject({
        before_stop: z
          .array(HookItem)
          .optional()
          .meta({ description: 'Before stop (drain from the load balancer, wait until drained …); a failure exits 1 with nothing touched.' }),
        after_start: z.array(HookItem).optional().meta({ description: 'After start, before the gates; a failure rolls back.' }),
        on_success: z.array(HookItem).optional().meta({ description: 'After the gates passed; a failure is a warning.' }),
        on_rollback: z.array(HookItem).optional().meta({ description: 'After a rollback proved the previous release healthy; a failure is a warning.' }),
      })
      .optional()
      .meta({ description: 'Steps or checks run at fixed points of the restart.' }),
    rollback: z
      .strictObject({
        enabled: z.boolean().optional().meta({ description: 'false: never roll back (a failed start or gate then exits 3). Default true.' }),
        steps: z.array(RunStep).optional().meta({ description: 'Run after the previous release is re-activated and before it starts.' }),
      })
      .optional()
      .meta({ description: 'Going back to the previous release when stop, activate, start, after_start or the gates fail.' }),
    lock: z
      .strictObject({
        timeout: Duration.optional().meta({ description: "How long to wait for another run's lock before exiting 4. Default 0: exit 4 at once." }),
      })
      .optional()
      .meta({ description: 'The per-recipe lock that keeps two runs of this recipe apart.' }),
    notify: z
      .array(Notify)
      .optional()
      .meta({ description: 'Webhooks told of the start and the outcome; a failed notification is a warning and never changes the outcome.' }),
    confirm: z.boolean().optional().meta({ description: 'Ask "Proceed? [y/N]" before a run (skip with --yes).' }),
  })
  .meta({
    title: 'safe-restart recipe',
    description: 'A restart recipe for safe-restart, version 1.',
  });

export type WrittenRecipe = z.infer<typeof Recipe>;
export type WrittenCheck = z.infer<typeof Check>;
export type WrittenRunStep = z.infer<typeof RunStep>;
export type WrittenTraffic = z.infer<typeof Traffic>;

export function buildJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(Recipe, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
  return { ...schema, $id: 'https://safe-restart.dev/restart-recipe.schema.json' };
}
