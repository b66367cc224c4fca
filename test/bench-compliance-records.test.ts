// The bench school's compliance records (bench/compliance-records-school.ts) written by the generator
// through every constraint of the schema, at the ratios it promises, and read back through the API
// (the personal values decrypt: they went through lib/crypto as the app's own do). A fixed seed and day,
// so the school is the same on every run.
import { describe, expect, test } from 'vitest';
import { generate } from '../bench/generate';
import { BENCH_PASSWORD, staffEmail } from '../bench/school';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';

const app = useTestApp();

const STUDENTS = 600;
const NOW = new Date('2026-11-30T00:00:00Z');

describe('the bench compliance records', () => {
  test('are written as promised and read back through the API', async () => {
    const sql = app.db.sql;
    const result = await generate(sql, { students: STUDENTS, auditPerStudent: 0, seed: 5, now: NOW });
    for (const table of [
      'skills_checkoffs',
      'externships',
      'externship_hours',
      'complaints',
      'complaint_transitions',
    ]) {
      expect(result.rows[table], table).toBeGreaterThan(0);
      const [row] = await sql<{ n: number }[]>`select count(*)::int as n from ${sql(table)}`;
      expect(row?.n, table).toBe(result.rows[table]);
    }
    // About one complaint per 50 students, in more than two states; each state's transitions lead to it.
    const complaints = result.rows.complaints as number;
    expect(complaints).toBeGreaterThan(STUDENTS / 100);
    expect(complaints).toBeLessThan(STUDENTS / 25);
    const flows = await sql<{ status: string; last: string; steps: number }[]>`
      select c.status, (select t.to_status from complaint_transitions t where t.complaint_id = c.id
                         order by t.changed_at desc limit 1) as last,
             (select count(*)::int from complaint_transitions t where t.complaint_id = c.id) as steps
        from complaints c`;
    expect(flows.every((flow) => flow.status === flow.last)).toBe(true);
    expect(new Set(flows.map((flow) => flow.status)).size).toBeGreaterThan(2);
    // One externship per finishing enrollment at most; verified ones have every day approved.
    const [placements] = await sql<{ doubled: number; unapproved_verified: number }[]>`
      select (select count(*)::int from (select enrollment_id from externships group by 1 having count(*) > 1) d) as doubled,
             (select count(*)::int from externships x where x.verified_at is not null and exists
                (select 1 from externship_hours h where h.externship_id = x.id and h.approval is null)) as unapproved_verified`;
    expect(placements).toEqual({ doubled: 0, unapproved_verified: 0 });
    // Every decision decides an attempt of the same student, module and skill.
    const [decisions] = await sql<{ mismatched: number }[]>`
      select count(*)::int as mismatched from skills_checkoffs d join skills_checkoffs o on o.id = d.decides_id
       where (o.user_id, o.module_id, o.skill_code, o.attempt) <> (d.user_id, d.module_id, d.skill_code, d.attempt)`;
    expect(decisions?.mismatched).toBe(0);

    const login = await send('POST', '/auth/login', {
      body: { email: staffEmail('admin'), password: BENCH_PASSWORD, client: 'tool' },
    });
    const { accessToken } = (await login.json()) as { accessToken: string };
    const read = async (path: string) => {
      const response = await app.api(path, { headers: { Authorization: `Bearer ${accessToken}` } });
      expect(response.status, path).toBe(200);
      return response.json() as Promise<{ items: Record<string, unknown>[] }>;
    };
    const checkoffs = await read('/skills/checkoffs?limit=50');
    expect(JSON.stringify(checkoffs.items)).toContain('Irene Instructor');
    const externships = await read('/externships?limit=20');
    expect(externships.items.length).toBeGreaterThan(0);
    expect(JSON.stringify(externships.items)).toMatch(/Dr\. /);
    const filed = await read('/complaints?limit=50');
    expect(filed.items.length).toBeGreaterThan(0);
    const [one] = filed.items as { id: string }[];
    expect((await read(`/complaints/${one?.id}`)) as unknown).toMatchObject({ id: one?.id });
  }, 180_000);
});
