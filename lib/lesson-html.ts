// A lesson's Markdown turned into the HTML the student portal shows: rendered by markdown-it, then
// sanitised by sanitize-html with an allowlist (no scripts, styles, frames, forms or event attributes;
// links only to http, https, mailto and in-page anchors; images only from the module's own files).
// Relative links and images name the module's content files and are rewritten to their file route
// (`guide.pdf` → `/api/modules/{moduleId}/files/guide.pdf`); the old system's `(H5P: id)` marker becomes
// an embed placeholder `<div class="h5p-embed" data-h5p-activity="id">`, resolved when the lesson is read (a span
// when the marker sits inside a sentence).
//
// Raw HTML in the Markdown is allowed through markdown-it on purpose (the old lessons hold some) and
// meets the sanitiser like everything else: the sanitiser is the one line of defence every byte
// crosses, whatever the renderer let through. RENDERER_VERSION names this configuration: HTML stored
// by another version is rendered again when read (lib/lessons.ts).
import MarkdownIt from 'markdown-it';
import sanitizeHtml from 'sanitize-html';
import { CONTENT_FILE_NAME } from './content-files';

/** Bump whenever the renderer, the sanitiser's allowlist or the rewriting changes. */
export const RENDERER_VERSION = 2;

/** An H5P activity's id as lessons name it: `(H5P: tooth-anatomy)` or ``(H5P: `tooth-anatomy`)``. */
export const H5P_ACTIVITY_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const INLINE_MARKER = /\(H5P:[ \t]*([A-Za-z0-9][A-Za-z0-9_-]{0,63})[ \t]*\)/;

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):/;
const LINK_SCHEMES = new Set(['http', 'https', 'mailto']);

const markdown = new MarkdownIt({ html: true, linkify: true, typographer: false });

// The marker, found in the text of paragraphs once inline parsing is done (never inside code spans or
// blocks, which are tokens of their own): `(H5P: id)` in one text token, or ``(H5P: `id`)`` as text,
// code span, text.
type Token = ReturnType<typeof markdown.parseInline>[number];
type TokenClass = new (type: string, tag: string, nesting: -1 | 0 | 1) => Token;

function embedToken(Token: TokenClass, activityId: string): Token {
  const token = new Token('h5p_embed', 'div', 0);
  token.meta = { activityId };
  return token;
}

function textToken(Token: TokenClass, content: string): Token[] {
  if (content === '') return [];
  const token = new Token('text', '', 0);
  token.content = content;
  return [token];
}

/** The children of one inline token with every marker replaced by an embed token. */
function withEmbeds(children: Token[], Token: TokenClass): Token[] {
  const out: Token[] = [];
  for (let i = 0; i < children.length; i++) {
    const child = children[i] as Token;
    const [code, after] = [children[i + 1], children[i + 2]];
    const opening = child.type === 'text' ? /\(H5P:[ \t]*$/.exec(child.content) : null;
    const closing = after?.type === 'text' ? /^[ \t]*\)/.exec(after.content) : null;
    if (opening && code?.type === 'code_inline' && H5P_ACTIVITY_ID.test(code.content) && closing && after) {
      out.push(...textToken(Token, child.content.slice(0, opening.index)), embedToken(Token, code.content));
      after.content = after.content.slice(closing[0].length);
      i += 1;
      continue;
    }
    if (child.type !== 'text') {
      out.push(child);
      continue;
    }
    let rest = child.content;
    for (let match = INLINE_MARKER.exec(rest); match; match = INLINE_MARKER.exec(rest)) {
      out.push(...textToken(Token, rest.slice(0, match.index)), embedToken(Token, match[1] as string));
      rest = rest.slice(match.index + match[0].length);
    }
    out.push(...textToken(Token, rest));
  }
  return out;
}

markdown.core.ruler.push('h5p_embeds', (state) => {
  const Token = state.Token as unknown as TokenClass;
  const tokens = state.tokens;
  tokens.forEach((token, i) => {
    if (token.type !== 'inline' || !token.children) return;
    token.children = withEmbeds(token.children, Token);
    // A paragraph that holds nothing but the marker becomes the block itself (a div may not sit in a p).
    const [open, close] = [tokens[i - 1], tokens[i + 1]];
    const shown = token.children.filter((child) => !(child.type === 'text' && child.content.trim() === ''));
    if (open?.type === 'paragraph_open' && close?.type === 'paragraph_close' && shown.length === 1) {
      const embed = shown[0];
      if (embed?.type === 'h5p_embed') {
        embed.meta = { ...embed.meta, block: true };
        open.hidden = true;
        close.hidden = true;
      }
    }
  });
});

const escapeAttribute = (value: string) => value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

markdown.renderer.rules.h5p_embed = (tokens, index) => {
  const meta = tokens[index]?.meta as { activityId: string; block?: boolean };
  // Inside a sentence a span: a div would end the paragraph.
  const tag = meta.block ? 'div' : 'span';
  return `<${tag} class="h5p-embed" data-h5p-activity="${escapeAttribute(meta.activityId)}"></${tag}>`;
};

/** The route a module's content file is served from. */
export function fileRoute(moduleId: string, name: string): string {
  return `/api/modules/${moduleId}/files/${encodeURIComponent(name)}`;
}

