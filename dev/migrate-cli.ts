// `npm run migrate` / `migrate:down` / `migrate:status`: the deployment step that changes the schema
// (never a function's cold start). Connects like the app does — DATABASE_URL, or DB_HOST/DB_NAME/DB_USER
// with a password or the operator's Microsoft Entra ID token — but as the migrating administrator.
import postgres from 'postgres';
import { parseConfig } from '../lib/config';
import { poolOptions } from '../lib/db';
import { migrateDown, migrateUp, migrationStatus } from '../lib/migrations';

async function main(command: string | undefined) {
  // Database settings only: the runner needs no keys, also in production (APP_ENV's default).
  const cfg = parseConfig(process.env, 'database');
  const options = { ...poolOptions(cfg), max: 1, connection: { application_name: 'aada-lms-migrate' } };
  const sql = cfg.DATABASE_URL ? postgres(cfg.DATABASE_URL, options) : postgres(options);
  const log = (line: string) => console.log(line);
  try {
    switch (command) {
      case 'up': {
        const applied = await migrateUp(sql, { log });
        console.log(applied.length ? `applied ${applied.join(', ')}` : 'nothing to apply: the schema is up to date');
        break;
      }
      case 'down': {
        const rolledBack = await migrateDown(sql, { log });
        console.log(rolledBack ? `rolled back ${rolledBack}` : 'nothing to roll back');
        break;
      }
      case 'status': {
        for (const row of await migrationStatus(sql)) {
          const state = row.applied ? `applied ${row.appliedAt?.toISOString()}` : 'pending';
          const drift = row.checksumMatches === false ? '  CHANGED SINCE APPLIED' : '';
          console.log(`${row.version}  ${row.name.padEnd(32)} ${state}${drift}`);
        }
        break;
      }
      default:
        throw new Error('usage: migrate-cli up|down|status');
    }
  } finally {
    await sql.end();
  }
}

main(process.argv[2]).catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
