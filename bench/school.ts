// The synthetic school the benchmark runs on: programmes shaped like dev/seed.ts, one account per
// staff role, N students with 1–2 enrollments, their module progress, attendance and other compliance
// records (bench/compliance-school.ts), ledger lines and
// audit trail. Every choice comes from a seeded PRNG (ids included) and dates count back from a fixed
// day, so a seed always yields the same school; only ciphertexts differ (AES-GCM draws a nonce).
// The plan is decided up front, so every table knows its row count before it is written; the rows
// are produced lazily, table by table, as bench/generate.ts streams them into COPY.
//
// When a later issue adds a resource, its rows belong here: a new TableLoad, listed in tableLoads().
import { DEMO_PROGRAMS, DEMO_STAFF } from '../dev/seed';
import { emailBlindIndex, encrypt, nameSearchTokens } from '../lib/crypto';
import { complianceLoads } from './compliance-school';
import {
  DAY_MS,
  type EnrollmentStatus,
  enrollmentsOf,
  Json,
  type Plan,
  type PlannedEnrollment,
  type PlannedStudent,
  type ProgramSpec,
  prng,
  type Random,
  type TableLoad,
} from './school-plan';

export const BENCH_DOMAIN = 'bench.aada.test';
export const BENCH_PASSWORD = 'Bench-Password-2026';
export const studentEmail = (n: number) => `student${n}@${BENCH_DOMAIN}`;
export const staffEmail = (role: string) => `${role}@${BENCH_DOMAIN}`;

export interface PlanOptions {
  students: number;
  auditPerStudent: number;
  seed: number;
  now: Date;
}

// ---------------------------------------------------------------------------------------------------
// The school: programmes shaped like dev/seed.ts (two of its programmes plus two short courses)
// ---------------------------------------------------------------------------------------------------
/** A programme of dev/seed.ts, with the benchmark's enrollment economics added. */
function fromDemo(code: string, extra: Pick<ProgramSpec, 'weeks' | 'tuitionCents' | 'weight'>): ProgramSpec {
  const program = DEMO_PROGRAMS.find((candidate) => candidate.code === code);
  if (!program) throw new Error(`dev/seed.ts has no programme ${code}`);
  return { code: program.code, name: program.name, modules: program.modules, ...extra };
}

const PROGRAMS: readonly ProgramSpec[] = [
  fromDemo('DA-20W', { weeks: 20, tuitionCents: 1_450_000, weight: 6 }),
  fromDemo('EFDA', { weeks: 10, tuitionCents: 395_000, weight: 2 }),
  {
    code: 'RAD-CERT',
    name: 'Dental Radiology Certification',
    weeks: 4,
    tuitionCents: 75_000,
    weight: 1,
    modules: [
      ['RD301', 'Radiation safety', 'online', 8, false],
      ['RD302', 'Exposure technique lab', 'in_person', 16, true],
    ],
  },
  {
    code: 'ICE-REF',
    name: 'Infection Control Refresher',
    weeks: 2,
    tuitionCents: 25_000,
    weight: 1,
    modules: [
      ['IC401', 'Standard precautions update', 'online', 6, false],
      ['IC402', 'Sterilization practicum', 'hybrid', 6, true],
    ],
  },
];

const STAFF_ROLES = DEMO_STAFF;

// Unicode on purpose: the name search normalizes accents, and real rosters have them.
const FIRST_NAMES = (
  'Ana Ben Chloé Darius Elena Femi Grace Hiro Inès Jamal Keisha Luis María Nadia Oluwaseun Priya ' +
  'Quinn Rosa Siobhán Tomás Uma Valentina Wei Ximena Yusuf Zoë Aaliyah Brandon Camila Destiny Emily ' +
  'Fatima Gabriel Hannah Isabella Jasmine Kayla Lauren Madison Nicole'
).split(' ');
const LAST_NAMES = (
  'Alvarez Brooks Chen Diallo Evans Fischer García Hughes Ito Johnson Kowalski López Müller Nguyễn ' +
  'Okafor Patel Quiñones Robinson Smith Thompson Usman Vargas Williams Xu Yamamoto Zhang Anderson ' +
  "Baker Carter Davis Edwards Flores Green Harris Jackson King Lee Martin Nelson O'Brien"
).split(' ');
/** A prefix the bench searches by: the first three letters of one generated last name. */
export const BENCH_NAME_PREFIX = 'gar';

