import {
  LineCounter,
  isAlias,
  isCollection,
  isPair,
  isScalar,
  isSeq,
  parseAllDocuments,
  visit,
  type Alias,
  type Document,
  type Node,
} from 'yaml';
import { childPath, diagnosticAt } from './diagnostics.js';
import type { Diagnostic } from './types.js';

/** Files larger than this (in UTF-8 bytes) are refused before any parsing. */
export const MAX_JOB_FILE_BYTES = 256 * 1024;

/**
 * Limit on the number of nodes of the document once every alias is expanded. A file of
 * 256 KiB holds far fewer nodes than this without aliases; an alias bomb holds billions.
 */
export const MAX_EXPANDED_NODES = 200_000;

/** Tags a job file may spell out; anything else (`!!binary`, `!custom`, `!!js/function`) is refused. */
const ALLOWED_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));

/** A syntactically valid, single-document, alias-safe job file, ready for linting. */
export interface ParsedJobFile {
  source: string;
  document: Document.Parsed;
  lineCounter: LineCounter;
  /** The node each alias stands for, resolved once (yaml's `Alias.resolve` rescans the document). */
  aliases: ReadonlyMap<Alias, Node>;
}

/** The parsed file, or the diagnostics that prevent looking at its content. */
export type ParseOutcome =
  | { ok: true; file: ParsedJobFile; warnings: Diagnostic[] }
  | { ok: false; diagnostics: Diagnostic[] };

class Refused extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

/** Offset where the tag written before a node starts (`!custom` in `key: !custom 1`). */
function tagOffset(source: string, nodeStart: number): number {
  let i = nodeStart;
  const skipSpaces = (): void => {
    while (i > 0 && /\s/.test(source[i - 1]!)) i--;
  };
  const tokenStart = (): number => {
    let j = i;
    while (j > 0 && !/[\s,[\]{}]/.test(source[j - 1]!)) j--;
    return j;
  };
  skipSpaces();
  if (source[tokenStart()] === '&') {
    i = tokenStart();
    skipSpaces();
  }
  const start = tokenStart();
  return source[start] === '!' ? start : nodeStart;
}

function shortTag(tag: string): string {
  return tag.startsWith('tag:yaml.org,2002:') ? `!!${tag.slice('tag:yaml.org,2002:'.length)}` : tag;
}

/** The diagnostic path of `node`, from the ancestors that `visit` passes. */
function pathOf(ancestors: readonly unknown[], node: unknown): string {
  const chain = [...ancestors, node];
  let path = '';
  for (let i = 0; i < chain.length - 1; i++) {
    const here = chain[i];
    const next = chain[i + 1];
    if (isSeq(here)) path = childPath(path, here.items.indexOf(next));
    else if (isPair(here) && next === here.value && isScalar(here.key)) path = childPath(path, String(here.key.value));
  }
  return path;
}

function checkNodes(file: ParsedJobFile, aliases: Map<Alias, Node>, diagnostics: Diagnostic[]): void {
  const { source, document, lineCounter } = file;
  const anchors = new Map<string, Node>();
  visit(document, {
    Node(_key, node, ancestors) {
      if (node.tag !== undefined && !ALLOWED_TAGS.has(node.tag)) {
        const at = tagOffset(source, node.range![0]);
        const message = `tag ${shortTag(node.tag)} is not allowed: a job file holds plain strings, numbers, booleans, lists and mappings`;
        diagnostics.push(diagnosticAt(lineCounter, at, pathOf(ancestors, node), message));
      }
      if (isAlias(node)) {
        const target = anchors.get(node.source);
        if (target === undefined) {
          const message = `alias *${node.source} refers to no anchor &${node.source} defined before it (a value that starts with * must be quoted)`;
          diagnostics.push(diagnosticAt(lineCounter, node.range![0], pathOf(ancestors, node), message));
        } else {
          aliases.set(node, target);
        }
      } else if (node.anchor !== undefined) {
        anchors.set(node.anchor, node);
      }
    },
  });
}

