// Demo data for local development: the school's two programmes with their modules, one account per
// role and a few dozen students with enrollments. Loaded once: a database that has programmes
// already is left alone. PII goes in encrypted, exactly as the API would store it.

import type postgres from 'postgres';
import { emailBlindIndex, encrypt, nameSearchTokens } from '../lib/crypto';
import { BYTEA_ARRAY } from '../lib/db';
import { hashPassword } from '../lib/passwords';
import { seedDemoLessons } from './seed-content';

export const DEMO_PASSWORD = 'Demo-Password-2026';
export const DEMO_DOMAIN = 'demo.aada.edu';

/** The school's programmes (also the shape of the benchmark's school, bench/school.ts). */
export const DEMO_PROGRAMS = [
  {
    code: 'DA-20W',
    name: 'Dental Assisting (20 weeks)',
    credentialLevel: 'certificate',
    description: 'Chairside dental assisting: infection control, radiography, chairside procedures and externship.',
    modules: [
      ['DA101', 'Orientation and professionalism', 'online', 20, false],
      ['DA102', 'Infection control and OSHA', 'hybrid', 40, true],
      ['DA103', 'Dental anatomy and terminology', 'online', 60, false],
      ['DA104', 'Dental radiography', 'in_person', 80, true],
      ['DA105', 'Chairside procedures', 'in_person', 120, true],
      ['DA106', 'Clinical externship', 'in_person', 160, true],
    ],
  },
  {
    code: 'EFDA',
    name: 'Expanded Functions Dental Assistant',
    credentialLevel: 'certificate',
    description: 'Expanded duties for practising assistants: coronal polishing, sealants, restorative functions.',
    modules: [
      ['EF201', 'Coronal polishing', 'hybrid', 24, true],
      ['EF202', 'Sealants and fluoride', 'hybrid', 24, true],
      ['EF203', 'Restorative functions', 'in_person', 72, true],
    ],
  },
] as const;

/** One account per staff role: role, first name, last name. */
export const DEMO_STAFF = [
  ['admin', 'Avery', 'Administrator'],
  ['staff', 'Sam', 'Staffer'],
  ['instructor', 'Irene', 'Instructor'],
  ['registrar', 'Rita', 'Registrar'],
  ['finance', 'Frank', 'Finance'],
  ['admissions_counselor', 'Casey', 'Counselor'],
  ['admissions_manager', 'Morgan', 'Manager'],
] as const;

const FIRST_NAMES = [
  'Ana',
  'Ben',
  'Chloé',
  'Darius',
  'Elena',
  'Femi',
  'Grace',
  'Hiro',
  'Ines',
  'Jamal',
  'Keisha',
  'Luis',
];
const LAST_NAMES = ['Alvarez', 'Brooks', 'Chen', 'Diallo', 'Evans', 'Fischer', 'García', 'Hughes', 'Ito', 'Johnson'];
export const DEMO_STUDENT_COUNT = 36;

type Sql = postgres.Sql | postgres.TransactionSql;

async function insertUser(sql: Sql, email: string, first: string, last: string, passwordHash: string, roles: string[]) {
  const [user] = await sql<{ id: string }[]>`
    insert into users (email_ciphertext, email_blind_index, first_name_ciphertext, last_name_ciphertext,
                       name_search_tokens, password_hash, status)
    values (${encrypt(email, 'users.email')}, ${emailBlindIndex(email)}, ${encrypt(first, 'users.first_name')},
            ${encrypt(last, 'users.last_name')}, ${sql.array(nameSearchTokens(first, last), BYTEA_ARRAY)}, ${passwordHash}, 'active')
    returning id`;
  const id = (user as { id: string }).id;
  for (const role of roles) await sql`insert into user_roles (user_id, role_name) values (${id}, ${role})`;
  return id;
}

/** Loads the demo data unless the database already has programmes. Returns whether it loaded. */
export async function seedDemoData(sql: postgres.Sql): Promise<boolean> {
  const [existing] = await sql`select 1 from programs limit 1`;
  if (existing) return false;
  // One hash for every demo account: they share the published demo password anyway.
  const passwordHash = await hashPassword(DEMO_PASSWORD);
  await sql.begin(async (tx) => {
    const programIds: string[] = [];
    for (const program of DEMO_PROGRAMS) {
      const total = program.modules.reduce((sum, module) => sum + module[3], 0);
      const [row] = await tx<{ id: string }[]>`
        insert into programs (code, name, credential_level, total_clock_hours, description)
        values (${program.code}, ${program.name}, ${program.credentialLevel}, ${total}, ${program.description})
        returning id`;
      const programId = (row as { id: string }).id;
      programIds.push(programId);
      for (const [position, [code, title, delivery, hours, inPerson]] of program.modules.entries()) {
        await tx`
          insert into modules (program_id, code, title, delivery_type, clock_hours, requires_in_person, position)
          values (${programId}, ${code}, ${title}, ${delivery}, ${hours}, ${inPerson}, ${position + 1})`;
      }
    }
    for (const [role, first, last] of DEMO_STAFF) {
      const id = await insertUser(tx, `${role.replace('_', '.')}@${DEMO_DOMAIN}`, first, last, passwordHash, [role]);
      if (role === 'instructor') {
        await seedDemoLessons(tx, programIds, id);
        for (const programId of programIds) {
          await tx`insert into instructor_assignments (instructor_id, program_id) values (${id}, ${programId})`;
        }
      }
    }
    for (let i = 0; i < DEMO_STUDENT_COUNT; i++) {
      const first = FIRST_NAMES[i % FIRST_NAMES.length] as string;
      const last = LAST_NAMES[(i * 7) % LAST_NAMES.length] as string;
      const email = `student${String(i + 1).padStart(2, '0')}@${DEMO_DOMAIN}`;
      const id = await insertUser(tx, email, first, last, passwordHash, ['student']);
      const programId = programIds[i % 3 === 2 ? 1 : 0] as string;
      const status = i % 9 === 8 ? 'completed' : i % 11 === 10 ? 'withdrawn' : 'active';
      await tx`
        insert into enrollments (user_id, program_id, start_date, expected_end_date, status)
        values (${id}, ${programId}, current_date - ${(i % 20) * 7}::int, current_date + ${140 - (i % 20) * 7}::int, ${status})`;
    }
  });
  return true;
}