// ---------------------------------------------------------------------------------------------------
// The plan: who exists and what they did, decided up front so every table knows its row count
// ---------------------------------------------------------------------------------------------------

const OPEN_STATUSES: readonly EnrollmentStatus[] = ['pending', 'active', 'on_hold'];

const TWO_YEARS_MS = 730 * DAY_MS;
const isoDate = (date: Date) => date.toISOString().slice(0, 10);

function planEnrollment(random: Random, program: number, start: Date, now: Date, open: boolean): PlannedEnrollment {
  const spec = PROGRAMS[program] as ProgramSpec;
  const ended = start.getTime() + spec.weeks * 7 * DAY_MS < now.getTime();
  const status: EnrollmentStatus = !open
    ? random.weighted([
        ['completed', 70],
        ['withdrawn', 20],
        ['cancelled', 10],
      ])
    : ended
      ? random.weighted([
          ['completed', 80],
          ['withdrawn', 12],
          ['active', 8],
        ])
      : random.weighted([
          ['active', 80],
          ['on_hold', 8],
          ['pending', 12],
        ]);
  const modules = spec.modules.length;
  const modulesTouched =
    status === 'completed'
      ? modules
      : status === 'pending' || status === 'cancelled'
        ? 0
        : random.int(status === 'active' && ended ? modules - 1 : 0, modules);
  return {
    id: random.uuid(),
    program,
    status,
    start,
    modulesTouched,
    payments: status === 'pending' || status === 'cancelled' ? 0 : random.int(1, 6),
  };
}

export function makePlan(options: PlanOptions): Plan {
  const random = prng(options.seed, 'plan');
  const now = options.now;
  const staff = Object.fromEntries(
    STAFF_ROLES.map(([role, first, last]) => [role, { id: random.uuid(), first, last }]),
  ) as Plan['staff'];
  const programs = PROGRAMS.map((spec) => ({
    id: random.uuid(),
    spec,
    moduleIds: spec.modules.map(() => random.uuid()),
  }));
  const programWeights = PROGRAMS.map((spec, index) => [index, spec.weight] as const);
  const students: PlannedStudent[] = [];
  for (let n = 1; n <= options.students; n++) {
    // Accounts were created over the last two years, roughly in the order of their number.
    const createdAt = new Date(now.getTime() - TWO_YEARS_MS + ((n - random.next()) / options.students) * TWO_YEARS_MS);
    const firstProgram = random.weighted(programWeights);
    // Enrolled a few days to weeks after the account was made (and never in the future).
    const start = new Date(
      Math.max(createdAt.getTime(), Math.min(now.getTime() - DAY_MS, createdAt.getTime() + random.int(3, 40) * DAY_MS)),
    );
    const twice = random.chance(0.3);
    const enrollments = [planEnrollment(random, firstProgram, start, now, !twice)];
    if (twice) {
      // A second, later enrollment in another programme (the first one is closed).
      const program = (firstProgram + random.int(1, PROGRAMS.length - 1)) % PROGRAMS.length;
      const later = new Date(Math.min(now.getTime() - DAY_MS, start.getTime() + random.int(60, 300) * DAY_MS));
      enrollments.push(planEnrollment(random, program, later, now, true));
    }
    students.push({
      n,
      id: random.uuid(),
      first: random.pick(FIRST_NAMES),
      last: random.pick(LAST_NAMES),
      status: random.weighted([
        ['active', 95],
        ['inactive', 4],
        ['pending', 1],
      ]),
      createdAt,
      enrollments,
      attendance: enrollments.length === 0 ? 0 : random.int(0, 5),
    });
  }
  return { now, staff, programs, students, auditRows: options.students * options.auditPerStudent };
}

// ---------------------------------------------------------------------------------------------------
// Rows, table by table (generators: each chunk is built while the previous one is being copied)
// ---------------------------------------------------------------------------------------------------

