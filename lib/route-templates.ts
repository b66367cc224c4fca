// Route templates of the Azure Functions host (the subset of ASP.NET Core route templates it accepts):
// literals, `{p}`, `{p?}`, `{p=default}`, `{*rest}`, multi-part segments and constraints, with ASP.NET's
// precedence. Used by the local host in dev/functions-host.ts to route, and by the app's fallback
// function (lib/endpoint.ts) to tell a wrong method on a known route (405) from an unknown route (404).
//
// Why one file over 350 lines: the template parser, the matcher and the precedence order implement one
// specification (ASP.NET Core route templates) and must agree on every part kind; they change together.
// ---------------------------------------------------------------------------------------------------------
// Route templates (the subset of ASP.NET Core route templates the Functions host accepts)
// ---------------------------------------------------------------------------------------------------------

type Constraint = { name: string; test: (value: string) => boolean };

interface ParamPart {
  kind: 'param';
  name: string;
  optional: boolean;
  catchAll: boolean;
  defaultValue?: string;
  constraints: Constraint[];
}
interface LiteralPart {
  kind: 'literal';
  text: string;
}
type Part = ParamPart | LiteralPart;

interface Segment {
  parts: Part[];
  /** For segments with several parts, e.g. `{name}.{ext}`. */
  complex?: RegExp;
}

export interface CompiledTemplate {
  segments: Segment[];
  /** ASP.NET Core inbound precedence digits, one per segment: lower sorts first. */
  precedence: number[];
}

export function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, '');
}

const GUID_RE =
  /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}|\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}|\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\))$/i;
const INTEGER_RE = /^[+-]?\d+$/;
const NUMBER_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;

function integerInRange(value: string, min: bigint, max: bigint): boolean {
  if (!INTEGER_RE.test(value)) return false;
  const n = BigInt(value);
  return n >= min && n <= max;
}

function parseIntArg(arg: string | undefined, constraint: string, where: string): number {
  const n = Number(arg);
  if (arg === undefined || !Number.isInteger(n) || n < 0) {
    throw new Error(`${where}: constraint "${constraint}" needs a non-negative integer argument.`);
  }
  return n;
}

function parseBigArg(arg: string | undefined, constraint: string, where: string): bigint {
  if (arg === undefined || !INTEGER_RE.test(arg.trim())) {
    throw new Error(`${where}: constraint "${constraint}" needs an integer argument.`);
  }
  return BigInt(arg.trim());
}

const INT32_MIN = -(2n ** 31n);
const INT32_MAX = 2n ** 31n - 1n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function makeConstraint(name: string, arg: string | undefined, where: string): Constraint {
  const lower = name.toLowerCase();
  const args = () => (arg ?? '').split(',').map((a) => a.trim());
  let test: (v: string) => boolean;
  switch (lower) {
    case 'int':
      test = (v) => integerInRange(v, INT32_MIN, INT32_MAX);
      break;
    case 'long':
      test = (v) => integerInRange(v, INT64_MIN, INT64_MAX);
      break;
    case 'bool':
      test = (v) => /^(?:true|false)$/i.test(v);
      break;
    case 'guid':
      test = (v) => GUID_RE.test(v);
      break;
    case 'alpha':
      test = (v) => /^[a-z]*$/i.test(v);
      break;
    case 'datetime':
      // Approximation of DateTime.TryParse with the invariant culture.
      test = (v) => /\d/.test(v) && !Number.isNaN(Date.parse(v));
      break;
    case 'decimal':
    case 'double':
    case 'float':
      test = (v) => NUMBER_RE.test(v);
      break;
    case 'minlength': {
      const n = parseIntArg(arg, name, where);
      test = (v) => v.length >= n;
      break;
    }
    case 'maxlength': {
      const n = parseIntArg(arg, name, where);
      test = (v) => v.length <= n;
      break;
    }
    case 'length': {
      const [a, b] = args();
      if (b === undefined) {
        const n = parseIntArg(a, name, where);
        test = (v) => v.length === n;
      } else {
        const lo = parseIntArg(a, name, where);
        const hi = parseIntArg(b, name, where);
        test = (v) => v.length >= lo && v.length <= hi;
      }
      break;
    }
    case 'min': {
      const n = parseBigArg(arg, name, where);
      test = (v) => integerInRange(v, n, INT64_MAX);
      break;
    }
    case 'max': {
      const n = parseBigArg(arg, name, where);
      test = (v) => integerInRange(v, INT64_MIN, n);
      break;
    }
    case 'range': {
      const [a, b] = args();
      const lo = parseBigArg(a, name, where);
      const hi = parseBigArg(b, name, where);
      test = (v) => integerInRange(v, lo, hi);
      break;
    }
    case 'regex': {
      if (!arg) throw new Error(`${where}: constraint "regex" needs a pattern.`);
      let re: RegExp;
      try {
        // Like ASP.NET Core: case-insensitive and NOT anchored implicitly (write ^ and $ yourself).
        re = new RegExp(arg, 'i');
      } catch (err) {
        throw new Error(`${where}: invalid regex constraint: ${(err as Error).message}`);
      }
      test = (v) => re.test(v);
      break;
    }
    case 'required':
      test = (v) => v.length > 0;
      break;
    case 'nonfile':
      test = (v) => !/\.[^/]*$/.test(v.slice(v.lastIndexOf('/') + 1)) || v.endsWith('.');
      break;
    case 'file':
      test = (v) => /\.[^/.]+$/.test(v.slice(v.lastIndexOf('/') + 1));
      break;
    default:
      throw new Error(`${where}: unsupported route constraint "${name}".`);
  }
  return { name: lower, test };
}

