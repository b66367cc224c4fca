// Uploaded PDFs (a staff-uploaded agreement template) are rewritten, never stored as sent: a new
// document of the upload's pages only, so no script, action, form or attachment of the upload survives
// (docs/replaced-system.md #16). Knows no area: callers say where the result goes. Re-exported by
// lib/pdf.ts, the one PDF module.
import { createRequire } from 'node:module';
import type { PDFDocument } from 'pdf-lib';

type PdfLib = typeof import('pdf-lib');
const requireHere = createRequire(__filename);
// Loaded on first use, as lib/pdf.ts does: no other request pays for it on a cold start.
let pdfLib: PdfLib | undefined;

/** Why an uploaded PDF is refused (the caller turns it into a 400 naming its field). */
export class PdfRefused extends Error {}

export interface SanitisedPdf {
  bytes: Uint8Array;
  pages: number;
  /** What the upload held that the rewrite dropped (`OpenAction`, `JavaScript`, `EmbeddedFiles`, …). */
  removed: string[];
}

/** Catalog entries that act or carry content beside the pages; none is copied. */
const CATALOG_ACTIVE = ['OpenAction', 'AA', 'AcroForm', 'Names', 'URI', 'Collection', 'Threads', 'SpiderInfo'];
/** Page entries that act (AA) or hold annotations (links, widgets of forms, attachments, media). */
const PAGE_ACTIVE = ['AA', 'Annots', 'B'];
/** Keys that must not survive anywhere in the rewritten file (checked after the rewrite, defence in depth). */
const NEVER = [
  'JS',
  'JavaScript',
  'OpenAction',
  'AA',
  'AcroForm',
  'EmbeddedFile',
  'EmbeddedFiles',
  'Launch',
  'RichMedia',
];

/**
 * Rewrites an uploaded PDF into a new document of its pages only: the
 * catalog's OpenAction, additional actions, forms, name trees (JavaScript, embedded files) and every
 * page's annotations and actions are left behind, so no script, launch action, link or attachment
 * reaches a signer. Refused: anything without the %PDF- header, an encrypted or unparsable file, no
 * page, and a rewrite in which any such key is still found.
 */
export async function sanitisePdf(input: Uint8Array): Promise<SanitisedPdf> {
  pdfLib ??= requireHere('pdf-lib') as PdfLib;
  const { PDFArray, PDFDocument, PDFName, PDFDict, PDFRawStream, PDFStream } = pdfLib;
  if (Buffer.from(input.subarray(0, 5)).toString('latin1') !== '%PDF-') throw new PdfRefused('not a PDF file');
  let source: PDFDocument;
  try {
    source = await PDFDocument.load(input, { updateMetadata: false, throwOnInvalidObject: true });
  } catch {
    throw new PdfRefused('the PDF cannot be read, or it is encrypted');
  }
  const pages = source.getPageCount();
  if (pages === 0) throw new PdfRefused('the PDF has no page');
  const removed = new Set<string>();
  for (const key of CATALOG_ACTIVE) if (source.catalog.has(PDFName.of(key))) removed.add(key);
  const names = source.catalog.lookupMaybe(PDFName.of('Names'), PDFDict);
  for (const key of ['JavaScript', 'EmbeddedFiles']) if (names?.has(PDFName.of(key))) removed.add(key);
  // Stripped on the source pages before copying, so the annotations' objects are never copied at all.
  for (const page of source.getPages()) {
    for (const key of PAGE_ACTIVE) {
      const value = page.node.lookup(PDFName.of(key));
      if (value === undefined) continue;
      // An empty annotation list (pdf-lib writes one) holds nothing to remove.
      if (!(value instanceof PDFArray) || value.size() > 0) removed.add(key === 'B' ? 'Threads' : key);
      page.node.delete(PDFName.of(key));
    }
  }
  const target = await PDFDocument.create({ updateMetadata: false });
  for (const page of await target.copyPages(source, source.getPageIndices())) target.addPage(page);
  for (const [, object] of target.context.enumerateIndirectObjects()) {
    const dict = object instanceof PDFDict ? object : object instanceof PDFStream ? object.dict : null;
    const found =
      dict && NEVER.find((key) => dict.has(PDFName.of(key)) || dict.get(PDFName.of('S'))?.toString() === `/${key}`);
    const embedded =
      object instanceof PDFRawStream && object.dict.get(PDFName.of('Type'))?.toString() === '/EmbeddedFile';
    if (found || embedded) throw new PdfRefused('the PDF holds active content that cannot be removed');
  }
  return { bytes: await target.save({ useObjectStreams: false }), pages, removed: [...removed].sort() };
}
