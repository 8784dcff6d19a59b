// Plain constants of the recipe format, shared by the zod schema and the zod-free loading path
// (the CLI validates with a generated validator and loads zod only to explain a rejection).
export const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

export const CHECK_TYPES = ['tcp', 'http', 'postgres', 'mysql', 'redis', 'command', 'recipe'] as const;
export type CheckType = (typeof CHECK_TYPES)[number];
