// A traffic provider puts servers of a load balancer in and out of rotation and says what the load balancer
// sees: one file per load balancer (haproxy.ts, nginx.ts, command.ts), each tested against the real thing.
// Strategies (blue/green, rolling) speak only this interface; they never say "show stat" or "nginx -s reload".

export type AdminState = 'ready' | 'drain' | 'maint';

export interface ServerView {
  /** the slot or instance name of the recipe (blue, green, a …) */
  slot: string;
  /** the load balancer's own name for it (backend/server for HAProxy, host:port for nginx) */
  server: string;
  /** what the load balancer says: UP, DOWN, MAINT, DRAIN, NOLB … (HAProxy's words; nginx: UP for a listed server) */
  status: string;
  /** what we asked for */
  admin: AdminState;
  /** current sessions (HAProxy scur; nginx: connections of old worker generations still open, when known) */
  sessions: number;
  /** queued requests (HAProxy qcur) */
  queued: number;
}

export interface WaitResult {
  ok: boolean;
  /** "green UP after 120ms", "blue still has 3 sessions after 30s" */
  detail: string;
  elapsedMs: number;
}

export interface TrafficProvider {
  /** "haproxy backend order via /run/haproxy/admin.sock" */
  readonly label: string;
  /** Before anything is touched: reachable, allowed to change things (HAProxy: admin level), every slot's server known. */
  inspect(signal: AbortSignal): Promise<{ ok: boolean; reason?: string; warnings: string[] }>;
  /** Every slot's server as the load balancer sees it now. */
  observe(signal: AbortSignal): Promise<ServerView[]>;
  /** Put a slot's server into rotation (ready), or take it out (drain: finish what it has; maint: nothing at all). */
  set(slot: string, state: AdminState, signal: AbortSignal): Promise<void>;
  /** Wait (bounded) until the load balancer reports the slot's server UP and taking traffic. */
  waitUp(slot: string, timeoutMs: number, signal: AbortSignal): Promise<WaitResult>;
  /** Wait (bounded) until the slot's server has no sessions and nothing queued. */
  waitDrained(slot: string, timeoutMs: number, signal: AbortSignal): Promise<WaitResult>;
  /** Cut what is left on a drained server (HAProxy: shutdown sessions); optional. */
  shutdownSessions?(slot: string, signal: AbortSignal): Promise<void>;
  /** A text snapshot of the load balancer's state, for the journal before the first change and the evidence. */
  snapshot(signal: AbortSignal): Promise<string>;
  /** How many 5xx responses the load balancer has counted for the slot's server so far (HAProxy hrsp_5xx); absent or null when it cannot tell. */
  responses5xx?(slot: string, signal: AbortSignal): Promise<number | null>;
}

export type TrafficErrorCode =
  /** the load balancer could not be reached (socket missing, refused, no master pid) */
  | 'SR_TRAFFIC_UNREACHABLE'
  /** it answered, but not within the bound */
  | 'SR_TRAFFIC_TIMEOUT'
  /** it refused or failed the command (HAProxy's answer, a failing enable/disable command) */
  | 'SR_TRAFFIC_REFUSED'
  /** the new configuration failed its test (nginx -t); the previous file is back */
  | 'SR_TRAFFIC_CONFIG_INVALID'
  /** the reload command succeeded but the load balancer kept the old configuration; the previous file is back */
  | 'SR_TRAFFIC_RELOAD_NOT_TAKEN'
  /** the change is made, but the state that survives a reload (HAProxy server-state-file) could not be written */
  | 'SR_TRAFFIC_STATE_FILE'
  /** a slot the provider was not given, or the load balancer does not know */
  | 'SR_TRAFFIC_UNKNOWN_SLOT'
  | 'SR_TRAFFIC_ABORTED';

/** A provider could not do what it was asked; the message names the load balancer, the command and its answer. */
export class TrafficError extends Error {
  readonly code: TrafficErrorCode;
  constructor(code: TrafficErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TrafficError';
    this.code = code;
  }
}
