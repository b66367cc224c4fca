// The shape of the synthetic school's plan (bench/school.ts decides it; bench/compliance-school.ts
// and the other row builders read it) and what every row builder shares: the seeded PRNG, the rows'
// value types and the walk over every planned enrollment. Apart from bench/school.ts so that a row
// builder of another module needs nothing of it at run time: school.ts lists every builder's loads.
import type { DEMO_STAFF } from '../dev/seed';

// ---------------------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------------------

/** mulberry32: tiny, fast and good enough to shape fake data; one stream per purpose. */
export function prng(seed: number, stream: string) {
  let state = seed >>> 0;
  for (const char of stream) state = Math.imul(state ^ char.charCodeAt(0), 0x9e3779b1) >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  const hex = (bytes: number) => {
    let out = '';
    for (let i = 0; i < bytes; i += 4) out += ((next() * 4294967296) >>> 0).toString(16).padStart(8, '0');
    return out.slice(0, bytes * 2);
  };
  return {
    next,
    int,
    chance: (p: number) => next() < p,
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T,
    /** Picks by weight: `[[value, weight], …]`. */
    weighted: <T>(choices: readonly (readonly [T, number])[]): T => {
      const total = choices.reduce((sum, [, weight]) => sum + weight, 0);
      let r = next() * total;
      for (const [value, weight] of choices) {
        r -= weight;
        if (r < 0) return value;
      }
      return (choices[choices.length - 1] as readonly [T, number])[0];
    },
    hex,
    /** A version-4-shaped uuid from the stream. */
    uuid: () => {
      const h = hex(16);
      const variant = ((Number.parseInt(h[16] as string, 16) & 0x3) | 0x8).toString(16);
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
    },
  };
}
export type Random = ReturnType<typeof prng>;

export type Delivery = 'online' | 'hybrid' | 'in_person';
export interface ProgramSpec {
  code: string;
  name: string;
  weeks: number;
  tuitionCents: number;
  /** Share of first enrollments. */
  weight: number;
  modules: readonly (readonly [code: string, title: string, delivery: Delivery, hours: number, inPerson: boolean])[];
}

export type StaffRole = (typeof DEMO_STAFF)[number][0];

export type EnrollmentStatus = 'pending' | 'active' | 'on_hold' | 'completed' | 'withdrawn' | 'cancelled';

export interface PlannedEnrollment {
  id: string;
  program: number;
  status: EnrollmentStatus;
  start: Date;
  /** Modules with a progress row (the first ones of the programme, in order). */
  modulesTouched: number;
  payments: number;
}

export interface PlannedStudent {
  n: number;
  id: string;
  first: string;
  last: string;
  status: 'active' | 'inactive' | 'pending';
  createdAt: Date;
  enrollments: PlannedEnrollment[];
  attendance: number;
}

export interface Plan {
  now: Date;
  staff: Record<StaffRole, { id: string; first: string; last: string }>;
  programs: { id: string; spec: ProgramSpec; moduleIds: string[] }[];
  students: PlannedStudent[];
  auditRows: number;
}

export const DAY_MS = 86_400_000;
export const startOfUtcDay = (date: Date) => new Date(Math.floor(date.getTime() / DAY_MS) * DAY_MS);

/** A value for a json/jsonb column (arrays in rows are PostgreSQL arrays otherwise). */
export class Json {
  constructor(readonly value: unknown) {}
}
export type CopyValue = string | number | boolean | null | Date | Buffer | readonly (string | Buffer)[] | Json;
export type Row = CopyValue[];
export interface TableLoad {
  table: string;
  /** The COPY column list, in row order. */
  columns: string;
  count: number;
  rows: () => Iterable<Row>;
}

/** Every planned enrollment with its student. */
export function* enrollmentsOf(plan: Plan) {
  for (const student of plan.students) for (const enrollment of student.enrollments) yield { student, enrollment };
}