function usersLoad(plan: Plan, passwordHash: string): TableLoad {
  const admin = plan.staff.admin.id;
  const staffSince = new Date(plan.now.getTime() - 3 * 365 * DAY_MS);
  const person = (email: string, first: string, last: string) => [
    encrypt(email, 'users.email'),
    emailBlindIndex(email),
    encrypt(first, 'users.first_name'),
    encrypt(last, 'users.last_name'),
    nameSearchTokens(first, last),
    passwordHash,
  ];
  return {
    table: 'users',
    columns:
      'id, email_ciphertext, email_blind_index, first_name_ciphertext, last_name_ciphertext, ' +
      'name_search_tokens, password_hash, status, created_at, updated_at, deactivated_at, ' +
      'deactivated_by',
    count: STAFF_ROLES.length + plan.students.length,
    *rows() {
      for (const [role] of STAFF_ROLES) {
        const { id, first, last } = plan.staff[role];
        yield [id, ...person(staffEmail(role), first, last), 'active', staffSince, staffSince, null, null];
      }
      for (const s of plan.students) {
        const deactivated =
          s.status === 'inactive' ? new Date(Math.min(plan.now.getTime(), s.createdAt.getTime() + 200 * DAY_MS)) : null;
        yield [
          s.id,
          ...person(studentEmail(s.n), s.first, s.last),
          s.status,
          s.createdAt,
          deactivated ?? s.createdAt,
          deactivated,
          deactivated ? admin : null,
        ];
      }
    },
  };
}

function userRolesLoad(plan: Plan): TableLoad {
  const admin = plan.staff.admin.id;
  return {
    table: 'user_roles',
    columns: 'user_id, role_name, granted_at, granted_by',
    count: STAFF_ROLES.length + plan.students.length,
    *rows() {
      for (const [role] of STAFF_ROLES) yield [plan.staff[role].id, role, plan.now, null];
      for (const s of plan.students) yield [s.id, 'student', s.createdAt, admin];
    },
  };
}

function programsLoads(plan: Plan): TableLoad[] {
  const since = new Date(plan.now.getTime() - 3 * 365 * DAY_MS);
  return [
    {
      table: 'programs',
      columns: 'id, code, name, credential_level, total_clock_hours, description, created_at',
      count: plan.programs.length,
      *rows() {
        for (const { id, spec } of plan.programs) {
          const hours = spec.modules.reduce((sum, module) => sum + module[3], 0);
          yield [id, spec.code, spec.name, 'certificate', hours, `${spec.name}: ${spec.weeks} weeks.`, since];
        }
      },
    },
    {
      table: 'modules',
      columns: 'id, program_id, code, title, delivery_type, clock_hours, requires_in_person, position',
      count: plan.programs.reduce((sum, program) => sum + program.moduleIds.length, 0),
      *rows() {
        for (const { id, spec, moduleIds } of plan.programs) {
          for (const [index, [code, title, delivery, hours, inPerson]] of spec.modules.entries()) {
            yield [moduleIds[index] as string, id, code, title, delivery, hours, inPerson, index + 1];
          }
        }
      },
    },
    {
      table: 'instructor_assignments',
      columns: 'instructor_id, program_id, assigned_by',
      count: plan.programs.length,
      *rows() {
        for (const { id } of plan.programs) yield [plan.staff.instructor.id, id, plan.staff.admin.id];
      },
    },
  ];
}

const countEnrollments = (plan: Plan, per: (e: PlannedEnrollment) => number) =>
  plan.students.reduce((sum, s) => sum + s.enrollments.reduce((inner, e) => inner + per(e), 0), 0);

function enrollmentsLoad(plan: Plan): TableLoad {
  const registrar = plan.staff.registrar.id;
  return {
    table: 'enrollments',
    columns:
      'id, user_id, program_id, start_date, expected_end_date, status, status_changed_at, ' +
      'status_changed_by, created_at, updated_at',
    count: countEnrollments(plan, () => 1),
    *rows() {
      for (const { student, enrollment: e } of enrollmentsOf(plan)) {
        const program = plan.programs[e.program] as Plan['programs'][number];
        const end = new Date(e.start.getTime() + program.spec.weeks * 7 * DAY_MS);
        const created = new Date(e.start.getTime() - 14 * DAY_MS);
        const changed = new Date(
          Math.min(plan.now.getTime(), OPEN_STATUSES.includes(e.status) ? e.start.getTime() : end.getTime()),
        );
        yield [
          e.id,
          student.id,
          program.id,
          isoDate(e.start),
          isoDate(end),
          e.status,
          changed,
          registrar,
          created,
          changed,
        ];
      }
    },
  };
}

