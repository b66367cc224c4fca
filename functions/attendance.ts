// Attendance in clock hours: an instructor of the programme (or the office) records a whole class
// session in one request; a line is corrected by a new version that says who, when and why; the
// roll-ups of an enrollment and the list of students below the attendance threshold. Attendance is an
// education record: PHI routes, no-store, audited. Rules and SQL: lib/attendance.ts and
// lib/attendance-sessions.ts; who may call what: docs/access-policy.md, "attendance".
import { z } from 'zod';
import type { Role } from '../lib/access';
import {
  ATTENDANCE_READ_REACH,
  ATTENDANCE_WRITE_REACH,
  attendanceReadScope,
  attendanceWriteScope,
  BELOW_THRESHOLD_ORDER,
  belowThresholdPageQuery,
  enrollmentAttendance,
  LINE_STATUSES,
  SESSION_TYPES,
  toBelowThresholdViews,
} from '../lib/attendance';
import {
  correctLine,
  findSession,
  LINE_ORDER,
  lineHistory,
  linePageQuery,
  recordSession,
  toLineView,
} from '../lib/attendance-sessions';
import { config } from '../lib/config';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { decimalInt, multiLine, singleLine } from '../lib/text';

/** Who records and corrects: the office, and instructors (in the programmes they teach: lib/attendance.ts). */
const ATTENDANCE_RECORDERS: readonly Role[] = [...ATTENDANCE_WRITE_REACH.all, 'instructor'];
/** Who reads sessions and the threshold list: the same, and the registrar. */
const ATTENDANCE_STAFF_READERS: readonly Role[] = [...ATTENDANCE_READ_REACH.all, 'instructor'];
/** Who reads lines and roll-ups: those, and a student (their own). */
const ATTENDANCE_READERS: readonly Role[] = [...ATTENDANCE_STAFF_READERS, 'student'];

/** A class has at most this many students on its list (the school's rooms seat 40). */
const MAX_LINES = 60;
const MAX_SESSION_MINUTES = 24 * 60;

const instant = z.iso.datetime({ offset: true });
const minutes = z.number().int().min(0).max(MAX_SESSION_MINUTES);

const Line = z.strictObject({
  studentId: z.uuid(),
  status: z.enum(LINE_STATUSES),
  /** Present: the whole session unless fewer are given. Late, left early: required. Absent: none. */
  minutesAttended: minutes.optional(),
});

const NewSession = z
  .strictObject({
    moduleId: z.uuid(),
    sessionType: z.enum(SESSION_TYPES),
    sessionRef: singleLine(100).optional(),
    startsAt: instant,
    endsAt: instant,
    lines: z.array(Line).min(1).max(MAX_LINES),
  })
  .superRefine((session, ctx) => {
    const start = Date.parse(session.startsAt);
    const end = Date.parse(session.endsAt);
    if (!(end > start)) ctx.addIssue({ code: 'custom', path: ['endsAt'], message: 'Must be after startsAt' });
    else if (end - start > MAX_SESSION_MINUTES * 60_000) {
      ctx.addIssue({ code: 'custom', path: ['endsAt'], message: 'A session lasts at most 24 hours' });
    }
    if (start > Date.now()) {
      ctx.addIssue({ code: 'custom', path: ['startsAt'], message: 'A session is recorded once it has started' });
    }
    const seen = new Set<string>();
    session.lines.forEach((line, i) => {
      if (seen.has(line.studentId)) {
        ctx.addIssue({ code: 'custom', path: ['lines', i, 'studentId'], message: 'This student is listed twice' });
      }
      seen.add(line.studentId);
    });
  });

endpoint({
  name: 'attendance-sessions-record',
  methods: ['POST'],
  route: 'attendance/sessions',
  access: ATTENDANCE_RECORDERS,
  phi: true,
  maxBodyBytes: 64 * 1024,
  body: NewSession,
  handler: async function attendanceSessionsRecord({ sql, body, caller, audit }) {
    const session = await recordSession(sql, attendanceWriteScope(caller), caller.userId, body);
    audit.resourceIds.sessionId = session.id;
    return created(session, `/api/attendance/sessions/${session.id}`);
  },
});

const SessionParams = z.object({ sessionId: z.uuid() });