/** Splits `{name:c1:c2(arg)=default}` / `{name?}` / `{*rest}` (without braces) into its pieces. */
function parseParameter(body: string, where: string): ParamPart {
  let rest = body;
  let catchAll = false;
  if (rest.startsWith('**')) {
    catchAll = true;
    rest = rest.slice(2);
  } else if (rest.startsWith('*')) {
    catchAll = true;
    rest = rest.slice(1);
  }
  const nameMatch = /^[^:=?]+/.exec(rest);
  if (!nameMatch) throw new Error(`${where}: a route parameter has no name.`);
  const name = nameMatch[0].trim();
  if (!/^[A-Za-z_][\w-]*$/.test(name)) throw new Error(`${where}: invalid route parameter name "${name}".`);
  rest = rest.slice(nameMatch[0].length);

  const constraints: Constraint[] = [];
  while (rest.startsWith(':')) {
    rest = rest.slice(1);
    const cName = /^[A-Za-z]+/.exec(rest)?.[0];
    if (!cName) throw new Error(`${where}: empty constraint on parameter "${name}".`);
    rest = rest.slice(cName.length);
    let arg: string | undefined;
    if (rest.startsWith('(')) {
      // The argument ends at the first ')' followed by the end, ':', '=' or '?' (a regex may contain ')').
      let end = -1;
      for (let i = 1; i < rest.length; i++) {
        if (rest[i] === ')' && (i + 1 === rest.length || ':=?'.includes(rest[i + 1] as string))) {
          end = i;
          break;
        }
      }
      if (end < 0) throw new Error(`${where}: unterminated argument of constraint "${cName}".`);
      arg = rest.slice(1, end);
      rest = rest.slice(end + 1);
    }
    constraints.push(makeConstraint(cName, arg, where));
  }

  let optional = false;
  let defaultValue: string | undefined;
  if (rest === '?') {
    optional = true;
    rest = '';
  } else if (rest.startsWith('=')) {
    defaultValue = rest.slice(1);
    rest = '';
  }
  if (rest !== '') throw new Error(`${where}: cannot parse route parameter "{${body}}".`);
  if (catchAll && optional) throw new Error(`${where}: a catch-all parameter cannot be marked optional.`);
  return { kind: 'param', name, optional, catchAll, defaultValue, constraints };
}

