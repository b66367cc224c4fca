// What text a request may carry: one rule for every free-text field (names, titles, descriptions,
// reasons, codes, search words) and one for numbers written in a query string or path. Request
// schemas in functions/*.ts build their fields from these, so a value is judged the same way
// wherever it enters, and what is stored reads and sorts the same way it displays.
//
// Free text is NFC-normalised (a name typed as "e + combining acute" and one typed as "é" are the
// same stored value) and trimmed of ordinary white space, then refused when it holds anything a person
// does not type on purpose and that makes a value display as something other than what it is:
// - control characters (C0, DEL, C1), except line feed and tab in a field declared multi-line
//   (a CR LF line break is kept as LF);
// - the byte-order mark and other invisible format characters: zero-width space and word joiner,
//   soft hyphen, bidirectional marks, embeddings, overrides and isolates, line and paragraph
//   separators, tag characters. The zero-width (non-)joiners are the one exception, and only where
//   they change what is written: between two letters of a script whose spelling needs them (Persian
//   "می‌خواهم", Hindi and other Indic scripts), and a ZWJ inside an emoji sequence ("👩‍⚕️");
// - more than MAX_COMBINING_RUN combining marks in a row ("Zalgo" text that spills over the lines
//   around it); real writing stacks at most three or four after NFC (Vietnamese "ễ" is one character).
// Lengths are counted on the normalised, trimmed value, as the fields have always been bounded; the
// OpenAPI document shows those lengths (the schema's metadata), not the looser bound on the raw input.
import { z } from 'zod';

/** The longest run of combining marks a value may hold (after NFC). */
export const MAX_COMBINING_RUN = 4;

/** Read before any normalising work, so an enormous value costs nothing: a multiple of the real limit. */
const rawLimit = (max: number) => Math.max(1_000, max * 4);

// Ordinary white space only: JavaScript's String.prototype.trim would also silently strip a BOM.
const EDGE_SPACE = /^[\p{White_Space}]+|[\p{White_Space}]+$/gu;
const CONTROL_SINGLE_LINE = /\p{Cc}/u;
const CONTROL_MULTI_LINE = /[^\P{Cc}\n\t]/u;
const JOINER = /[\u200C\u200D]/u;
// Scripts in which ZWNJ/ZWJ select a letter form (RFC 5892 allows them in the same contexts).
const JOINING_LETTER =
  /[\p{Script=Arabic}\p{Script=Syriac}\p{Script=Nko}\p{Script=Mongolian}\p{Script=Devanagari}\p{Script=Bengali}\p{Script=Gurmukhi}\p{Script=Gujarati}\p{Script=Oriya}\p{Script=Tamil}\p{Script=Telugu}\p{Script=Kannada}\p{Script=Malayalam}\p{Script=Sinhala}\p{Script=Myanmar}\p{Script=Khmer}]/u;
const FORMAT_OR_SEPARATOR = /[\p{Cf}\p{Zl}\p{Zp}]/u;
const COMBINING_RUN = new RegExp(`\\p{M}{${MAX_COMBINING_RUN + 1}}`, 'u');
const LONE_SURROGATE = /\p{Cs}/u;

const PICTOGRAPH = /\p{Extended_Pictographic}/u;
const ZWJ = '\u200D';
// Marks (variation selectors included) and skin-tone modifiers belong to the character before them.
const ATTACHED = /[\p{M}\p{Emoji_Modifier}]/u;

/**
 * Whether the joiner at `index` of `chars` has a purpose: between two letters (with their marks) of a
 * joining script, or a ZWJ between two pictographs of an emoji sequence ("👩‍⚕️").
 */
function joinerHasPurpose(chars: readonly string[], index: number): boolean {
  let before = index - 1;
  while (before >= 0 && ATTACHED.test(chars[before] as string)) before--;
  const previous = chars[before];
  const next = chars[index + 1];
  if (previous === undefined || next === undefined) return false;
  if (JOINING_LETTER.test(previous) && JOINING_LETTER.test(next)) return true;
  return chars[index] === ZWJ && PICTOGRAPH.test(previous) && PICTOGRAPH.test(next);
}

