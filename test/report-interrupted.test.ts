// A CSV export is answered 200 before its last row is read, so a database failure in the middle cannot
// change the status any more. What the registrar's tool must not get is a file that looks complete: the
// host cuts the connection, the chunked body never ends cleanly, and the download fails. The export's
// connection is killed while the client holds the stream paused (backpressure keeps most rows unread).
import { expect, test } from 'vitest';
import { APPLICATION_NAME } from '../lib/db';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createEnrollment, createProgram, insertStudents, people, recordDailyAttendance } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';

const app = useTestApp();

const STUDENTS = 200;
const SESSIONS = 500;

/** Reads the body to its end; resolves with the byte count, rejects when the transfer breaks. */
async function readToEnd(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<number> {
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return bytes;
    bytes += value.byteLength;
  }
}

test('a database failure mid-export breaks the download instead of ending it as if complete', async () => {
  const sql = app.db.sql;
  const { registrar, instructor } = await createRoleAccounts(sql);
  const { programId, moduleIds } = await createProgram(sql, { hours: [100] });
  const ids = await insertStudents(sql, people('Cut', STUDENTS));
  const enrollments = await Promise.all(ids.map((id) => createEnrollment(sql, id, programId)));
  await recordDailyAttendance(sql, {
    moduleId: moduleIds[0] as string,
    recordedBy: instructor.id,
    sessions: SESSIONS,
    userIds: ids,
    enrollmentIds: enrollments,
  });
  const path = `/reports/compliance/attendance?programId=${programId}`;

  const response = await send('GET', path, { as: registrar });
  expect(response.status).toBe(200);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const first = await reader.read();
  expect(first.done).toBe(false);

  // The API's connections, the export's reserved one among them, die as in a failover.
  const [killed] = await sql<{ n: number }[]>`
    select count(*)::int as n from (
      select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${APPLICATION_NAME}) t`;
  expect(killed?.n).toBeGreaterThan(0);
  await expect(readToEnd(reader)).rejects.toThrow();

  // The API serves the same export whole on a retry (a client told 503 + Retry-After waits and asks again).
  let retry = await send('GET', path, { as: registrar });
  for (let attempt = 0; retry.status === 503 && attempt < 20; attempt++) {
    await retry.body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, 500));
    retry = await send('GET', path, { as: registrar });
  }
  expect(retry.status).toBe(200);
  const lines = (await retry.text()).trimEnd().split('\n');
  expect(lines).toHaveLength(STUDENTS * SESSIONS + 1);
}, 180_000);