/** Tokenizes a template into segments; `{{` and `}}` are literal braces; a '/' inside `{...}` belongs to the parameter. */
export function compileTemplate(route: string, functionName: string): CompiledTemplate {
  const where = `Function "${functionName}", route "${route}"`;
  const segments: Segment[] = [];
  if (route.length > 0) {
    let parts: Part[] = [];
    let literal = '';
    const flushLiteral = () => {
      if (literal) parts.push({ kind: 'literal', text: literal });
      literal = '';
    };
    const endSegment = () => {
      flushLiteral();
      if (parts.length === 0) throw new Error(`${where}: empty segment.`);
      segments.push({ parts });
      parts = [];
    };
    for (let i = 0; i < route.length; i++) {
      const ch = route[i] as string;
      if (ch === '/') {
        endSegment();
      } else if (ch === '{' && route[i + 1] === '{') {
        literal += '{';
        i++;
      } else if (ch === '}' && route[i + 1] === '}') {
        literal += '}';
        i++;
      } else if (ch === '{') {
        let body = '';
        let j = i + 1;
        for (; j < route.length; j++) {
          const c = route[j] as string;
          if (c === '}' && route[j + 1] === '}') {
            body += '}';
            j++;
          } else if (c === '{' && route[j + 1] === '{') {
            body += '{';
            j++;
          } else if (c === '}') {
            break;
          } else {
            body += c;
          }
        }
        if (j >= route.length) throw new Error(`${where}: unterminated "{".`);
        flushLiteral();
        parts.push(parseParameter(body, where));
        i = j;
      } else if (ch === '}') {
        throw new Error(`${where}: unmatched "}".`);
      } else {
        literal += ch;
      }
    }
    endSegment();
  }

  const names = new Set<string>();
  segments.forEach((seg, index) => {
    const isLast = index === segments.length - 1;
    for (const part of seg.parts) {
      if (part.kind !== 'param') continue;
      const key = part.name.toLowerCase();
      if (names.has(key)) throw new Error(`${where}: parameter "${part.name}" appears twice.`);
      names.add(key);
      if (part.catchAll && (!isLast || seg.parts.length > 1)) {
        throw new Error(`${where}: a catch-all parameter must be the whole last segment.`);
      }
    }
    if (seg.parts.length > 1) {
      if (seg.parts.some((p) => p.kind === 'param' && (p.optional || p.defaultValue !== undefined))) {
        throw new Error(
          `${where}: optional parameters inside a segment with several parts are not supported by the dev host.`,
        );
      }
      for (let k = 1; k < seg.parts.length; k++) {
        if (seg.parts[k - 1]?.kind === 'param' && seg.parts[k]?.kind === 'param') {
          throw new Error(`${where}: two consecutive parameters need a literal between them.`);
        }
      }
      // ASP.NET matches complex segments right to left; a greedy first parameter and lazy later ones do the same.
      let firstParam = true;
      const source = seg.parts
        .map((p) => {
          if (p.kind === 'literal') return p.text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          const group = firstParam ? '(.+)' : '(.+?)';
          firstParam = false;
          return group;
        })
        .join('');
      seg.complex = new RegExp(`^${source}$`, 'i');
    }
  });
  // Optional/default parameters may only be followed by optional/default/catch-all segments.
  let sawOptional = false;
  for (const seg of segments) {
    const only = seg.parts.length === 1 ? seg.parts[0] : undefined;
    const isOptional = only?.kind === 'param' && (only.optional || only.defaultValue !== undefined || only.catchAll);
    if (sawOptional && !isOptional)
      throw new Error(`${where}: only optional segments may follow an optional parameter.`);
    if (isOptional) sawOptional = true;
  }

  const precedence = segments.map((seg) => {
    if (seg.parts.length > 1) return 2;
    const part = seg.parts[0] as Part;
    if (part.kind === 'literal') return 1;
    const digit = part.catchAll ? 5 : 3;
    return part.constraints.length > 0 ? digit - 1 : digit;
  });
  return { segments, precedence };
}

export function decodeSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw; // malformed escapes stay as they are
  }
}

/** Matches decoded path segments (prefix already removed); returns the route values or null. */
export function matchTemplate(template: CompiledTemplate, segs: string[]): Record<string, string> | null {
  const params: Record<string, string> = {};
  const tsegs = template.segments;
  for (let i = 0; i < tsegs.length; i++) {
    const tseg = tsegs[i] as Segment;
    const only = tseg.parts[0] as Part;
    if (tseg.parts.length === 1 && only.kind === 'param' && only.catchAll) {
      const value = segs.slice(i).join('/');
      if (value === '') {
        if (only.defaultValue !== undefined) params[only.name] = only.defaultValue;
      } else {
        if (!only.constraints.every((c) => c.test(value))) return null;
        params[only.name] = value;
      }
      return params;
    }
    const seg = segs[i];
    if (seg === undefined) {
      if (tseg.parts.length === 1 && only.kind === 'param' && (only.optional || only.defaultValue !== undefined)) {
        if (only.defaultValue !== undefined) params[only.name] = only.defaultValue;
        continue;
      }
      return null;
    }
    if (tseg.complex) {
      const m = tseg.complex.exec(seg);
      if (!m) return null;
      let g = 1;
      for (const part of tseg.parts) {
        if (part.kind !== 'param') continue;
        const value = m[g++] as string;
        if (!part.constraints.every((c) => c.test(value))) return null;
        params[part.name] = value;
      }
      continue;
    }
    if (only.kind === 'literal') {
      // OrdinalIgnoreCase, like the host
      if (seg.toUpperCase() !== only.text.toUpperCase()) return null;
      continue;
    }
    if (seg === '') return null; // parameters never match an empty segment
    if (!only.constraints.every((c) => c.test(seg))) return null;
    params[only.name] = seg;
  }
  return segs.length > tsegs.length ? null : params;
}

export function comparePrecedence(a: number[], b: number[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
