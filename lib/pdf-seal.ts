// The school's seal on a PDF (used through lib/pdf.ts): a PAdES signature (CMS/PKCS#7 detached,
// ETSI.CAdES.detached, SHA-256) made with the school's certificate, over every byte of the file but the
// signature itself. A PDF reader shows whether the file changed after sealing; verifySeal says the
// same here, and whether the certificate is ours.
//
// The certificate: PDF_SEAL_CERTIFICATE, a base64 PKCS#12 without passphrase (in Azure a Key Vault
// certificate, whose secret is exactly that). Production refuses to start without it (lib/config.ts);
// elsewhere a self-signed development certificate is made once per process (npm start keeps one in
// .data, so PDFs sealed yesterday still verify). After a rotation the earlier certificates (without
// their keys) go into PDF_SEAL_PREVIOUS_CERTIFICATES, so what they sealed still verifies as ours.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type forgeType from 'node-forge';
import type { PDFDocument } from 'pdf-lib';
import { config } from './config';

type Forge = typeof forgeType;
const requireHere = createRequire(__filename);
const forge = () => requireHere('node-forge') as Forge;

/** Room for the CMS signature in the file: an RSA-3072 chain of two certificates fits with margin. */
const SIGNATURE_BYTES = 12_000;

export interface SealIdentity {
  p12: Buffer;
  /** SHA-256 of the certificate (DER): what verifySeal compares a signer with. */
  fingerprint: string;
  subject: string;
}

let identity: SealIdentity | undefined;
let trusted: Set<string> | undefined;

/** A self-signed certificate of the school for development and tests (never production). */
export function developmentSealCertificate(): Buffer {
  const f = forge();
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = f.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  const cert = f.pki.createCertificate();
  cert.publicKey = f.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 24 * 3600 * 1000);
  const name = [
    { name: 'commonName', value: 'Atlanta Academy of Dental Assisting (development seal)' },
    { name: 'organizationName', value: 'Atlanta Academy of Dental Assisting' },
    { name: 'countryName', value: 'US' },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([{ name: 'keyUsage', digitalSignature: true, nonRepudiation: true }]);
  cert.sign(key, f.md.sha256.create());
  const p12 = f.pkcs12.toPkcs12Asn1(key, [cert], '', { algorithm: '3des' });
  return Buffer.from(f.asn1.toDer(p12).getBytes(), 'binary');
}

function certificateOf(p12: Buffer): forgeType.pki.Certificate {
  const f = forge();
  const parsed = f.pkcs12.pkcs12FromAsn1(f.asn1.fromDer(p12.toString('binary')), '');
  const bags = parsed.getBags({ bagType: f.pki.oids.certBag as string })[f.pki.oids.certBag as string] ?? [];
  const cert = bags[0]?.cert;
  if (!cert) throw new Error('PDF_SEAL_CERTIFICATE holds no certificate');
  return cert;
}

const fingerprintOf = (cert: forgeType.pki.Certificate) =>
  createHash('sha256')
    .update(Buffer.from(forge().asn1.toDer(forge().pki.certificateToAsn1(cert)).getBytes(), 'binary'))
    .digest('hex');

export function sealIdentity(): SealIdentity {
  if (!identity) {
    const configured = config().PDF_SEAL_CERTIFICATE;
    const p12 = configured ? Buffer.from(configured, 'base64') : developmentSealCertificate();
    const cert = certificateOf(p12);
    const subject = String(cert.subject.getField('CN')?.value ?? 'the school');
    identity = { p12, fingerprint: fingerprintOf(cert), subject };
  }
  return identity;
}

/**
 * Fingerprints of every certificate whose seals are ours: the current one and PDF_SEAL_PREVIOUS_CERTIFICATES
 * (a rotation must not make yesterday's sealed agreements unverifiable). A malformed entry fails naming it.
 */
function trustedFingerprints(): Set<string> {
  if (!trusted) {
    const f = forge();
    const previous = config().PDF_SEAL_PREVIOUS_CERTIFICATES.map((entry, i) => {
      try {
        return fingerprintOf(
          f.pki.certificateFromAsn1(f.asn1.fromDer(Buffer.from(entry, 'base64').toString('binary'))),
        );
      } catch {
        throw new Error(`PDF_SEAL_PREVIOUS_CERTIFICATES entry ${i + 1} is not a DER certificate`);
      }
    });
    trusted = new Set([sealIdentity().fingerprint, ...previous]);
  }
  return trusted;
}

/** The DER certificate of a PKCS#12, base64: what goes into PDF_SEAL_PREVIOUS_CERTIFICATES at a rotation. */
export function certificateOfP12(p12: Buffer): string {
  const f = forge();
  return Buffer.from(f.asn1.toDer(f.pki.certificateToAsn1(certificateOf(p12))).getBytes(), 'binary').toString('base64');
}

/** Forgets the certificates read from the configuration (tests rotate them within one process). */
export function resetSealIdentityForTests(): void {
  identity = undefined;
  trusted = undefined;
}

