/**
 * storeItemText reads a plain single-part card without the MIME parser; whatever it returns
 * must be what the MIME parser (mailparser) gives for the same message, and every message it
 * does not follow must still go to the parser.
 */
import { describe, expect, it } from "vitest";
import { simpleParser } from "mailparser";
import { storeItemMessage, storeItemText } from "../../src/formats/storeItem.js";

const CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jürgen Groß\r\nN:Groß;Jürgen;;;\r\nTEL;TYPE=WORK:+49 30 1111\r\nEND:VCARD\r\n";

/** What the MIME parser makes of the message (the path storeItemText takes when its fast path declines). */
async function parsed(source: Buffer): Promise<string | undefined> {
  const m = await simpleParser(source, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, maxHtmlLengthToParse: 0 });
  const part = m.attachments.find((a) => /^text\/(x-)?vcard$|^text\/directory$/i.test(a.contentType));
  return part ? part.content.toString("utf8") : m.text;
}

const messages: Record<string, string> = {
  // As Avaya's and Cisco's stores write them (Subject, a plain text/vcard body).
  "no charset, no encoding": `From: Avaya <mm@voice.test>\r\nSubject: Grace\r\nContent-Type: text/vcard\r\n\r\n${CARD}`,
  "charset utf-8, 8bit": `Subject: Grace\r\nContent-Type: text/vcard; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${CARD}`,
  "quoted charset, a name, folded": `Subject: Grace\r\nContent-Type: text/x-vcard;\r\n\tcharset="UTF-8";\r\n name="grace.vcf"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${CARD}`,
  "bare LF line ends": `Subject: Grace\nContent-Type: text/directory; charset=us-ascii\n\n${CARD.replace(/\r\n/g, "\n")}`,
  "no final line break": `Subject: Grace\r\nContent-Type: text/vcard\r\n\r\n${CARD.trimEnd()}`,
  "header in upper case": `SUBJECT: Grace\r\nCONTENT-TYPE: TEXT/VCARD; CHARSET=UTF-8\r\nCONTENT-TRANSFER-ENCODING: BINARY\r\n\r\n${CARD}`,
};

// Messages the fast path must leave to the MIME parser, each decoded to the card (the Latin-1
// part was read as UTF-8 before: its umlauts came out as U+FFFD).
const decoded: Record<string, string> = {
  "quoted-printable": `Subject: Grace\r\nContent-Type: text/vcard; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${CARD.replace("Jürgen Groß", "J=C3=BCrgen Gro=C3=9F").replace("Groß;Jürgen", "Gro=C3=9F;J=C3=BCrgen")}`,
  base64: `Subject: Grace\r\nContent-Type: text/vcard; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from(CARD).toString("base64").replace(/(.{76})/g, "$1\r\n")}\r\n`,
  "latin-1": `Subject: Grace\r\nContent-Type: text/vcard; charset=iso-8859-1\r\n\r\n`,
  multipart: `Subject: Grace\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nA contact.\r\n--b\r\nContent-Type: text/vcard; charset=utf-8\r\n\r\n${CARD}\r\n--b--\r\n`,
};

describe("storeItemText on single-part cards", () => {
  for (const [name, text] of Object.entries(messages)) {
    it(`reads "${name}" as the MIME parser does`, async () => {
      const source = Buffer.from(text, "utf8");
      const got = await storeItemText(source, "vcard");
      expect(got).toBe(await parsed(source));
      expect(got).toContain("FN:Jürgen Groß");
    });
  }

  for (const [name, text] of Object.entries(decoded)) {
    it(`decodes "${name}" through the MIME parser`, async () => {
      const source = name === "latin-1" ? Buffer.concat([Buffer.from(text), Buffer.from(CARD, "latin1")]) : Buffer.from(text, "utf8");
      expect(await storeItemText(source, "vcard")).toContain("FN:Jürgen Groß\r\nN:Groß;Jürgen;;;\r\n");
    });
  }

  it("reads what the connector itself writes", async () => {
    const source = storeItemMessage({ kind: "vcard", key: "k1", subject: "Jürgen Groß", body: CARD });
    expect(await storeItemText(source, "vcard")).toBe(await parsed(source));
  });
});
