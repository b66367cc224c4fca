// The school's PDF documents (transcripts now; statements, receipts and agreements next): a document is
// a list of blocks — headings, paragraphs, label/value rows, tables — laid out top to bottom on US
// Letter pages, breaking pages where needed (a table repeats its header), with a footer and
// "Page n of m" on every page. It knows nothing of any area: callers say what to print. A document
// can be sealed with the school's certificate (lib/pdf-seal.ts), and a sealed file verified.
//
// Text never breaks a document: each string is drawn in Helvetica when it can be (built into every
// reader, nothing embedded), else in DejaVu Sans (Latin with Vietnamese, Greek, Cyrillic), embedded as
// a subset only when some string needs it; a character neither font has (e.g. CJK) prints as "?", and
// the document then ends with the caller's note saying so. Control characters print as spaces.
//
// pdf-lib and fontkit are loaded on the first document, not at import: they cost about a second to
// load, which no other request of the app should pay on a cold start.
//
// Why one file over 350 lines: layout, page breaking and font fallback all rest on the same text
// measuring and page state; a split would pass that state between modules with no caller gaining.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { PDFDocument, PDFFont, PDFImage, PDFPage } from 'pdf-lib';
import { addSealPlaceholder, seal } from './pdf-seal';

export { PdfRefused, type SanitisedPdf, sanitisePdf } from './pdf-sanitise';
export { type SealCheck, sealIdentity, verifySeal } from './pdf-seal';

export type Block =
  /** Level 1: the document's title line (16 pt bold); level 2: a section heading (12 pt bold). */
  | { kind: 'heading'; text: string; level: 1 | 2 }
  /** A paragraph, wrapped to the page width. */
  | { kind: 'text'; text: string; size?: number; bold?: boolean }
  /** Label/value rows: labels in bold in one column, values wrapped beside them. */
  | { kind: 'fields'; rows: readonly (readonly [label: string, value: string])[] }
  /** Cells are cut to their column's width with an ellipsis; the header repeats on each new page. */
  | { kind: 'table'; columns: readonly TableColumn[]; rows: readonly (readonly string[])[] }
  /** A PNG (a drawn signature), scaled to fit `maxWidth` × `maxHeight` points, keeping its proportions. */
  | { kind: 'image'; png: Uint8Array; maxWidth: number; maxHeight: number }
  | { kind: 'space'; points: number }
  | { kind: 'page-break' };

export interface TableColumn {
  title: string;
  /** Share of the line width (the shares of a table are scaled to fill it). */
  width: number;
  align?: 'left' | 'right';
}

export interface DocumentSpec {
  /** Metadata shown by viewers and indexers without opening the file: keep personal data out of it. */
  title: string;
  author: string;
  createdAt: Date;
  blocks: readonly Block[];
  /** Printed at the foot of every page, left; the page number is on the right. */
  footer?: string;
  /** Printed at the end when a character could not be drawn and was replaced by "?". */
  missingGlyphsNote?: string;
  /** Seal the file with the school's certificate (lib/pdf-seal.ts): any later change shows in a reader. */
  seal?: { reason: string; at: Date };
}

const PAGE = { width: 612, height: 792, margin: 54 }; // US Letter, 3/4 inch margins
const LINE_WIDTH = PAGE.width - 2 * PAGE.margin;
/** Room kept at the bottom of each page for the footer. */
const FOOTER_HEIGHT = 24;
const BODY_SIZE = 10;
const SMALL_SIZE = 8;
const TABLE_SIZE = 9;
/** Space between a cell's text and the next column. */
const CELL_PADDING = 8;
const LEADING = 1.35;
const HEADINGS = { 1: { size: 16, before: 0 }, 2: { size: 12, before: 6 } } as const;

type PdfLib = typeof import('pdf-lib');
type Fontkit = Parameters<PDFDocument['registerFontkit']>[0];
type Weight = 'regular' | 'bold';

const requireHere = createRequire(__filename);
let pdfLib: PdfLib | undefined;
let unicodeKit: { fontkit: Fontkit; regular: Buffer; bold: Buffer } | undefined;

