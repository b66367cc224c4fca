// The synthetic school's other compliance records (bench/compliance-school.ts writes attendance):
//   - skills check-offs: two skills per in-person module an enrollment reached, each an opening attempt
//     and its decision (85 % approved at the first attempt, the rest rejected and approved at a second),
//     the evaluator the bench instructor with a licence; the module an open enrollment is in now is
//     still pending at times. As lib/skills.ts writes them: a decision is a row pointing at its attempt.
//   - externships: one per finishing student (a completed enrollment of a programme of 10 weeks or more,
//     or an open one past 80 % of its length), placed for its last four weeks, with an hours log of three
//     days a week; a completed one's log is approved (by the supervisor's confirmation or by staff) and
//     85 % of them are verified with a document; an open one's last week awaits approval.
//   - complaints: about one per 50 students, across the workflow (submitted → in_review → resolved →
//     appealed → closed, each step a transition row), 10 % of them for someone who is not a student.
// Personal values (evaluator names and licences, supervisors' contacts, complaint details and notes)
// are encrypted with lib/crypto as the API stores them, only when rows are written: each load walks its
// plan twice from the same seeded stream, once to count and once to write.
import { encrypt, type PiiField } from '../lib/crypto';
import { type CopyValue, DAY_MS, enrollmentsOf, type Plan, prng, type Row, type TableLoad } from './school-plan';

const WEEK_MS = 7 * DAY_MS;
const HOUR_MS = 3_600_000;

/** A value encrypted only when its row is written (never while counting). */
class Secret {
  constructor(
    readonly text: string,
    readonly field: PiiField,
  ) {}
}
type Draft = (CopyValue | Secret)[];

function lazyLoad(table: string, columns: string, walk: () => Iterable<Draft>): TableLoad {
  let count = 0;
  for (const _ of walk()) count += 1;
  return {
    table,
    columns,
    count,
    *rows(): Iterable<Row> {
      for (const draft of walk())
        yield draft.map((value) => (value instanceof Secret ? encrypt(value.text, value.field) : value));
    },
  };
}

const isoDate = (date: Date) => date.toISOString().slice(0, 10);

// ---------------------------------------------------------------------------------------------------
// Skills check-offs
// ---------------------------------------------------------------------------------------------------

const SKILLS_PER_MODULE = 2;
const INSTRUCTOR_LICENCE = 'GA-DA-20417';

function* checkoffDrafts(plan: Plan, seed: number): Iterable<Draft> {
  const random = prng(seed, 'skills_checkoffs');
  const instructor = plan.staff.instructor;
  const evaluatorName = `${instructor.first} ${instructor.last}`;
  const last = plan.now.getTime() - HOUR_MS;
  for (const { student, enrollment: e } of enrollmentsOf(plan)) {
    if (e.modulesTouched === 0) continue;
    const planned = plan.programs[e.program] as Plan['programs'][number];
    const modules = planned.spec.modules.length;
    for (let module = 0; module < e.modulesTouched; module++) {
      const spec = planned.spec.modules[module] as Plan['programs'][number]['spec']['modules'][number];
      if (!spec[4]) continue; // online modules have no clinical skills
      const current = e.status !== 'completed' && module === e.modulesTouched - 1;
      const reached = e.start.getTime() + ((module + 0.5) / modules) * planned.spec.weeks * WEEK_MS;
      for (let skill = 1; skill <= SKILLS_PER_MODULE; skill++) {
        const skillCode = `${spec[0]}_SKILL_${skill}`;
        let opened = Math.min(reached + random.int(0, 72) * HOUR_MS, last - DAY_MS);
        const leavePending = current && random.chance(0.4);
        for (let attempt = 1; attempt <= 2; attempt++) {
          const id = random.uuid();
          const decisionId = random.uuid();
          const approved = attempt === 2 || random.chance(0.85);
          const decided = opened + random.int(1, 72) * HOUR_MS;
          const base = [student.id, planned.moduleIds[module] as string, e.id, skillCode, attempt];
          yield [id, ...base, 'pending', null, null, null, null, null, null, instructor.id, new Date(opened)];
          if (leavePending || decided > last) break;
          const evidence = random.chance(0.5)
            ? new Secret(`photo:${skillCode.toLowerCase()}/${id}`, 'skills_checkoffs.evidence_ref')
            : null;
          yield [
            decisionId,
            ...base,
            approved ? 'approved' : 'rejected',
            id,
            instructor.id,
            new Secret(evaluatorName, 'skills_checkoffs.evaluator_name'),
            new Secret(INSTRUCTOR_LICENCE, 'skills_checkoffs.evaluator_license'),
            evidence,
            new Date(decided),
            instructor.id,
            new Date(decided),
          ];
          if (approved) break;
          opened = Math.min(decided + 7 * DAY_MS, last);
          if (opened <= decided) break;
        }
      }
    }
  }
}

