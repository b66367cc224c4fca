// Signed statements (xAPI Data §2.6): a statement may carry a JWS (RFC 7515, compact serialization) as an
// attachment of usageType …/attachments/signature and type application/octet-stream. The LRS refuses (400) a
// signature that is not a JWS, one whose algorithm is not RS256/RS384/RS512, one whose payload is not the
// statement it is attached to (compared without what the LRS sets and without the signature attachment), and,
// when the JWS header carries the signer's certificate (x5c), one that certificate does not verify.
import { createVerify, X509Certificate } from 'node:crypto';
import { xapiBadRequest } from './xapi-protocol';
import { canonicalJson } from './xapi-statements';
import { SIGNATURE_USAGE } from './xapi-validation';

const ALGORITHMS: Record<string, string> = { RS256: 'RSA-SHA256', RS384: 'RSA-SHA384', RS512: 'RSA-SHA512' };
const SEGMENT = /^[A-Za-z0-9_-]*$/;

type Obj = Record<string, unknown>;

function decodeSegment(segment: string, what: string): Obj {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Obj;
  } catch {
    // refused below
  }
  throw xapiBadRequest(`The signature's ${what} is not a JSON object`, 'attachments');
}

/** The statement as the signer saw it: without the LRS's properties and the signature attachment. */
function comparable(statement: Obj): string {
  const { authority: _a, stored: _s, version: _v, attachments, ...rest } = statement;
  const kept = Array.isArray(attachments) ? attachments.filter((a) => (a as Obj)?.usageType !== SIGNATURE_USAGE) : [];
  if (kept.length > 0) rest.attachments = kept;
  if (typeof rest.id === 'string') rest.id = rest.id.toLowerCase();
  // 2.0: durations compare to the hundredth of a second.
  const result = rest.result as Obj | undefined;
  if (result && typeof result.duration === 'string') {
    rest.result = {
      ...result,
      duration: result.duration.replace(/(\d+)[.,](\d{1,2})\d*S$/, '$1.$2S').replace(/(\d+)[.,]0*S$/, '$1S'),
    };
  }
  return canonicalJson(rest);
}

/** Checks the JWS `signature` attached to `statement` (as received); a 400 when it does not hold. */
export function verifyStatementSignature(statement: Obj, signature: Buffer): void {
  const text = signature.toString('utf8').trim();
  const parts = text.split('.');
  if (parts.length !== 3 || !parts.every((part) => SEGMENT.test(part))) {
    throw xapiBadRequest('The signature is not a JWS in compact serialization', 'attachments');
  }
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = decodeSegment(headerPart, 'header');
  const algorithm = ALGORITHMS[String(header.alg)];
  if (!algorithm) throw xapiBadRequest('A statement signature uses RS256, RS384 or RS512', 'attachments');
  const payload = decodeSegment(payloadPart, 'payload');
  const withId = payload.id === undefined ? { ...statement, id: undefined } : statement;
  if (comparable(payload) !== comparable(JSON.parse(JSON.stringify(withId)) as Obj)) {
    throw xapiBadRequest('The signature’s payload is not this statement', 'attachments');
  }
  const chain = header.x5c;
  if (chain === undefined) return;
  if (!Array.isArray(chain) || typeof chain[0] !== 'string')
    throw xapiBadRequest('x5c must list certificates', 'attachments');
  let verified = false;
  try {
    const certificate = new X509Certificate(Buffer.from(chain[0], 'base64'));
    verified = createVerify(algorithm)
      .update(`${headerPart}.${payloadPart}`)
      .verify(certificate.publicKey, Buffer.from(signaturePart, 'base64url'));
  } catch {
    verified = false;
  }
  if (!verified) throw xapiBadRequest('The signature does not verify with its certificate', 'attachments');
}
