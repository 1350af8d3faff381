/**
 * The CSV files administrators give umconnect (link imports, link passwords, group mailbox
 * maps), read the way spreadsheets write them, through csv-parse (https://csv.js.org/parse/):
 *
 * - Excel "CSV UTF-8" starts with a UTF-8 byte-order mark; plain "CSV" is in the Windows ANSI
 *   code page (1252 in Western Europe) without one; "Unicode Text" is UTF-16LE with a BOM.
 *   Bytes that are not valid UTF-8 are read as Windows-1252.
 * - Excel separates fields with the regional list separator: `,` in English locales, `;` where
 *   the decimal separator is a comma (German, French, Dutch, ...). The separator is the one that
 *   splits the header line into the expected column names (else the most frequent of `,` `;`
 *   tab), and an Excel `sep=;` first line is honoured.
 * - CRLF (Excel) or LF (Google Sheets) line ends; quoted fields with doubled quotes and line
 *   breaks inside (RFC 4180); blank rows, also Excel's `;;;` rows of formatted empty cells, are
 *   skipped; empty trailing cells and columns after the expected ones (notes, names) are ignored.
 * Every problem is reported with its line number (the line the record starts on), all at once.
 * Fixtures of each export, with where the format is documented: test/fixtures/csv/README.md.
 */
import { parse } from "csv-parse/sync";

export interface CsvRow { line: number; cells: string[] }
export interface CsvTable { rows: CsvRow[]; problems: string[]; delimiter: string }

const CANDIDATES = [",", ";", "\t"] as const;

/** csv-parse's syntax errors (https://csv.js.org/parse/errors/), said with what to do. */
const SYNTAX: Record<string, string> = {
  INVALID_OPENING_QUOTE: "a quote inside an unquoted field: quote the whole field and double the quote (\"\")",
  CSV_INVALID_CLOSING_QUOTE: "text after a closing quote: quote the whole field and double inner quotes (\"\")",
  CSV_QUOTE_NOT_CLOSED: "a quoted field is never closed: the rest of the file was read as part of it",
};

/** File bytes to text: UTF-16 by its BOM, UTF-8 (BOM or not), else Windows-1252. */
export function decodeCsvFile(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder("utf-16le").decode(bytes.subarray(2));
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder("utf-16be").decode(bytes.subarray(2));
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder("windows-1252").decode(bytes);
  }
}

/** The header line's separator: the one that yields the expected names, else the most frequent outside quotes. */
function chooseDelimiter(firstLine: string, expected: readonly string[]): string {
  const unquoted = firstLine.replace(/"[^"]*"/g, "");
  const names = (d: string) => firstLine.split(d).map((h) => h.trim().replace(/^"|"$/g, ""));
  const exact = CANDIDATES.find((d) => expected.every((h, i) => names(d)[i] === h));
  if (exact) return exact;
  return [...CANDIDATES].sort((a, b) => unquoted.split(b).length - unquoted.split(a).length)[0]!;
}

/**
 * Reads a CSV whose first line must start with `expected` (more columns after them are ignored). Rows are
 * returned with their cells as written (callers trim where spaces cannot matter).
 */
export function readCsvTable(input: string, expected: readonly string[]): CsvTable {
  let text = input.replace(/^\uFEFF/, "");
  const problems: string[] = [];
  let lineOffset = 0;
  let delimiter: string | undefined;
  // Excel's separator hint (`sep=;` as the first line); not part of the data.
  const hint = /^sep=(.)\r?\n/i.exec(text);
  if (hint) { delimiter = hint[1]!; text = text.slice(hint[0].length); lineOffset = 1; }
  const firstLine = text.split(/\r\n|\r|\n/, 1)[0] ?? "";
  delimiter ??= chooseDelimiter(firstLine, expected);
  // Excel writes CRLF row ends and LF for a line break inside a cell; Google Sheets LF or CRLF.
  const recordDelimiter = /^[^\r\n]*\r\n/.test(text) ? "\r\n" : /^[^\r\n]*\r(?!\n)/.test(text) ? "\r" : "\n";
  const records = parse(text, {
    delimiter, record_delimiter: recordDelimiter, bom: true, relax_column_count: true, skip_empty_lines: false, info: true, raw: true,
    skip_records_with_error: true,
    on_skip: (e) => { if (e) problems.push(`line ${(e as { lines?: number }).lines ?? "?"}: ${SYNTAX[(e as { code?: string }).code ?? ""] ?? e.message}`); return undefined; },
  }) as unknown as Array<{ record: string[]; info: { lines: number }; raw: string }>;
  // info.lines is the line a record ends on; a quoted line break makes it start earlier.
  const all = records.map((r) => ({ line: r.info.lines - (r.raw.replace(/(\r\n|\r|\n)$/, "").match(/\r\n|\r|\n/g)?.length ?? 0) + lineOffset, cells: r.record }));
  const header = all[0];
  // The expected columns first; more named columns after them (notes, names) are ignored.
  const width = header ? trimTrailingEmpty(header.cells).length : 0;
  if (!header || header.line !== 1 + lineOffset || expected.some((h, i) => header.cells[i]?.trim() !== h)) {
    const sep = delimiter === "\t" ? "tab" : `"${delimiter}"`;
    return { rows: [], delimiter, problems: [`line ${1 + lineOffset}: the header must start with ${expected.join(",")} (separated by , or ;), found ${JSON.stringify(header?.cells.join(delimiter) ?? "")} (separator ${sep})`] };
  }
  const rows: CsvRow[] = [];
  for (const r of all.slice(1)) {
    if (r.cells.every((c) => !c.trim())) continue; // a blank row (Excel writes `;;;` for formatted empty cells)
    // Empty cells after the last column are an export artefact, not data.
    const n = trimTrailingEmpty(r.cells).length;
    if (n < expected.length || n > Math.max(width, expected.length)) { problems.push(`line ${r.line}: expected ${expected.length} fields (${expected.join(",")}${width > expected.length ? ", then the file's other columns" : ""}), found ${n}`); continue; }
    rows.push({ line: r.line, cells: r.cells.slice(0, expected.length) });
  }
  return { rows, problems: byLine(problems), delimiter };
}

const trimTrailingEmpty = (cells: string[]) => { let n = cells.length; while (n > 0 && !cells[n - 1]!.trim()) n--; return cells.slice(0, n); };
const lineNo = (p: string) => Number(/^line (\d+)/.exec(p)?.[1] ?? 0);

/** Problems in file order, each once. */
export const byLine = (problems: string[]): string[] => [...new Set(problems)].sort((a, b) => lineNo(a) - lineNo(b));
