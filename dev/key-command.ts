// The shared tail of the key commands (`npm run keys:rotate`, `npm run keys:reindex`): the owner's
// connection from DATABASE_URL (exit 2 with the command's usage when it is unset), a small pool closed
// whatever happens, the exit code the work decides, and running only when the file is the command run,
// not when a test imports its functions.
import path from 'node:path';
import postgres from 'postgres';

/**
 * Runs `work` on a two-connection pool of the database in DATABASE_URL and exits with the code it
 * returns (0 done, 1 not complete). `usage` says what the database is and shows an example command.
 */
export async function withOwnerDatabase(usage: string, work: (sql: postgres.Sql) => Promise<number>): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.error(`DATABASE_URL is required: ${usage}`);
    process.exit(2);
  }
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  try {
    process.exitCode = await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Runs `main` when `filename` is the command run (tsx dev/….ts); an error prints its message, exit 1. */
export function runAsCommand(filename: string, main: () => Promise<void>): void {
  if (!process.argv[1] || path.resolve(process.argv[1]) !== filename) return;
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