const CHECKOFF_COLUMNS =
  'id, user_id, module_id, enrollment_id, skill_code, attempt, status, decides_id, evaluator_user_id, ' +
  'evaluator_name_ciphertext, evaluator_license_ciphertext, evidence_ref_ciphertext, signed_at, recorded_by, recorded_at';

// ---------------------------------------------------------------------------------------------------
// Externships and their hours
// ---------------------------------------------------------------------------------------------------

const SITES = [
  ['Peachtree Family Dentistry', '1420 Peachtree St NE, Atlanta, GA 30309'],
  ['Decatur Smiles', '315 W Ponce de Leon Ave, Decatur, GA 30030'],
  ['Marietta Dental Group', '55 Whitlock Ave SW, Marietta, GA 30064'],
  ['Grady Dental Clinic', '80 Jesse Hill Jr Dr SE, Atlanta, GA 30303'],
  ['Buckhead Orthodontics', '3200 Cobb Pkwy, Atlanta, GA 30339'],
] as const;
const SUPERVISORS = [
  'Dr. Amara Okafor',
  'Dr. James Whitfield',
  'Dr. Lucía Ramírez',
  'Dr. Hana Sato',
  'Dr. Éric Dubois',
];
const PLACEMENT_WEEKS = 4;
/** Monday, Wednesday and Friday of a placement week, as offsets in days from its first day. */
const WORK_DAYS = [0, 2, 4];

interface Placement {
  externship: Draft;
  hours: Draft[];
}

function* placements(plan: Plan, seed: number): Iterable<Placement> {
  const random = prng(seed, 'externships');
  const staff = plan.staff.staff.id;
  const today = plan.now.getTime();
  for (const { student, enrollment: e } of enrollmentsOf(plan)) {
    const spec = (plan.programs[e.program] as Plan['programs'][number]).spec;
    if (spec.weeks < 10) continue;
    const end = e.start.getTime() + spec.weeks * WEEK_MS;
    const open = e.status === 'active' || e.status === 'on_hold';
    const finishing = open && e.start.getTime() + 0.8 * spec.weeks * WEEK_MS < today;
    if (e.status !== 'completed' && !finishing) continue;
    const id = random.uuid();
    const start = end - PLACEMENT_WEEKS * WEEK_MS;
    const [site, address] = random.pick(SITES);
    const supervisor = random.pick(SUPERVISORS);
    const hours: Draft[] = [];
    let approvedAll = true;
    for (let week = 0; week < PLACEMENT_WEEKS; week++) {
      for (const day of WORK_DAYS) {
        const date = start + week * WEEK_MS + day * DAY_MS;
        if (date > today - DAY_MS) continue;
        const approved = e.status === 'completed' || date < today - 7 * DAY_MS;
        approvedAll &&= approved;
        const bySupervisor = random.chance(0.6);
        const approvedAt = new Date(Math.min(date + 2 * DAY_MS, today - HOUR_MS));
        hours.push([
          random.uuid(),
          id,
          isoDate(new Date(date)),
          random.int(6, 8) * 60,
          null,
          staff,
          new Date(date + 18 * HOUR_MS),
          approved ? (bySupervisor ? 'supervisor' : 'staff') : null,
          approved ? approvedAt : null,
          approved ? staff : null,
          approved && bySupervisor
            ? new Secret(`timesheet ${isoDate(new Date(date))}`, 'externship_hours.supervisor_confirmation_ref')
            : null,
        ]);
      }
    }
    const verifiedAt = end + 7 * DAY_MS;
    const verified =
      e.status === 'completed' && approvedAll && hours.length > 0 && verifiedAt < today && random.chance(0.85);
    const externship: Draft = [
      id,
      student.id,
      e.id,
      site,
      address,
      new Secret(supervisor, 'externships.supervisor_name'),
      new Secret(
        `supervisor${random.int(1, 99)}@${site.toLowerCase().replace(/[^a-z]+/g, '')}.example`,
        'externships.supervisor_email',
      ),
      new Secret(`+1 404 555 ${String(random.int(0, 9999)).padStart(4, '0')}`, 'externships.supervisor_phone'),
      isoDate(new Date(start)),
      end <= today ? isoDate(new Date(end - DAY_MS)) : null,
      verified ? new Date(verifiedAt) : null,
      verified ? staff : null,
      verified ? new Secret(`signed-hours-log/${id}.pdf`, 'externships.verification_doc_ref') : null,
      staff,
      new Date(Math.min(start, today - HOUR_MS)),
    ];
    yield { externship, hours };
  }
}