function loadUnicodeKit() {
  unicodeKit ??= {
    fontkit: requireHere('@pdf-lib/fontkit') as Fontkit,
    regular: readFileSync(requireHere.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf')),
    bold: readFileSync(requireHere.resolve('dejavu-fonts-ttf/ttf/DejaVuSans-Bold.ttf')),
  };
  return unicodeKit;
}

interface Face {
  regular: PDFFont;
  bold: PDFFont;
  /** Code points both weights can draw. */
  drawable: Set<number>;
}

function faceOf(regular: PDFFont, bold: PDFFont): Face {
  const boldSet = new Set(bold.getCharacterSet());
  return { regular, bold, drawable: new Set(regular.getCharacterSet().filter((code) => boldSet.has(code))) };
}

/** Composed (NFC) so accented letters use precomposed glyphs; control characters become spaces. */
const cleaned = (text: string) => text.normalize('NFC').replace(/\p{Cc}/gu, ' ');
const drawableBy = (face: Face, text: string) => [...text].every((char) => face.drawable.has(char.codePointAt(0)!));

/** Chooses the font of each string (see the file header) and remembers whether anything became "?". */
class Typesetter {
  missingGlyphs = false;

  private constructor(
    private readonly standard: Face,
    private readonly unicode: Face | null,
  ) {}

  static async for(doc: PDFDocument, pdf: PdfLib, texts: readonly string[]): Promise<Typesetter> {
    const standard = faceOf(
      await doc.embedFont(pdf.StandardFonts.Helvetica),
      await doc.embedFont(pdf.StandardFonts.HelveticaBold),
    );
    if (texts.every((text) => drawableBy(standard, cleaned(text)))) return new Typesetter(standard, null);
    const kit = loadUnicodeKit();
    doc.registerFontkit(kit.fontkit);
    const unicode = faceOf(
      await doc.embedFont(kit.regular, { subset: true }),
      await doc.embedFont(kit.bold, { subset: true }),
    );
    return new Typesetter(standard, unicode);
  }

  /** The text as it will be drawn, and the font to draw it with. */
  set(value: string, weight: Weight): { text: string; font: PDFFont } {
    const text = cleaned(value);
    const face = drawableBy(this.standard, text) || !this.unicode ? this.standard : this.unicode;
    return { text: this.replaceMissing(text, face), font: face[weight] };
  }

  private replaceMissing(text: string, face: Face): string {
    let out = '';
    for (const char of text) {
      if (face.drawable.has(char.codePointAt(0)!)) {
        out += char;
      } else {
        out += '?';
        this.missingGlyphs = true;
      }
    }
    return out;
  }
}

/** Cuts text to `width` points with an ellipsis. */
function fitted(text: string, font: PDFFont, size: number, width: number): string {
  if (font.widthOfTextAtSize(text, size) <= width) return text;
  const chars = [...text];
  while (chars.length > 0 && font.widthOfTextAtSize(`${chars.join('')}…`, size) > width) chars.pop();
  return `${chars.join('')}…`;
}

/** Breaks text into lines of at most `width` points, at spaces; a word longer than a line is cut. */
function wrapped(text: string, font: PDFFont, size: number, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    const candidate = line === '' ? word : `${line} ${word}`;
    if (font.widthOfTextAtSize(candidate, size) <= width) {
      line = candidate;
    } else {
      if (line !== '') lines.push(line);
      line = fitted(word, font, size, width);
    }
  }
  lines.push(line);
  return lines;
}

/** Every string a document prints, so the typesetter can choose its fonts before drawing. */
function textsOf(spec: DocumentSpec): string[] {
  const texts = spec.blocks.flatMap((block): readonly string[] => {
    switch (block.kind) {
      case 'heading':
      case 'text':
        return [block.text];
      case 'fields':
        return block.rows.flat();
      case 'table':
        return [...block.columns.map((column) => column.title), ...block.rows.flat()];
      default:
        return [];
    }
  });
  return [...texts, spec.footer ?? '', spec.missingGlyphsNote ?? ''];
}

/** Lays blocks out on pages: a cursor `y` going down, a new page when the next line does not fit. */
class Layout {
  private page: PDFPage;
  private y: number;

  constructor(
    private readonly doc: PDFDocument,
    private readonly type: Typesetter,
  ) {
    this.page = this.newPage();
    this.y = PAGE.height - PAGE.margin;
  }

  private newPage(): PDFPage {
    this.page = this.doc.addPage([PAGE.width, PAGE.height]);
    this.y = PAGE.height - PAGE.margin;
    return this.page;
  }

  /** Moves down by `height`, on a new page when it would reach the footer; returns the baseline. */
  private advance(height: number): { fresh: boolean } {
    const fresh = this.y - height < PAGE.margin + FOOTER_HEIGHT;
    if (fresh) this.newPage();
    this.y -= height;
    return { fresh };
  }

  space(points: number): void {
    this.y -= points;
  }

  pageBreak(): void {
    this.newPage();
  }

  image(image: PDFImage, maxWidth: number, maxHeight: number): void {
    const scale = Math.min(maxWidth / image.width, maxHeight / image.height, 1);
    const [width, height] = [image.width * scale, image.height * scale];
    this.advance(height + 4);
    this.page.drawImage(image, { x: PAGE.margin, y: this.y, width, height });
  }

  text(value: string, options: { size?: number; weight?: Weight; x?: number; width?: number } = {}): void {
    const size = options.size ?? BODY_SIZE;
    const { text, font } = this.type.set(value, options.weight ?? 'regular');
    for (const line of wrapped(text, font, size, options.width ?? LINE_WIDTH)) {
      this.advance(size * LEADING);
      this.page.drawText(line, { x: PAGE.margin + (options.x ?? 0), y: this.y, size, font });
    }
  }

