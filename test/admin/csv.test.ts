/** The CSV reader on each spreadsheet export (test/fixtures/csv/README.md): rows, their lines, problems by line. */
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeCsvFile, readCsvTable } from "../../src/admin/csv.js";
import { readLinkCsv } from "../../src/admin/links.js";

const file = (name: string) => decodeCsvFile(fs.readFileSync(new URL(`../fixtures/csv/${name}`, import.meta.url)));
const rows = (name: string) => readLinkCsv(file(name));

describe("CSV as spreadsheets save it", () => {
  it("reads each export: separator from the header, BOM, code page, quoted line breaks, extra columns", () => {
    expect(rows("excel-en-US-csv-utf8.csv")).toEqual({ problems: [], rows: [
      { line: 2, voiceMailbox: "6101", endpointId: "voice-1", smtp: "ann.lee@contoso.test", profileId: "default" },
      { line: 4, voiceMailbox: "6102", endpointId: "voice-1", smtp: "bob.ray@contoso.test", profileId: "default" },
    ] });
    expect(rows("excel-de-DE-csv-utf8.csv").rows.map((r) => [r.line, r.smtp])).toEqual([[2, "carl.weiss@contoso.test"], [4, "dora@contoso.test"]]);
    expect(rows("excel-fr-FR-csv-ansi.csv").rows.map((r) => r.voiceMailbox)).toEqual(["6105", "6106"]);
    expect(rows("google-sheets.csv").rows.map((r) => [r.line, r.voiceMailbox])).toEqual([[2, "6107"], [3, "6108"]]);
    expect(rows("excel-unicode-text.txt").rows.map((r) => r.smtp)).toEqual(["ian@contoso.test"]);
    // The code page and the quoted cells come through intact (the notes column, ignored by imports).
    expect(readCsvTable(file("excel-fr-FR-csv-ansi.csv"), ["voiceMailbox", "endpointId", "smtp", "profileId", "remarque"]).rows.map((r) => r.cells[4])).toEqual(["Hélène à l'accueil", "Bureau 3; étage 2"]);
    expect(readCsvTable(file("excel-de-DE-csv-utf8.csv"), ["voiceMailbox", "endpointId", "smtp", "profileId", "Bemerkung"]).rows[0]!.cells[4]).toBe('Außendienst; "Müller"');
  });

  it("reports every problem with the line it starts on, in file order", () => {
    expect(rows("bad-rows-excel-de-DE.csv").problems).toEqual([
      'line 6: voice mailbox "bad box" is not valid',
      'line 6: "not-an-address" is not an SMTP address',
      "line 7: expected 4 fields (voiceMailbox,endpointId,smtp,profileId, then the file's other columns), found 2",
      "line 8: voice mailbox 6110 is already on line 2",
      "line 8: jo@contoso.test is already on line 2",
    ]);
    expect(readLinkCsv("voiceMailbox,endpointId,smtp,profileId\n4711,voice-1,a@x.test,default\n47\"12,voice-1,b@x.test,default\n").problems).toEqual(['line 3: a quote inside an unquoted field: quote the whole field and double the quote ("")']);
    expect(readLinkCsv("mailbox;smtp\n1;a@x.test\n").problems).toEqual(['line 1: the header must start with voiceMailbox,endpointId,smtp,profileId (separated by , or ;), found "mailbox;smtp" (separator ";")']);
    expect(readLinkCsv("sep=;\nvoiceMailbox;endpointId;smtp;profileId\n4711;voice-1;a@x.test;default\n").rows.map((r) => r.line)).toEqual([3]);
  });
});