const EXTERNSHIP_COLUMNS =
  'id, user_id, enrollment_id, site_name, site_address, supervisor_name_ciphertext, supervisor_email_ciphertext, ' +
  'supervisor_phone_ciphertext, start_date, end_date, verified_at, verified_by, verification_doc_ref_ciphertext, ' +
  'created_by, created_at';
const HOURS_COLUMNS =
  'id, externship_id, work_date, minutes, note_ciphertext, logged_by, logged_at, approval, approved_at, approved_by, ' +
  'supervisor_confirmation_ref_ciphertext';

// ---------------------------------------------------------------------------------------------------
// Complaints and their transitions
// ---------------------------------------------------------------------------------------------------

const CATEGORIES = [
  ['academic', 30],
  ['financial', 20],
  ['facilities', 12],
  ['conduct', 10],
  ['admissions', 8],
  ['other', 8],
  ['safety', 6],
  ['discrimination', 6],
] as const;
const DETAILS = [
  'The lab session was cancelled twice without notice and the hours were not rescheduled.',
  'My payment was applied to the wrong month and a late fee was charged.',
  'An instructor spoke to me disrespectfully in front of the class.',
  'The sterilization room was out of gloves for a week.',
  'I was told the programme would include an externship placement near my home.',
];
const RESOLUTIONS = [
  'Met with the student; the missed hours were rescheduled and recorded.',
  'The fee was reversed and the payment reapplied.',
  'Spoke with the instructor; a written apology was given.',
];
/** The target status, weighted (a complaint stops earlier when its next step would be in the future). */
const TARGETS = [
  ['submitted', 15],
  ['in_review', 20],
  ['resolved', 25],
  ['appealed', 10],
  ['closed', 30],
] as const;

interface Filed {
  complaint: Draft;
  transitions: Draft[];
}