/** Counts the nodes of the document with aliases expanded, stopping past the limit. */
function checkExpansion(file: ParsedJobFile, diagnostics: Diagnostic[]): void {
  const sizes = new Map<Node, number>();
  const open = new Set<Node>();
  const size = (node: unknown): number => {
    if (isPair(node)) return size(node.key) + size(node.value);
    if (!isCollection(node) && !isScalar(node) && !isAlias(node)) return 0;
    const known = sizes.get(node);
    if (known !== undefined) return known;
    const offset = node.range?.[0] ?? 0;
    const target = isAlias(node) ? file.aliases.get(node) : undefined;
    if (target !== undefined && open.has(target)) throw new Refused('this alias refers to a node that contains it', offset);
    open.add(node);
    let n = 1;
    if (isAlias(node)) n = size(target);
    else if (isCollection(node)) for (const item of node.items) n += size(item);
    open.delete(node);
    if (n > MAX_EXPANDED_NODES) {
      throw new Refused(`aliases expand the file to more than ${MAX_EXPANDED_NODES} nodes (an alias bomb?)`, offset);
    }
    sizes.set(node, n);
    return n;
  };
  try {
    size(file.document.contents);
  } catch (error) {
    if (error instanceof Refused) diagnostics.push(diagnosticAt(file.lineCounter, error.offset, '', error.message));
    else if (error instanceof RangeError) diagnostics.push(diagnosticAt(file.lineCounter, 0, '', 'the file nests too deeply'));
    else throw error;
  }
}

/**
 * Parses a job file into a YAML document with positions. Refuses, with diagnostics: files
 * over `MAX_JOB_FILE_BYTES`, empty files, YAML syntax errors, several documents, tags other
 * than the core ones, aliases without an anchor and alias bombs. Keys are not yet checked.
 */
export function parseJobFile(source: string): ParseOutcome {
  const lineCounter = new LineCounter();
  const bytes = Buffer.byteLength(source, 'utf8');
  if (bytes > MAX_JOB_FILE_BYTES) {
    const message = `the file is ${bytes} bytes long; the limit is ${MAX_JOB_FILE_BYTES} bytes (256 KiB)`;
    return { ok: false, diagnostics: [{ line: 1, column: 1, path: '', message, severity: 'error' }] };
  }
  const parsed = parseAllDocuments(source, { lineCounter, uniqueKeys: false, prettyErrors: false, merge: false });
  const documents = Array.isArray(parsed) ? parsed : [];
  if (documents.length === 0) {
    const message = 'the file is empty: expected a mapping with a "jobs" list';
    return { ok: false, diagnostics: [{ line: 1, column: 1, path: '', message, severity: 'error' }] };
  }
  const diagnostics: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  const errorLines = new Set<number>();
  for (const document of documents) {
    for (const error of document.errors) {
      const hint = /alias/i.test(error.message) ? ' (a value that starts with *, such as */5 * * * *, must be quoted)' : '';
      const message =
        error.code === 'RESOURCE_EXHAUSTION' ? 'the file nests too deeply' : `YAML syntax error: ${error.message}${hint}`;
      const diagnostic = diagnosticAt(lineCounter, error.pos[0], '', message);
      // One error per line: yaml reports a cascade for a single mistake (`key: */5 * *`).
      if (!errorLines.has(diagnostic.line)) diagnostics.push(diagnostic);
      errorLines.add(diagnostic.line);
    }
    for (const warning of document.warnings) {
      if (warning.code === 'TAG_RESOLVE_FAILED') continue; // reported by checkNodes, at the tag
      warnings.push(diagnosticAt(lineCounter, warning.pos[0], '', `YAML: ${warning.message}`, 'warning'));
    }
  }
  if (documents.length > 1) {
    const message = `a job file holds one YAML document, found ${documents.length}: put every job in the one "jobs" list`;
    diagnostics.push(diagnosticAt(lineCounter, documents[1]!.range[0], '', message));
  }
  if (diagnostics.length > 0) return { ok: false, diagnostics: [...diagnostics, ...warnings] };

  const aliases = new Map<Alias, Node>();
  const file: ParsedJobFile = { source, document: documents[0]!, lineCounter, aliases };
  checkNodes(file, aliases, diagnostics);
  if (diagnostics.length === 0) checkExpansion(file, diagnostics);
  if (diagnostics.length > 0) return { ok: false, diagnostics: [...diagnostics, ...warnings] };
  return { ok: true, file, warnings };
}
