// fast-check arbitraries made from a route's zod schemas: values inside the schema (built from its
// JSON Schema, the same one the OpenAPI document publishes, so this follows zod's own reading of
// it) and values outside it (wrong types, missing and extra keys, hostile strings, malformed JSON).
// "Inside" is best effort: refinements (a date after another, a non-empty partial) are not in the
// JSON Schema, so some generated values are still refused; those are fine inputs too.
import fc from 'fast-check';
import { type ZodType, z } from 'zod';

type JsonSchema = {
  type?: string | string[];
  format?: string;
  pattern?: string;
  enum?: unknown[];
  const?: unknown;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  items?: JsonSchema | false;
  prefixItems?: JsonSchema[];
  minItems?: number;
  maxItems?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  default?: unknown;
};

/** The JSON Schema of what a zod schema accepts (its input side: before transforms). */
export function jsonSchemaOf(schema: ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
}

/** Strings kept short: the point is the shape, and a 2-core machine runs this. */
const MAX_STRING = 64;
const MAX_ITEMS = 4;

const isoDate = fc
  .date({ min: new Date('1990-01-01T00:00:00Z'), max: new Date('2100-12-31T00:00:00Z'), noInvalidDate: true })
  .map((date) => date.toISOString().slice(0, 10));

const email = fc
  .tuple(fc.stringMatching(/^[a-z][a-z0-9]{0,11}$/), fc.constantFrom('example.test', 'aada.edu'))
  .map(([local, domain]) => `${local}@${domain}`);

function stringInside(schema: JsonSchema): fc.Arbitrary<string> {
  if (schema.format === 'uuid') return fc.uuid();
  if (schema.format === 'date') return isoDate;
  if (schema.format === 'date-time') return fc.date({ noInvalidDate: true }).map((date) => date.toISOString());
  if (schema.format === 'email') return email;
  const minLength = schema.minLength ?? 0;
  const maxLength = Math.max(minLength, Math.min(schema.maxLength ?? MAX_STRING, MAX_STRING));
  if (schema.pattern) {
    return fc
      .stringMatching(new RegExp(schema.pattern))
      .filter((value) => value.length >= minLength && value.length <= (schema.maxLength ?? Number.POSITIVE_INFINITY));
  }
  // Mostly printable ASCII (so bodies get past the text rule to the handler), sometimes any grapheme.
  return fc.oneof(
    { arbitrary: fc.string({ minLength, maxLength }), weight: 3 },
    { arbitrary: fc.string({ unit: 'grapheme', minLength, maxLength }), weight: 1 },
  );
}

function numberInside(schema: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  const min = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : -1_000_000);
  const max = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - 1 : 1_000_000);
  if (integer) return fc.integer({ min: Math.ceil(min), max: Math.floor(max) });
  return fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
}

/** A value the schema describes (up to refinements it cannot express). */
export function inside(schema: JsonSchema | undefined): fc.Arbitrary<unknown> {
  if (!schema || Object.keys(schema).length === 0) return fc.jsonValue({ maxDepth: 2 });
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map(inside));
  if (schema.allOf?.[0]) return inside(schema.allOf[0]);
  if (Array.isArray(schema.type)) return fc.oneof(...schema.type.map((type) => inside({ ...schema, type })));
  switch (schema.type) {
    case 'string':
      return stringInside(schema);
    case 'integer':
      return numberInside(schema, true);
    case 'number':
      return numberInside(schema, false);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      if (schema.prefixItems) return fc.tuple(...schema.prefixItems.map(inside));
      return fc.array(inside(schema.items || undefined), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.max(schema.minItems ?? 0, Math.min(schema.maxItems ?? MAX_ITEMS, MAX_ITEMS)),
      });
    case 'object': {
      const properties = schema.properties ?? {};
      const model = Object.fromEntries(Object.entries(properties).map(([key, value]) => [key, inside(value)]));
      return fc.record(model, { requiredKeys: (schema.required ?? []).filter((key) => key in properties) });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Strings an attacker or a broken client sends where an id, a name or a number belongs. */
export const hostileString = fc.oneof(
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
  fc.constantFrom(
    "' or 1=1 --",
    '"; drop table users; --',
    '$1',
    '%00',
    '\u0000',
    '..%2f..%2fetc%2fpasswd',
    '00000000-0000-0000-0000-00000000000g',
    '-1',
    '1e309',
    'NaN',
    '0x10',
    '{{7*7}}',
    '<script>alert(1)</script>',
    '\u202e\u200b\ufeff',
    'a'.repeat(5000),
  ),
);

/** Any JSON value, including the shapes that break careless code. */
const hostileJson = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  hostileString,
  fc.constantFrom(
    null,
    [],
    {},
    -1,
    2 ** 53 + 1,
    1.5,
    true,
    { __proto__: { admin: true } },
    JSON.parse('{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"x":1}}}'),
  ),
);

/** A value of the schema with one property changed, dropped or added: nearly right, which is the hard case. */
function mutated(schema: JsonSchema): fc.Arbitrary<unknown> {
  const keys = Object.keys(schema.properties ?? {});
  const base = inside(schema) as fc.Arbitrary<Record<string, unknown>>;
  if (keys.length === 0) return fc.tuple(base, hostileString, hostileJson).map(([v, k, x]) => ({ ...v, [k]: x }));
  return fc
    .tuple(base, fc.constantFrom(...keys), hostileJson, fc.constantFrom('replace', 'drop', 'extra'))
    .map(([value, key, junk, how]) => {
      const copy: Record<string, unknown> = { ...value };
      if (how === 'replace') copy[key] = junk;
      else if (how === 'drop') delete copy[key];
      else copy[`${key}_extra`] = junk;
      return copy;
    });
}

/** A value the schema refuses (or should): structurally wrong, nearly right, or hostile. */
export function outside(schema: JsonSchema | undefined): fc.Arbitrary<unknown> {
  if (schema?.type === 'object') return fc.oneof(mutated(schema), hostileJson);
  return hostileJson;
}

/** A body as sent on the wire: JSON text of a value, or text that is not JSON at all. */
export const malformedJsonText = fc.constantFrom(
  '{"a":',
  '{',
  "{'single': 'quotes'}",
  '[1,2,',
  'undefined',
  '\u0000',
  `${'['.repeat(2000)}${']'.repeat(2000)}`,
  '{"a":1,"a":2}',
  '\ufeff{}',
);
