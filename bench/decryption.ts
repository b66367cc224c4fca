// What decrypting personal data costs (issue 15, item 5): per value and per page of the student list,
// split into what OpenSSL does (one AES-256-GCM context per value) and what the JavaScript around it
// does (the header, base64url, the associated data, the copies), and what one envelope per student
// (the three values read together sealed as one) would cost instead. In-process, no database.
//
//   nice -n 10 npx tsx bench/decryption.ts [--rounds 20000]
//
// Prints microseconds; nothing is asserted. Each figure is the median of 5 timed passes after a warm-up.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { decrypt, encrypt } from '../lib/crypto';
import { toUserViews, type UserRow } from '../lib/users';
import { BENCH_SECRETS } from './database';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20000' } } });
const ROUNDS = Number(values.rounds);

/** Median of 5 passes of `run` (each `count` operations), in microseconds per operation. */
function perOperation(count: number, run: () => void): number {
  run();
  const passes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    run();
    passes.push(((performance.now() - started) * 1000) / count);
  }
  return passes.sort((a, b) => a - b)[2] as number;
}

const KEY = randomBytes(32);
const FIELD = Buffer.from('users.last_name');

/** The floor: one GCM context per value, no header, no base64, buffers prepared beforehand. */
function rawOpen(nonce: Buffer, body: Buffer, tag: Buffer) {
  const decipher = createDecipheriv('aes-256-gcm', KEY, nonce);
  decipher.setAAD(FIELD);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(body), decipher.final()]);
}

function rawSeal(plaintext: Buffer) {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', KEY, nonce);
  cipher.setAAD(FIELD);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { nonce, body, tag: cipher.getAuthTag() };
}

function student(i: number): UserRow {
  const now = new Date();
  return {
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    email_ciphertext: encrypt(`student${i}@bench.aada.test`, 'users.email'),
    first_name_ciphertext: encrypt('Gabriela', 'users.first_name'),
    last_name_ciphertext: encrypt('García-Fernández', 'users.last_name'),
    status: 'active',
    roles: ['student'],
    created_at: now,
    updated_at: now,
    deactivated_at: null,
  } as UserRow;
}

function main() {
  // The bench's keys in development mode (no database is opened: config only needs a target named).
  Object.assign(process.env, {
    APP_ENV: 'development',
    DATABASE_URL: 'postgres://unused@127.0.0.1/unused',
    ...BENCH_SECRETS,
  });
  const value = encrypt('García-Fernández', 'users.last_name');
  const sealed = rawSeal(Buffer.from('García-Fernández'));
  const three = Buffer.from(JSON.stringify(['student1@bench.aada.test', 'Gabriela', 'García-Fernández']));
  const envelope = rawSeal(three);
  const pages = [50, 200].map((size) => ({ size, rows: Array.from({ length: size }, (_, i) => student(i)) }));

  const shipped = perOperation(ROUNDS, () => {
    for (let i = 0; i < ROUNDS; i++) decrypt(value, 'users.last_name');
  });
  const floor = perOperation(ROUNDS, () => {
    for (let i = 0; i < ROUNDS; i++) rawOpen(sealed.nonce, sealed.body, sealed.tag);
  });
  const oneEnvelope = perOperation(ROUNDS, () => {
    for (let i = 0; i < ROUNDS; i++) JSON.parse(rawOpen(envelope.nonce, envelope.body, envelope.tag).toString('utf8'));
  });
  console.log(`AES-256-GCM decryption, ${ROUNDS.toLocaleString('en-US')} operations a pass, median of 5 passes:`);
  console.log(`  one value, lib/crypto decrypt (header, base64url, AAD, GCM)   ${shipped.toFixed(2)} µs`);
  console.log(`  one value, the GCM context alone (createDecipheriv … final)   ${floor.toFixed(2)} µs`);
  console.log(`  so the JavaScript around it                                   ${(shipped - floor).toFixed(2)} µs`);
  console.log(`  one envelope of a student's three values (GCM + JSON.parse)   ${oneEnvelope.toFixed(2)} µs`);
  for (const { size, rows } of pages) {
    const page =
      perOperation(1, () => {
        for (let i = 0; i < Math.max(1, Math.floor(ROUNDS / size / 3)); i++) toUserViews(rows);
      }) / Math.max(1, Math.floor(ROUNDS / size / 3));
    console.log(
      `  a page of ${size} students, toUserViews (${size * 3} values)            ${page.toFixed(0)} µs` +
        ` (one envelope a student instead: ~${((oneEnvelope * size) / 1).toFixed(0)} µs of GCM)`,
    );
  }
}

main();
