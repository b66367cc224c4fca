// Academic records for tests, inserted straight into the database (as an administrator would find
// them): a programme with its modules, and an enrollment.
import type postgres from 'postgres';

export interface TestProgram {
  programId: string;
  /** Module ids in position order. */
  moduleIds: string[];
}

/**
 * A programme whose modules have the given clock hours, at positions 1..n, coded
 * `<modulePrefix>1`..`<modulePrefix>n`; its total clock hours are their sum.
 */
export async function createProgram(
  sql: postgres.Sql,
  options: { code: string; name?: string; hours: readonly number[]; modulePrefix: string },
): Promise<TestProgram> {
  const total = options.hours.reduce((sum, hours) => sum + hours, 0);
  const [row] = await sql<{ id: string }[]>`
    insert into programs (code, name, credential_level, total_clock_hours)
    values (${options.code}, ${options.name ?? `Programme ${options.code}`}, 'certificate', ${total})
    returning id`;
  const programId = (row as { id: string }).id;
  const moduleIds: string[] = [];
  for (const [i, clockHours] of options.hours.entries()) {
    const [module] = await sql<{ id: string }[]>`
      insert into modules (program_id, code, title, delivery_type, clock_hours, position)
      values (${programId}, ${`${options.modulePrefix}${i + 1}`}, ${`Module ${i + 1}`}, 'online', ${clockHours},
              ${i + 1})
      returning id`;
    moduleIds.push((module as { id: string }).id);
  }
  return { programId, moduleIds };
}

/** An enrollment of `userId` in `programId` (active, starting today, unless told otherwise). */
export async function createEnrollment(
  sql: postgres.Sql,
  userId: string,
  programId: string,
  options: { status?: string; startDate?: string } = {},
): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into enrollments (user_id, program_id, start_date, status)
    values (${userId}, ${programId}, coalesce(${options.startDate ?? null}::date, current_date),
            ${options.status ?? 'active'})
    returning id`;
  return (row as { id: string }).id;
}
