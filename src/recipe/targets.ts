// What a check points at: the tcp shorthand, URLs of each scheme, and the readable labels built from them.
// Shared by rules.ts (which reports what is wrong) and normalize.ts (which trusts rules.ts ran first).

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

export interface HostPort {
  host: string;
  port: number;
}

/** A port written as digits, 1..65535, no leading zero. */
export function parsePort(text: string): Parsed<number> {
  if (!/^[1-9][0-9]{0,4}$/.test(text)) {
    return { ok: false, error: /^0[0-9]+$/.test(text) ? 'port must not have a leading zero' : 'port must be a number from 1 to 65535' };
  }
  const port = Number(text);
  return port <= 65535 ? { ok: true, value: port } : { ok: false, error: 'port must be a number from 1 to 65535' };
}

/** "host:port" or "[v6]:port". */
export function parseHostPort(text: string): Parsed<HostPort> {
  const v6 = /^\[([0-9A-Fa-f:.%a-zA-Z]+)\]:([^:]*)$/.exec(text);
  const plain = /^([^:[\]\s]+):([^:]*)$/.exec(text);
  const match = v6 ?? plain;
  if (!match) {
    return { ok: false, error: 'expected "host:port" (write an IPv6 address as "[::1]:port")' };
  }
  const port = parsePort(match[2] as string);
  if (!port.ok) return port;
  return { ok: true, value: { host: match[1] as string, port: port.value } };
}

/** How an address reads in labels: IPv6 in brackets. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export const URL_SCHEMES = {
  http: ['http:', 'https:'],
  postgres: ['postgres:', 'postgresql:'],
  mysql: ['mysql:', 'mariadb:'],
  redis: ['redis:', 'rediss:'],
} as const;

export const DEFAULT_PORTS: Record<string, number> = {
  'http:': 80,
  'https:': 443,
  'postgres:': 5432,
  'postgresql:': 5432,
  'mysql:': 3306,
  'mariadb:': 3306,
  'redis:': 6379,
  'rediss:': 6379,
};

export function parseUrl(text: string, kind: keyof typeof URL_SCHEMES): Parsed<URL> {
  const port = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/?#]*):([^/?#]*)/i.exec(text)?.[1];
  if (port !== undefined && port !== '') {
    const parsed = parsePort(port);
    if (!parsed.ok) return parsed;
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, error: `expected a ${URL_SCHEMES[kind].map((s) => `${s}//`).join(' or ')} URL` };
  }
  if (!(URL_SCHEMES[kind] as readonly string[]).includes(url.protocol)) {
    return { ok: false, error: `expected a ${URL_SCHEMES[kind].map((s) => `${s}//`).join(' or ')} URL, not ${url.protocol}//` };
  }
  if (kind === 'http' && !url.hostname) return { ok: false, error: 'the URL has no host' };
  return { ok: true, value: url };
}

/** "127.0.0.1:5432/orders" for a database URL: no user, no password, no query. */
export function describeDatabaseUrl(url: URL): string {
  const host = url.hostname || 'localhost';
  const port = url.port ? Number(url.port) : (DEFAULT_PORTS[url.protocol] ?? 0);
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  const db = url.pathname.replace(/^\//, '');
  return `${formatHostPort(bare, port)}${db ? `/${decodeURIComponent(db)}` : ''}`;
}

/** A command as one readable line, shortened. */
export function describeCommand(command: string | readonly string[], max = 80): string {
  const text = typeof command === 'string' ? command : command.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  const line = text.replace(/\s*\n\s*/g, '; ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
