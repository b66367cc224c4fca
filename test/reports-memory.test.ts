// The attendance CSV of 100,000 rows streams in flat memory: the app runs in this process, so its live
// heap (after a full collection, to leave garbage out of the figure) is sampled every megabyte while the
// body is read chunk by chunk and dropped. Buffering the export (row objects with their decrypted
// names, then ~19 MB of text) would hold far more than HEAP_BOUND_MB; streaming holds a batch or two.
// Figures are printed; the bound is generous, as the issue asks of such a test.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createEnrollment, createProgram, insertStudents, people, recordDailyAttendance } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';

const app = useTestApp();

const STUDENTS = 200;
const SESSIONS = 500;
const ROWS = STUDENTS * SESSIONS;
const HEAP_BOUND_MB = 32;

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;
const liveHeap = () => {
  collect();
  return process.memoryUsage().heapUsed;
};

test(`an attendance export of ${ROWS.toLocaleString('en')} rows keeps the heap within ${HEAP_BOUND_MB} MB`, async () => {
  const sql = app.db.sql;
  const { registrar, instructor } = await createRoleAccounts(sql);
  const { programId, moduleIds } = await createProgram(sql, { hours: [100] });
  const moduleId = moduleIds[0] as string;
  const ids = await insertStudents(sql, people('Stream', STUDENTS));
  const enrollments = await Promise.all(ids.map((id) => createEnrollment(sql, id, programId)));
  await recordDailyAttendance(sql, {
    moduleId,
    recordedBy: instructor.id,
    sessions: SESSIONS,
    userIds: ids,
    enrollmentIds: enrollments,
  });

  const baseline = liveHeap();
  let peak = baseline;
  let sampledAt = 0;
  const started = performance.now();
  const response = await send('GET', `/reports/compliance/attendance?programId=${programId}`, { as: registrar });
  expect(response.status).toBe(200);
  let bytes = 0;
  let lines = 0;
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    for (const byte of value) if (byte === 0x0a) lines++;
    if (bytes - sampledAt > 1024 * 1024) {
      sampledAt = bytes;
      peak = Math.max(peak, liveHeap());
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const grewMb = (peak - baseline) / 1024 / 1024;
  console.log(
    `attendance export: ${ROWS.toLocaleString('en')} rows, ${(bytes / 1024 / 1024).toFixed(1)} MB in ${seconds.toFixed(1)} s ` +
      `(${Math.round(ROWS / seconds).toLocaleString('en')} rows/s); live heap peak ${grewMb.toFixed(1)} MB over the start`,
  );
  expect(lines).toBe(ROWS + 1);
  expect(grewMb).toBeLessThan(HEAP_BOUND_MB);
}, 300_000);
