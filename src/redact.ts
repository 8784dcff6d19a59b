// Keeps secrets out of every line safe-restart prints: URL passwords, and the values of variables
// whose name says they are secret. Whatever is printed (plan, errors, logs) goes through redact().

export const SECRET_NAME_PATTERN = /PASSWORD|SECRET|TOKEN|KEY/i;
export const REDACTED = '***';

// Secrets this short would turn every occurrence of a common letter pair into *** and hide nothing real.
const MIN_SECRET_LENGTH = 3;

// scheme://user:password@ — the password part, wherever it appears in free text.
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*:)([^\s/?#@]*)@/gi;

export function isSecretName(name: string): boolean {
  return SECRET_NAME_PATTERN.test(name);
}

export class Redactor {
  private readonly secrets = new Set<string>();
  private ordered: string[] | null = null;

  /** Treat this exact value (and its URL-encoded form) as a secret. */
  addSecret(value: string): void {
    if (value.length < MIN_SECRET_LENGTH) return;
    this.secrets.add(value);
    const encoded = encodeURIComponent(value);
    if (encoded !== value) this.secrets.add(encoded);
    this.ordered = null;
  }

  /** Remember a variable's value as secret when its name contains PASSWORD, SECRET, TOKEN or KEY. */
  addVariable(name: string, value: string): void {
    if (isSecretName(name)) this.addSecret(value);
  }

  /** Remember the password of a URL (if it has one). */
  addUrl(url: string): void {
    const parsed = tryParseUrl(url);
    if (parsed?.password) {
      this.addSecret(parsed.password);
      this.addSecret(safeDecode(parsed.password));
    }
  }

  /** True when redact() would change nothing because no secret is known. */
  get empty(): boolean {
    return this.secrets.size === 0;
  }

  redact(text: string): string {
    let out = text;
    this.ordered ??= [...this.secrets].sort((a, b) => b.length - a.length);
    for (const secret of this.ordered) {
      if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    }
    return out.replace(URL_USERINFO, (_all, head: string, password: string) => (password ? `${head}${REDACTED}@` : `${head}@`));
  }

  /** The URL with its password replaced by *** (and any known secret elsewhere in it redacted). */
  redactUrl(url: string): string {
    return this.redact(url);
  }
}

function tryParseUrl(url: string): URL | null {
  try {
    return new URL(url);
  } catch {
    return null;
  }
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