function progressLoad(plan: Plan, seed: number): TableLoad {
  const random = prng(seed, 'module_progress');
  return {
    table: 'module_progress',
    columns:
      'id, enrollment_id, module_id, status, score, progress_pct, last_scroll_position, ' +
      'active_time_seconds, sections_viewed, last_accessed_at, created_at, updated_at',
    count: countEnrollments(plan, (e) => e.modulesTouched),
    *rows() {
      for (const { enrollment: e } of enrollmentsOf(plan)) {
        const program = plan.programs[e.program] as Plan['programs'][number];
        for (let m = 0; m < e.modulesTouched; m++) {
          const last = m === e.modulesTouched - 1 && e.status !== 'completed';
          const status = last
            ? random.weighted([
                ['incomplete', 85],
                ['failed', 5],
                ['not_started', 10],
              ] as const)
            : 'passed';
          const pct = status === 'passed' ? 100 : status === 'not_started' ? 0 : random.int(5, 95);
          const accessed = new Date(Math.min(plan.now.getTime(), e.start.getTime() + (m + 1) * 9 * DAY_MS));
          const sections = Array.from({ length: Math.ceil(pct / 20) }, (_, i) => `section-${i + 1}`);
          yield [
            random.uuid(),
            e.id,
            program.moduleIds[m] as string,
            status,
            status === 'passed' ? random.int(70, 100) : status === 'failed' ? random.int(30, 69) : null,
            pct,
            random.int(0, 20_000),
            random.int(600, 40_000),
            new Json(sections),
            accessed,
            new Date(e.start.getTime() + m * 9 * DAY_MS),
            accessed,
          ];
        }
      }
    },
  };
}

/** The registration fee charged with each enrollment's tuition. */
const REGISTRATION_FEE_CENTS = 15_000;
const PAYMENT_METHODS = [
  ['card', 40],
  ['bank', 20],
  ['financial_aid', 20],
  ['check', 10],
  ['cash', 5],
  ['sponsor', 5],
] as const;

function ledgerLoad(plan: Plan, seed: number): TableLoad {
  const random = prng(seed, 'ledger_entries');
  return {
    table: 'ledger_entries',
    columns:
      'id, user_id, program_id, enrollment_id, kind, category, direction, amount_cents, reference, receipt_number, posted_at, posted_by',
    // A tuition and a fee charge per enrollment that was billed, then its payments.
    count: countEnrollments(plan, (e) => (e.payments > 0 ? 2 + e.payments : 0)),
    *rows() {
      const finance = plan.staff.finance.id;
      let receipt = 0;
      for (const { student, enrollment: e } of enrollmentsOf(plan)) {
        if (e.payments === 0) continue;
        const program = plan.programs[e.program] as Plan['programs'][number];
        const billed = new Date(e.start.getTime() - 7 * DAY_MS);
        const charge = (category: string, cents: number) => [
          random.uuid(),
          student.id,
          program.id,
          e.id,
          'charge',
          category,
          'debit',
          cents,
          null,
          null,
          billed,
          finance,
        ];
        yield charge('tuition', program.spec.tuitionCents);
        yield charge('fee', REGISTRATION_FEE_CENTS);
        const owed = program.spec.tuitionCents + REGISTRATION_FEE_CENTS;
        const share = Math.max(1, Math.floor(owed / (e.payments + random.int(0, 2))));
        for (let k = 0; k < e.payments; k++) {
          const paid = new Date(Math.min(plan.now.getTime(), billed.getTime() + (k + 1) * random.int(10, 40) * DAY_MS));
          const method = random.weighted(PAYMENT_METHODS);
          const reference = method === 'cash' ? null : `${method === 'check' ? 'CHK' : 'PRC'}-${random.hex(4)}`;
          receipt += 1;
          yield [
            random.uuid(),
            student.id,
            program.id,
            e.id,
            'payment',
            method,
            'credit',
            share,
            reference,
            receipt,
            paid,
            finance,
          ];
        }
      }
    },
  };
}