/** The first invisible format character that is not a joiner inside a word, or undefined. */
function strayFormatCharacter(value: string): string | undefined {
  if (!FORMAT_OR_SEPARATOR.test(value)) return undefined;
  const chars = [...value];
  return chars.find((char, i) => FORMAT_OR_SEPARATOR.test(char) && !(JOINER.test(char) && joinerHasPurpose(chars, i)));
}

export interface TextOptions {
  /** At most this many characters (UTF-16 code units, as zod and the fields have always counted). */
  max: number;
  /** At least this many characters after trimming; 1 unless said otherwise (0 allows an empty value). */
  min?: number;
  /** Line feeds and tabs allowed (descriptions, reasons); everything else is one line. */
  multiline?: boolean;
  /** A further rule on the normalised value (codes, names), with the message a client sees. */
  pattern?: { regex: RegExp; message: string };
}

function normalise(raw: string, multiline: boolean): string {
  const unified = multiline ? raw.replace(/\r\n/g, '\n') : raw;
  return unified.normalize('NFC').replace(EDGE_SPACE, '');
}

/**
 * A free-text field: a zod schema whose output is the normalised value. Errors name what is wrong,
 * and the endpoint wrapper names the field (`body.name`).
 */
export function text(options: TextOptions) {
  const { max, min = 1, multiline = false, pattern } = options;
  const controls = multiline ? CONTROL_MULTI_LINE : CONTROL_SINGLE_LINE;
  const checked = z
    .string()
    .min(min, min === 1 ? 'Must not be empty' : `At least ${min} characters`)
    .max(max, `At most ${max} characters`)
    .superRefine((value, ctx) => {
      const problem = textProblem(value, controls);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });
  return z
    .string()
    .max(rawLimit(max), `At most ${max} characters`)
    .transform((raw) => normalise(raw, multiline))
    .pipe(pattern ? checked.regex(pattern.regex, pattern.message) : checked)
    .meta({ minLength: min, maxLength: max });
}

function textProblem(value: string, controls: RegExp): string | null {
  if (LONE_SURROGATE.test(value)) return 'Must be valid Unicode text';
  if (controls.test(value)) {
    return controls === CONTROL_MULTI_LINE
      ? 'Must not contain control characters other than line breaks and tabs'
      : 'Must be one line without control characters';
  }
  if (strayFormatCharacter(value) !== undefined) {
    return 'Must not contain invisible formatting characters (byte-order mark, zero-width or direction marks)';
  }
  if (COMBINING_RUN.test(value)) return `At most ${MAX_COMBINING_RUN} combining marks in a row`;
  return null;
}

/** One line of free text: a title, a name, a code, a search word. */
export const singleLine = (max: number, options: Omit<TextOptions, 'max' | 'multiline'> = {}) =>
  text({ ...options, max });

/** Free text over several lines: a description, a reason. */
export const multiLine = (max: number, options: Omit<TextOptions, 'max' | 'multiline'> = {}) =>
  text({ ...options, max, multiline: true });

// ---------------------------------------------------------------------------------------------------
// Numbers in query strings and paths
// ---------------------------------------------------------------------------------------------------

/**
 * A whole number written in decimal digits (`?days=30`), as a query or path value arrives: text.
 * `z.coerce.number()` would also read `0x10` as 16, `1e1` as 10, ` 7 ` as 7 and `` as 0; those are
 * refused here. Leading zeros are harmless (`007` is 7).
 */
export function decimalInt(options: { min: number; max: number }) {
  const { min, max } = options;
  return z
    .string()
    .regex(/^[0-9]{1,15}$/, 'Write a whole number in decimal digits')
    .transform(Number)
    .pipe(z.number().int().min(min, `At least ${min}`).max(max, `At most ${max}`))
    .meta({ description: `A whole number from ${min} to ${max}, in decimal digits` });
}