function* complaintsFiled(plan: Plan, seed: number): Iterable<Filed> {
  const random = prng(seed, 'complaints');
  const staff = plan.staff.staff.id;
  const today = plan.now.getTime() - HOUR_MS;
  for (const student of plan.students) {
    if (!random.chance(1 / 50)) continue;
    const id = random.uuid();
    const outsider = random.chance(0.1);
    const byStaff = outsider || random.chance(0.2);
    const filedBy = byStaff ? staff : student.id;
    const submitted = student.createdAt.getTime() + random.next() * (today - student.createdAt.getTime());
    const target = random.weighted(TARGETS);
    const viaAppeal = target === 'appealed' || (target === 'closed' && random.chance(0.5));
    // Each step after the one before it: review in days, resolution in weeks, an appeal within the
    // 90-day window, closing an appeal a month later or an unappealed resolution after the window.
    const steps: [string, number][] = [['submitted', submitted]];
    const plannedSteps: [string, number][] = [
      ['in_review', random.int(1, 5) * DAY_MS],
      ['resolved', random.int(7, 30) * DAY_MS],
      ...(viaAppeal ? ([['appealed', random.int(5, 80) * DAY_MS]] as [string, number][]) : []),
      ['closed', viaAppeal ? random.int(14, 45) * DAY_MS : 91 * DAY_MS],
    ];
    for (const [status, after] of plannedSteps) {
      const at = (steps[steps.length - 1] as [string, number])[1] + after;
      if (at > today) break;
      steps.push([status, at]);
      if (status === target) break;
    }
    const reached = (status: string) => steps.find(([name]) => name === status)?.[1];
    const resolvedAt = reached('resolved');
    const appealedAt = reached('appealed');
    const [status, changedAt] = steps[steps.length - 1] as [string, number];
    const complaint: Draft = [
      id,
      outsider ? null : student.id,
      outsider
        ? new Secret(`${random.pick(['Pat', 'Jordan', 'Morgan'])} Rivera (parent)`, 'complaints.complainant_name')
        : null,
      outsider ? new Secret('+1 678 555 0142', 'complaints.complainant_contact') : null,
      filedBy,
      new Date(submitted),
      random.weighted(CATEGORIES),
      new Secret(random.pick(DETAILS), 'complaints.details'),
      status,
      new Date(changedAt),
      resolvedAt === undefined ? null : new Secret(random.pick(RESOLUTIONS), 'complaints.resolution_notes'),
      resolvedAt === undefined ? null : new Date(resolvedAt),
      resolvedAt === undefined ? null : staff,
      appealedAt === undefined ? null : new Date(appealedAt),
      appealedAt === undefined ? null : new Secret('The student disputes the outcome.', 'complaints.appeal_notes'),
    ];
    const transitions = steps.map(
      ([to, at], i): Draft => [
        random.uuid(),
        id,
        i === 0 ? null : (steps[i - 1] as [string, number])[0],
        to,
        null,
        i === 0 ? filedBy : to === 'appealed' && !byStaff ? student.id : staff,
        new Date(at),
      ],
    );
    yield { complaint, transitions };
  }
}

const COMPLAINT_COLUMNS =
  'id, user_id, complainant_name_ciphertext, complainant_contact_ciphertext, filed_by, submitted_at, category, ' +
  'details_ciphertext, status, status_changed_at, resolution_notes_ciphertext, resolved_at, resolved_by, appealed_at, ' +
  'appeal_notes_ciphertext';
const TRANSITION_COLUMNS = 'id, complaint_id, from_status, to_status, notes_ciphertext, changed_by, changed_at';

/** The check-offs, externships with their hours, and complaints with their transitions, in key order. */
export function complianceRecordLoads(plan: Plan, seed: number): TableLoad[] {
  return [
    lazyLoad('skills_checkoffs', CHECKOFF_COLUMNS, () => checkoffDrafts(plan, seed)),
    lazyLoad('externships', EXTERNSHIP_COLUMNS, function* () {
      for (const placement of placements(plan, seed)) yield placement.externship;
    }),
    lazyLoad('externship_hours', HOURS_COLUMNS, function* () {
      for (const placement of placements(plan, seed)) yield* placement.hours;
    }),
    lazyLoad('complaints', COMPLAINT_COLUMNS, function* () {
      for (const filed of complaintsFiled(plan, seed)) yield filed.complaint;
    }),
    lazyLoad('complaint_transitions', TRANSITION_COLUMNS, function* () {
      for (const filed of complaintsFiled(plan, seed)) yield* filed.transitions;
    }),
  ];
}