  fields(rows: readonly (readonly [string, string])[]): void {
    const labelWidth = Math.min(
      LINE_WIDTH * 0.3,
      Math.max(
        ...rows.map(([label]) => {
          const { text, font } = this.type.set(label, 'bold');
          return font.widthOfTextAtSize(text, BODY_SIZE);
        }),
      ) + 12,
    );
    for (const [label, value] of rows) {
      const { text: labelText, font: labelFont } = this.type.set(label, 'bold');
      const { text, font } = this.type.set(value, 'regular');
      const lines = wrapped(text, font, BODY_SIZE, LINE_WIDTH - labelWidth);
      lines.forEach((line, i) => {
        this.advance(BODY_SIZE * LEADING);
        if (i === 0) this.page.drawText(labelText, { x: PAGE.margin, y: this.y, size: BODY_SIZE, font: labelFont });
        this.page.drawText(line, { x: PAGE.margin + labelWidth, y: this.y, size: BODY_SIZE, font });
      });
    }
  }

  table(columns: readonly TableColumn[], rows: readonly (readonly string[])[]): void {
    const total = columns.reduce((sum, column) => sum + column.width, 0);
    let x = 0;
    const cells = columns.map((column) => {
      const width = (column.width / total) * LINE_WIDTH;
      const cell = { x, width, align: column.align ?? 'left' };
      x += width;
      return cell;
    });
    const row = (values: readonly string[], weight: Weight) => {
      cells.forEach((cell, i) => {
        const { text, font } = this.type.set(values[i] ?? '', weight);
        const shown = fitted(text, font, TABLE_SIZE, cell.width - CELL_PADDING);
        const offset =
          cell.align === 'right' ? cell.width - CELL_PADDING - font.widthOfTextAtSize(shown, TABLE_SIZE) : 0;
        this.page.drawText(shown, { x: PAGE.margin + cell.x + offset, y: this.y, size: TABLE_SIZE, font });
      });
    };
    const header = columns.map((column) => column.title);
    const height = TABLE_SIZE * LEADING + 2;
    this.advance(height);
    row(header, 'bold');
    for (const values of rows) {
      if (this.advance(height).fresh) {
        row(header, 'bold');
        this.advance(height);
      }
      row(values, 'regular');
    }
  }
}

function drawFooters(doc: PDFDocument, type: Typesetter, footer: string | undefined): void {
  const pages = doc.getPages();
  const y = PAGE.margin - FOOTER_HEIGHT / 2;
  pages.forEach((page, i) => {
    const number = type.set(`Page ${i + 1} of ${pages.length}`, 'regular');
    const numberWidth = number.font.widthOfTextAtSize(number.text, SMALL_SIZE);
    page.drawText(number.text, { x: PAGE.width - PAGE.margin - numberWidth, y, size: SMALL_SIZE, font: number.font });
    if (footer) {
      const { text, font } = type.set(footer, 'regular');
      const shown = fitted(text, font, SMALL_SIZE, LINE_WIDTH - numberWidth - 2 * CELL_PADDING);
      page.drawText(shown, { x: PAGE.margin, y, size: SMALL_SIZE, font });
    }
  });
}

/** Renders a document to the bytes of a PDF file. */
export async function renderPdf(spec: DocumentSpec): Promise<Uint8Array> {
  pdfLib ??= requireHere('pdf-lib') as PdfLib;
  const doc = await pdfLib.PDFDocument.create();
  doc.setTitle(spec.title);
  doc.setAuthor(spec.author);
  doc.setProducer('AADA LMS API');
  doc.setCreationDate(spec.createdAt);
  // The same spec renders the same bytes (pdf-lib would stamp the modification date with the clock).
  doc.setModificationDate(spec.createdAt);
  const type = await Typesetter.for(doc, pdfLib, textsOf(spec));
  const layout = new Layout(doc, type);
  for (const block of spec.blocks) {
    switch (block.kind) {
      case 'heading':
        layout.space(HEADINGS[block.level].before);
        layout.text(block.text, { size: HEADINGS[block.level].size, weight: 'bold' });
        break;
      case 'text':
        layout.text(block.text, { size: block.size ?? BODY_SIZE, weight: block.bold ? 'bold' : 'regular' });
        break;
      case 'fields':
        layout.fields(block.rows);
        break;
      case 'table':
        layout.table(block.columns, block.rows);
        break;
      case 'image':
        layout.image(await doc.embedPng(block.png), block.maxWidth, block.maxHeight);
        break;
      case 'space':
        layout.space(block.points);
        break;
      case 'page-break':
        layout.pageBreak();
        break;
    }
  }
  if (type.missingGlyphs && spec.missingGlyphsNote) {
    layout.space(8);
    layout.text(spec.missingGlyphsNote, { size: SMALL_SIZE });
  }
  drawFooters(doc, type, spec.footer);
  if (!spec.seal) return doc.save();
  addSealPlaceholder(doc, spec.seal.reason, spec.seal.at);
  return seal(await doc.save({ useObjectStreams: false }), spec.seal.at);
}

/** Whether a PNG decodes as the renderer would draw it (a signature is checked before it is stored). */
export async function pngDecodes(png: Uint8Array): Promise<boolean> {
  pdfLib ??= requireHere('pdf-lib') as PdfLib;
  try {
    const doc = await pdfLib.PDFDocument.create();
    const image = await doc.embedPng(png);
    await image.embed();
    return true;
  } catch {
    return false;
  }
}
