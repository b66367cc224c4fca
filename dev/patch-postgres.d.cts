// Types of dev/patch-postgres.cjs (plain CommonJS: npm runs it at install, before anything is compiled).
/** Applies the #1208 guard to the installed postgres.js under `root`; returns the files it changed. */
export function patchPostgres(root?: string): string[];
export const MARK: string;