// Requests as the wrapper records them: route templates, who called, outcome, PHI or not.
const AUDITED_ROUTES = [
  // [method, route, who, phi, weight]
  ['GET', 'students', 'staff', true, 14],
  ['GET', 'students/{id}', 'either', true, 16],
  ['PATCH', 'students/{id}', 'staff', true, 3],
  ['GET', 'enrollments', 'either', true, 12],
  ['POST', 'enrollments', 'staff', true, 2],
  ['GET', 'enrollments/{id}/progress', 'either', true, 10],
  ['PUT', 'enrollments/{id}/progress/{moduleId}', 'student', true, 9],
  ['GET', 'auth/me', 'either', true, 14],
  ['POST', 'auth/login', 'student', false, 10],
  ['POST', 'auth/refresh', 'student', false, 6],
  ['GET', 'audit/logs', 'admin', false, 2],
  ['GET', 'students/{id}/ledger', 'finance', true, 2],
] as const;
const STATUSES = [
  [200, 820],
  [201, 30],
  [204, 20],
  [400, 30],
  [401, 30],
  [403, 20],
  [404, 30],
  [409, 10],
  [429, 6],
  [500, 2],
  [503, 2],
] as const;
const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
  'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
  'aada-portal/2.4 (+https://portal.aada.example)',
];
const AUDIT_STAFF_ROLES = ['admin', 'staff', 'registrar', 'instructor'] as const;

function auditLoad(plan: Plan, seed: number): TableLoad {
  const random = prng(seed, 'audit_log');
  const routeWeights = AUDITED_ROUTES.map((route) => [route, route[4]] as const);
  return {
    table: 'audit_log',
    columns:
      'occurred_at, request_id, user_id, roles, method, route, resource_ids, status, duration_ms, ' +
      'client_ip, user_agent, phi, event',
    count: plan.auditRows,
    *rows() {
      if (plan.students.length === 0) return;
      // In time order, as a live system appends them: ids and timestamps rise together.
      const start = plan.now.getTime() - TWO_YEARS_MS;
      const step = TWO_YEARS_MS / plan.auditRows;
      for (let k = 0; k < plan.auditRows; k++) {
        const [method, route, who, phi] = random.weighted(routeWeights);
        const student = random.pick(plan.students);
        const asStaff =
          who === 'staff' || who === 'admin' || who === 'finance' || (who === 'either' && random.chance(0.5));
        const role =
          who === 'admin'
            ? 'admin'
            : who === 'finance'
              ? 'finance'
              : asStaff
                ? random.pick(AUDIT_STAFF_ROLES)
                : 'student';
        const status = random.weighted(STATUSES);
        const anonymous = status === 401;
        const userId = role === 'student' ? student.id : plan.staff[role].id;
        const resourceIds = route.includes('{id}')
          ? route.includes('{moduleId}')
            ? { id: student.enrollments[0]?.id ?? student.id, moduleId: plan.programs[0]?.moduleIds[0] }
            : { id: route.startsWith('students') ? student.id : (student.enrollments[0]?.id ?? student.id) }
          : null;
        yield [
          new Date(start + (k + random.next()) * step),
          random.uuid(),
          anonymous && route !== 'auth/login' ? null : userId,
          anonymous || route === 'auth/login' ? [] : [role],
          method,
          route,
          resourceIds && new Json(resourceIds),
          status,
          Math.round(4 + 120 * random.next() ** 3),
          role === 'student'
            ? `10.${random.int(16, 31)}.${random.int(0, 255)}.${random.int(1, 254)}`
            : `10.0.0.${random.int(1, 40)}`,
          random.pick(USER_AGENTS),
          phi,
          route === 'auth/login' && status === 401 ? 'login_failed' : null,
        ];
      }
    },
  };
}

/** Every table of the school, in foreign-key order, and the audit trail (which references nothing). */
export function tableLoads(
  plan: Plan,
  passwordHash: string,
  seed: number,
): { relational: TableLoad[]; audit: TableLoad } {
  return {
    relational: [
      usersLoad(plan, passwordHash),
      userRolesLoad(plan),
      ...programsLoads(plan),
      enrollmentsLoad(plan),
      progressLoad(plan, seed),
      ...complianceLoads(plan, seed),
      ledgerLoad(plan, seed),
    ],
    audit: auditLoad(plan, seed),
  };
}
