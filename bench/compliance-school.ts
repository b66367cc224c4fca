// The compliance records of the synthetic school (bench/school.ts): a class session per module per week
// (every module of a programme meets weekly while it runs), and an attendance line for every student
// enrolled that week (85% present, some late, some leaving early, 7% absent). An enrollment attends
// from its start for the programme's length (a withdrawn one for its first 40%), never after today;
// pending and cancelled ones never. Deterministic like the rest: same seed, same sessions and lines.
// The check-offs, externships and complaints follow (bench/compliance-records-school.ts).
import { complianceRecordLoads } from './compliance-records-school';
import { DAY_MS, enrollmentsOf, type Plan, type PlannedEnrollment, prng, type TableLoad } from './school-plan';

const WEEK_MS = 7 * DAY_MS;
const SESSION_MINUTES = 90;
/** Weeks since the Unix epoch began on a Thursday: +4 days is a Monday; sessions start at 13:00 UTC. */
const sessionStart = (week: number, module: number) =>
  new Date(week * WEEK_MS + 4 * DAY_MS + 13 * 3_600_000 + module * 2 * 3_600_000);
const weekOf = (date: Date) => Math.floor((date.getTime() - 4 * DAY_MS) / WEEK_MS);

/** The weeks an enrollment attends: [first, last], or null. */
function attendedWeeks(plan: Plan, e: PlannedEnrollment): [number, number] | null {
  if (e.status === 'pending' || e.status === 'cancelled') return null;
  const spec = (plan.programs[e.program] as Plan['programs'][number]).spec;
  const length = e.status === 'withdrawn' ? Math.ceil(spec.weeks * 0.4) : spec.weeks;
  // The first whole week after the start; the last week whose sessions all lie before now.
  const first = weekOf(e.start) + 1;
  const last = Math.min(first + length - 1, weekOf(plan.now) - 1);
  return last >= first ? [first, last] : null;
}

const SESSION_TYPE = { in_person: 'lab', hybrid: 'live', online: 'online' } as const;

export function complianceLoads(plan: Plan, seed: number): TableLoad[] {
  const random = prng(seed, 'attendance_sessions');
  // Every session any enrollment attends, by programme, module and week (a few thousand).
  const sessions = new Map<string, string>();
  const key = (program: number, module: number, week: number) => `${program}:${module}:${week}`;
  const order: { program: number; module: number; week: number }[] = [];
  let lines = 0;
  for (const { enrollment: e } of enrollmentsOf(plan)) {
    const weeks = attendedWeeks(plan, e);
    if (!weeks) continue;
    const modules = (plan.programs[e.program] as Plan['programs'][number]).moduleIds.length;
    lines += (weeks[1] - weeks[0] + 1) * modules;
    for (let week = weeks[0]; week <= weeks[1]; week++) {
      for (let module = 0; module < modules; module++) {
        if (sessions.has(key(e.program, module, week))) continue;
        sessions.set(key(e.program, module, week), random.uuid());
        order.push({ program: e.program, module, week });
      }
    }
  }
  const instructor = plan.staff.instructor.id;
  const sessionsLoad: TableLoad = {
    table: 'attendance_sessions',
    columns: 'id, module_id, session_type, starts_at, ends_at, recorded_by, recorded_at',
    count: order.length,
    *rows() {
      for (const { program, module, week } of order) {
        const planned = plan.programs[program] as Plan['programs'][number];
        const delivery = (planned.spec.modules[module] as readonly unknown[])[2] as keyof typeof SESSION_TYPE;
        const start = sessionStart(week, module);
        const end = new Date(start.getTime() + SESSION_MINUTES * 60_000);
        yield [
          sessions.get(key(program, module, week)) as string,
          planned.moduleIds[module] as string,
          SESSION_TYPE[delivery],
          start,
          end,
          instructor,
          end,
        ];
      }
    },
  };
  const linesRandom = prng(seed, 'attendance_records');
  const linesLoad: TableLoad = {
    table: 'attendance_records',
    columns:
      'id, session_id, module_id, started_at, ended_at, user_id, enrollment_id, status, minutes_attended, ' +
      'recorded_by, recorded_at',
    count: lines,
    *rows() {
      for (const { student, enrollment: e } of enrollmentsOf(plan)) {
        const weeks = attendedWeeks(plan, e);
        if (!weeks) continue;
        const planned = plan.programs[e.program] as Plan['programs'][number];
        for (let week = weeks[0]; week <= weeks[1]; week++) {
          for (let module = 0; module < planned.moduleIds.length; module++) {
            const start = sessionStart(week, module);
            const end = new Date(start.getTime() + SESSION_MINUTES * 60_000);
            const status = linesRandom.weighted([
              ['present', 85],
              ['late', 5],
              ['left_early', 3],
              ['absent', 7],
            ] as const);
            const minutes =
              status === 'present'
                ? SESSION_MINUTES
                : status === 'absent'
                  ? 0
                  : linesRandom.int(10, SESSION_MINUTES - 5);
            yield [
              linesRandom.uuid(),
              sessions.get(key(e.program, module, week)) as string,
              planned.moduleIds[module] as string,
              start,
              end,
              student.id,
              e.id,
              status,
              minutes,
              instructor,
              end,
            ];
          }
        }
      }
    },
  };
  return [sessionsLoad, linesLoad, ...complianceRecordLoads(plan, seed)];
}
