// Password hashing: Argon2id (OWASP's first choice) for every new hash; bcrypt hashes carried over
// from the old system are verified once and replaced by Argon2id on the next successful sign-in.
import { Algorithm, hash, verify } from '@node-rs/argon2';
import bcrypt from 'bcryptjs';

/**
 * OWASP's Argon2id baseline (19 MiB, 2 passes, 1 lane): ~20-40 ms on one core here, which bounds
 * what an attacker with a stolen table gains per guess while keeping sign-in quick.
 */
export const ARGON2_PARAMS = {
  algorithm: Algorithm.Argon2id,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

/** Longest password accepted anywhere: hashing cost must not be a lever for denial of service. */
export const PASSWORD_MAX_LENGTH = 128;
export const PASSWORD_MIN_LENGTH = 12;

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_PARAMS);
}

export interface Verification {
  ok: boolean;
  /** The stored hash is of an older kind or weaker parameters and should be replaced. */
  needsRehash: boolean;
}

const BCRYPT_PREFIX = /^\$2[aby]\$\d{2}\$/;
const CURRENT_ARGON2_PREFIX = `$argon2id$v=19$m=${ARGON2_PARAMS.memoryCost},t=${ARGON2_PARAMS.timeCost},p=${ARGON2_PARAMS.parallelism}$`;

export async function verifyPassword(storedHash: string, password: string): Promise<Verification> {
  if (password.length > PASSWORD_MAX_LENGTH) return { ok: false, needsRehash: false };
  if (BCRYPT_PREFIX.test(storedHash)) {
    // bcrypt only reads the first 72 bytes; the old system's passwords were at most 128 characters.
    return { ok: await bcrypt.compare(password, storedHash), needsRehash: true };
  }
  if (storedHash.startsWith('$argon2')) {
    try {
      return { ok: await verify(storedHash, password), needsRehash: !storedHash.startsWith(CURRENT_ARGON2_PREFIX) };
    } catch {
      return { ok: false, needsRehash: false };
    }
  }
  return { ok: false, needsRehash: false };
}

/** A hash of a random password: verifying against it costs what a real check costs. */
let decoyHash: Promise<string> | undefined;
export function decoyPasswordHash(): Promise<string> {
  decoyHash ??= hashPassword(`decoy-${Math.random()}-${Date.now()}`);
  return decoyHash;
}