/**
 * What a link or image address in a lesson becomes: a file route for a relative name, the address
 * itself for an allowed absolute one, null for anything else (the attribute is dropped).
 */
export function rewriteAddress(raw: string, moduleId: string, kind: 'link' | 'image'): string | null {
  // Browsers ignore control characters and spaces around and inside a scheme: so does the check.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: exactly what is being removed
  const address = raw.replace(/[\u0000-\u0020\u007f-\u009f]/g, '');
  if (address === '') return null;
  const scheme = SCHEME.exec(address)?.[1]?.toLowerCase();
  if (scheme !== undefined) return kind === 'link' && LINK_SCHEMES.has(scheme) ? raw.trim() : null;
  if (address.startsWith('#')) return kind === 'link' ? address : null;
  // A path on this origin or another (`/api/…`, `//host/…`, `\\host`) is no content file.
  if (address.startsWith('/') || address.startsWith('\\')) return null;
  const name = fileNameOf(raw.trim().split(/[?#]/)[0] ?? '');
  return name === null ? null : fileRoute(moduleId, name);
}

/**
 * The content file a relative address names (`./tooth.png` → `tooth.png`), or null: a module's files
 * have one-segment names (lib/content-files.ts), so `img/tooth.png` or `../x` names none.
 */
function fileNameOf(relative: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(relative);
  } catch {
    return null;
  }
  const name = decoded.replace(/^(\.\/)+/, '');
  return CONTENT_FILE_NAME.test(name) ? name : null;
}

const ALLOWED_TAGS = [
  ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'p', 'br', 'hr', 'blockquote', 'pre', 'code', 'kbd', 'samp'],
  ...['em', 'strong', 'b', 'i', 'u', 's', 'del', 'ins', 'mark', 'sub', 'sup', 'small', 'abbr', 'span'],
  ...['ul', 'ol', 'li', 'dl', 'dt', 'dd', 'a', 'img', 'figure', 'figcaption', 'details', 'summary', 'div'],
  ...['table', 'thead', 'tbody', 'tfoot', 'tr', 'th', 'td', 'caption'],
];

function sanitizerOptions(moduleId: string): sanitizeHtml.IOptions {
  return {
    allowedTags: ALLOWED_TAGS,
    allowedAttributes: {
      a: ['href', 'title', 'rel'],
      img: ['src', 'alt', 'title', 'width', 'height'],
      ol: ['start'],
      th: ['colspan', 'rowspan', 'scope'],
      td: ['colspan', 'rowspan'],
      abbr: ['title'],
      code: ['class'],
      div: ['class', 'data-h5p-activity'],
      span: ['class', 'data-h5p-activity'],
    },
    allowedClasses: { code: ['language-*'], div: ['h5p-embed'], span: ['h5p-embed'] },
    allowedSchemes: [...LINK_SCHEMES],
    allowedSchemesByTag: { img: [] },
    allowProtocolRelative: false,
    // Elements whose text must go with them, not just their tags.
    nonTextTags: ['script', 'style', 'textarea', 'option', 'noscript', 'iframe', 'object', 'svg', 'math', 'template'],
    disallowedTagsMode: 'discard',
    transformTags: {
      a: (tagName, attribs) => {
        const href = attribs.href === undefined ? null : rewriteAddress(attribs.href, moduleId, 'link');
        const { href: _dropped, ...rest } = attribs;
        return {
          tagName,
          attribs: href === null ? rest : { ...rest, href, rel: 'noopener noreferrer nofollow' },
        };
      },
      img: (tagName, attribs) => {
        const src = attribs.src === undefined ? null : rewriteAddress(attribs.src, moduleId, 'image');
        const { src: _dropped, ...rest } = attribs;
        return { tagName, attribs: src === null ? rest : { ...rest, src } };
      },
    },
    // An image with no address left shows nothing but a broken frame: drop it.
    exclusiveFilter: (frame) => frame.tag === 'img' && !frame.attribs.src,
  };
}

/** A lesson's Markdown as sanitised HTML for the module `moduleId` (its file routes). */
export function renderLesson(source: string, moduleId: string): string {
  return sanitizeHtml(markdown.render(source), sanitizerOptions(moduleId));
}

/**
 * A placeholder exactly as the renderer writes it and the sanitiser leaves it: empty, its class, its id.
 * Only this form is resolved when a lesson is read (lib/lessons.ts); anything else an author writes by
 * hand with that class stays the inert element the sanitiser made of it.
 */
const PLACEHOLDER = /<(div|span) class="h5p-embed" data-h5p-activity="([A-Za-z0-9][A-Za-z0-9_-]{0,63})"><\/\1>/g;

/** The H5P activity ids a lesson's placeholders name, each once, in order of first appearance. */
export function embeddedActivities(html: string): string[] {
  return [...new Set([...html.matchAll(PLACEHOLDER)].map((match) => match[2] as string))];
}

/** The lesson's HTML with each placeholder replaced by what `embed` makes of its id (inline: a span's). */
export function resolvePlaceholders(html: string, embed: (activityId: string, inline: boolean) => string): string {
  return html.replace(PLACEHOLDER, (_whole, tag: string, activityId: string) => embed(activityId, tag === 'span'));
}
