// The public API. The CLI is one client of it; nothing here writes to stdout or exits.
export * from './errors.js';
export type * from './recipe/types.js';
