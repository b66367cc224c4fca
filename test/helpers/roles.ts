// The per-role fixture: one account per role, each with its signed access token, created together.
// Test files that need "an admin", "a registrar" … take them from here; extra people of a role (a
// second student, another instructor) come from createTestUser in ./users.ts.
import type postgres from 'postgres';
import { ROLES, type Role } from '../../lib/access';
import { createTestUser, type TestUser } from './users';

export type RoleAccounts = Record<Role, TestUser>;

/** One account per role, keyed by role: `({ admin, registrar } = await createRoleAccounts(sql))`. */
export async function createRoleAccounts(sql: postgres.Sql): Promise<RoleAccounts> {
  const accounts = await Promise.all(ROLES.map((role) => createTestUser(sql, { roles: [role] })));
  return Object.fromEntries(ROLES.map((role, i) => [role, accounts[i]])) as RoleAccounts;
}