endpoint({
  name: 'attendance-sessions-get',
  methods: ['GET'],
  route: 'attendance/sessions/{sessionId}',
  access: ATTENDANCE_STAFF_READERS,
  phi: true,
  params: SessionParams,
  handler: async function attendanceSessionsGet({ sql, params, caller }) {
    const session = await findSession(sql, params.sessionId, attendanceReadScope(caller));
    if (!session) throw notFound('No such session');
    return json(session);
  },
});

const RecordParams = z.object({ recordId: z.uuid() });

const Correction = z.strictObject({
  status: z.enum(LINE_STATUSES),
  minutesAttended: minutes.optional(),
  /** Why the line was wrong: kept with the new version, encrypted (it is about a person). */
  reason: multiLine(500),
});

endpoint({
  name: 'attendance-records-correct',
  methods: ['POST'],
  route: 'attendance/records/{recordId}/corrections',
  access: ATTENDANCE_RECORDERS,
  phi: true,
  params: RecordParams,
  body: Correction,
  handler: async function attendanceRecordsCorrect({ sql, params, body, caller, audit }) {
    const line = await correctLine(sql, attendanceWriteScope(caller), caller.userId, params.recordId, body);
    if (!line) throw notFound('No such attendance line');
    audit.resourceIds.correctionId = line.id;
    return created(line, `/api/attendance/records/${line.id}/history`);
  },
});

endpoint({
  name: 'attendance-records-history',
  methods: ['GET'],
  route: 'attendance/records/{recordId}/history',
  access: ATTENDANCE_READERS,
  phi: true,
  params: RecordParams,
  handler: async function attendanceRecordsHistory({ sql, params, caller }) {
    const versions = await lineHistory(sql, params.recordId, attendanceReadScope(caller));
    if (!versions) throw notFound('No such attendance line');
    return json({ items: versions });
  },
});

const isoDate = z.iso.date();

const LineListQuery = z.object({
  limit: limitSchema,
  cursor: LINE_ORDER.cursor,
  studentId: z.uuid().optional(),
  enrollmentId: z.uuid().optional(),
  moduleId: z.uuid().optional(),
  from: isoDate.optional(),
  to: isoDate.optional(),
});

endpoint({
  name: 'attendance-records-list',
  methods: ['GET'],
  route: 'attendance/records',
  access: ATTENDANCE_READERS,
  phi: true,
  query: LineListQuery,
  handler: async function attendanceRecordsList({ sql, query, caller, request }) {
    // A student's scope is their own lines, whatever studentId they pass.
    const rows = await linePageQuery(sql, query, attendanceReadScope(caller), query.cursor, query.limit);
    const page = pageOf(rows, query.limit, (read) => read.map(toLineView));
    return json(page, 200, nextLink(request.url, page.next));
  },
});

const EnrollmentParams = z.object({ enrollmentId: z.uuid() });

endpoint({
  name: 'attendance-enrollment-rollup',
  methods: ['GET'],
  route: 'enrollments/{enrollmentId}/attendance',
  access: ATTENDANCE_READERS,
  phi: true,
  params: EnrollmentParams,
  handler: async function attendanceEnrollmentRollup({ sql, params, caller }) {
    const rollup = await enrollmentAttendance(sql, params.enrollmentId, attendanceReadScope(caller));
    if (!rollup) throw notFound('No such enrollment');
    return json(rollup);
  },
});

const BelowThresholdQuery = z.object({
  limit: limitSchema,
  cursor: BELOW_THRESHOLD_ORDER.cursor,
  programId: z.uuid().optional(),
  /** Defaults to ATTENDANCE_THRESHOLD_PERCENT. */
  thresholdPercent: decimalInt({ min: 1, max: 100 }).optional(),
});

endpoint({
  name: 'attendance-below-threshold',
  methods: ['GET'],
  route: 'attendance/below-threshold',
  access: ATTENDANCE_STAFF_READERS,
  phi: true,
  query: BelowThresholdQuery,
  handler: async function attendanceBelowThreshold({ sql, query, caller, request }) {
    const percent = query.thresholdPercent ?? config().ATTENDANCE_THRESHOLD_PERCENT;
    const filter = { programId: query.programId, percent };
    const rows = await belowThresholdPageQuery(sql, filter, attendanceReadScope(caller), query.cursor, query.limit);
    const page = pageOf(rows, query.limit, toBelowThresholdViews);
    return json({ thresholdPercent: percent, ...page }, 200, nextLink(request.url, page.next));
  },
});