/** Adds the signature field to a document being built; `seal` below fills it once the file is saved. */
export function addSealPlaceholder(doc: PDFDocument, reason: string, signingTime: Date): void {
  const { pdflibAddPlaceholder } = requireHere(
    '@signpdf/placeholder-pdf-lib',
  ) as typeof import('@signpdf/placeholder-pdf-lib');
  const { SUBFILTER_ETSI_CADES_DETACHED } = requireHere('@signpdf/utils') as { SUBFILTER_ETSI_CADES_DETACHED: string };
  pdflibAddPlaceholder({
    pdfDoc: doc,
    reason,
    contactInfo: 'registrar@aada.edu',
    name: sealIdentity().subject,
    location: 'Atlanta, Georgia, US',
    signatureLength: SIGNATURE_BYTES,
    subFilter: SUBFILTER_ETSI_CADES_DETACHED,
    appName: 'AADA LMS API',
    // The signature dictionary's /M is the seal's signing time, not the clock at rendering.
    signingTime,
  });
}

/** Signs a saved PDF that has the placeholder (saved without object streams, so the field is findable). */
export async function seal(pdf: Uint8Array, signingTime: Date): Promise<Buffer> {
  const { P12Signer } = requireHere('@signpdf/signer-p12') as typeof import('@signpdf/signer-p12');
  const signpdf = (
    requireHere('@signpdf/signpdf') as {
      default: { sign: (pdf: Buffer, signer: unknown, at?: Date) => Promise<Buffer> };
    }
  ).default;
  return signpdf.sign(Buffer.from(pdf), new P12Signer(sealIdentity().p12), signingTime);
}

/**
 * The CMS signature in the gap the signed ranges leave (`<hex…>`), as a binary string: every byte of the
 * hex, zero padding included, for the DER parser to stop at the signature's own length. (@signpdf's
 * extractSignature strips trailing "00" pairs, which also cuts a signature whose last byte is zero:
 * one seal in 256 would read as unreadable.)
 */
function signatureInGap(pdf: Buffer, gapStart: number, gapEnd: number): string {
  const gap = pdf.subarray(gapStart, gapEnd).toString('latin1');
  const hex = /^<([0-9a-fA-F]*)>$/.exec(gap)?.[1];
  if (!hex || hex.length % 2 !== 0) throw new Error('the signature gap holds no hex string');
  return Buffer.from(hex, 'hex').toString('binary');
}

/** Parses the DER element at the start of `bytes`, ignoring what follows it (the gap's zero padding). */
function derPrefix(bytes: string): forgeType.asn1.Asn1 {
  // node-forge takes an options object here; its type declarations know only the `strict` flag.
  const fromDer = forge().asn1.fromDer as unknown as (
    bytes: string,
    options: { strict: boolean; parseAllBytes: boolean },
  ) => forgeType.asn1.Asn1;
  return fromDer(bytes, { strict: true, parseAllBytes: false });
}

export type SealCheck =
  | { sealed: true; ours: boolean; intact: boolean; signedAt: Date | null }
  | { sealed: false; reason: string };

const asnBytes = (node: forgeType.asn1.Asn1) => forge().asn1.toDer(node).getBytes();

/**
 * Whether `pdf` carries a seal, whether it is ours (the signer's certificate is the school's) and whether
 * the file is exactly what was signed: the signed ranges cover the whole file but the signature, their
 * SHA-256 is the digest the signature names, and the signature over the signed attributes verifies.
 */
export function verifySeal(pdf: Buffer): SealCheck {
  const f = forge();
  let extracted: { ByteRange: number[]; signedData: Buffer };
  try {
    const { extractSignature } = requireHere('@signpdf/utils') as {
      extractSignature: (pdf: Buffer) => typeof extracted;
    };
    extracted = extractSignature(pdf);
  } catch {
    return { sealed: false, reason: 'The file carries no signature' };
  }
  const [start, firstLength, second, secondLength] = extracted.ByteRange as [number, number, number, number];
  const wholeFile = start === 0 && second > firstLength && second + secondLength === pdf.length;
  try {
    const message = f.pkcs7.messageFromAsn1(derPrefix(signatureInGap(pdf, start + firstLength, second))) as unknown as {
      certificates: forgeType.pki.Certificate[];
      rawCapture: { authenticatedAttributes?: forgeType.asn1.Asn1[]; signature: string };
    };
    const cert = message.certificates[0];
    const attributes = message.rawCapture.authenticatedAttributes ?? [];
    if (!cert || attributes.length === 0)
      return { sealed: false, reason: 'The signature is not one this school makes' };
    const digest = createHash('sha256').update(extracted.signedData).digest('binary');
    let signedDigest: string | null = null;
    let signedAt: Date | null = null;
    for (const attribute of attributes) {
      const [type, values] = attribute.value as forgeType.asn1.Asn1[];
      const oid = f.asn1.derToOid((type as forgeType.asn1.Asn1).value as string);
      const value = ((values as forgeType.asn1.Asn1).value as forgeType.asn1.Asn1[])[0] as forgeType.asn1.Asn1;
      if (oid === f.pki.oids.messageDigest) signedDigest = value.value as string;
      if (oid === f.pki.oids.signingTime) signedAt = f.asn1.utcTimeToDate(value.value as string);
    }
    const set = f.asn1.create(f.asn1.Class.UNIVERSAL, f.asn1.Type.SET, true, attributes);
    const attributesDigest = f.md.sha256.create().update(asnBytes(set)).digest().getBytes();
    const publicKey = cert.publicKey as forgeType.pki.rsa.PublicKey;
    const signatureValid = publicKey.verify(attributesDigest, message.rawCapture.signature);
    const intact = wholeFile && signedDigest === digest && signatureValid;
    return { sealed: true, ours: trustedFingerprints().has(fingerprintOf(cert)), intact, signedAt };
  } catch {
    return { sealed: false, reason: 'The signature cannot be read' };
  }
}
