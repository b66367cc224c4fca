// Databases for tests: each test file works in its own database on the run's server.
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { ensureAppLogin, withDatabase } from '../../dev/database';

export interface TestDatabase {
  name: string;
  /** Administrator URL of this database (owner of every table). */
  url: string;
  /** Administrator connection to this database, for arranging and inspecting data. */
  sql: postgres.Sql;
  drop(): Promise<void>;
}

async function create(template?: string): Promise<TestDatabase> {
  const adminUrl = inject('adminUrl');
  const name = `aada_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    // Cloning fails while another session touches the template; retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.unsafe(`create database ${name}${template ? ` template ${template}` : ''}`);
        break;
      } catch (error) {
        if (attempt >= 20 || (error as { code?: string }).code !== '55006') throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    await admin.end();
  }
  const url = withDatabase(adminUrl, name);
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  return {
    name,
    url,
    sql,
    drop: async () => {
      await sql.end({ timeout: 1 });
      const dropper = postgres(adminUrl, { max: 1, onnotice: () => {} });
      await dropper.unsafe(`drop database if exists ${name} with (force)`);
      await dropper.end();
    },
  };
}

/** A fresh, empty database (no migrations applied). */
export function createDatabase(): Promise<TestDatabase> {
  return create();
}

/** A fresh database cloned from the migrated template, with the app's login role ready. */
export async function createMigratedDatabase(): Promise<TestDatabase & { appUrl: string }> {
  const database = await create(inject('templateDatabase'));
  return { ...database, appUrl: await ensureAppLogin(inject('adminUrl'), database.name) };
}
