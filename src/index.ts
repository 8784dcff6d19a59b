// The public API. The CLI is one client of it; nothing here writes to stdout or exits.
export * from './errors.js';
export type * from './recipe/types.js';
export { loadRecipeFile, loadRecipeText, type LoadOptions, type LoadedRecipe } from './recipe/load.js';
export { Redactor } from './redact.js';
export { buildPlan, renderPlan, type Plan } from './plan.js';
export { pollCheck, type CheckOutcome, type PollOptions } from './poll.js';
export { runRestart, newRunId, type RunOptions } from './runner/run.js';
export { listRuns, recipeStatuses, type RunRecord, type RecipeStatus } from './history.js';
export type { RunEvent, Summary, Outcome, Phase, EventSink } from './report/events.js';
export { preflight, type PreflightOptions, type PreflightReport } from './runner/preflight.js';
export { worstCase, type WorstCase } from './runner/budget.js';
export { RUNTIME_VARS, type RuntimeVars } from './recipe/runtime-vars.js';
export type { ServiceWatch, WatchFailure } from './service/watch.js';
