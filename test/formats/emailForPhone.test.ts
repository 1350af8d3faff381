import fs from "node:fs";
import path from "node:path";
import { simpleParser } from "mailparser";
import { describe, expect, it } from "vitest";
import { bodyText, chooseAttachments, encodeHeaderText, toPhoneMessage, type GraphMail, type MailAttachment } from "../../src/formats/emailForPhone.js";
import { parseVoiceMessage } from "../../src/formats/voiceMessage.js";

const dir = path.join(import.meta.dirname, "..", "fixtures", "mail");
const fixture = (name: string) => {
  const j = JSON.parse(fs.readFileSync(path.join(dir, name), "utf8")) as Record<string, any>;
  const mail: GraphMail = { id: j.id, subject: j.subject, receivedDateTime: j.receivedDateTime, from: j.from?.emailAddress, toRecipients: (j.toRecipients ?? []).map((r: any) => r.emailAddress), body: j.body, hasAttachments: j.hasAttachments };
  const attachments: MailAttachment[] = (j.attachments ?? []).map((a: any) => ({ name: a.name, contentType: a.contentType, size: a.size, bytes: Buffer.from(a.contentBytes, "base64") }));
  return { mail, attachments };
};
const omit = { mode: "omit" as const, maxBytes: 0, types: [] };

describe("e-mail for the phone", () => {
  it("renders Microsoft's documented HTML message as text with sender, subject and date", async () => {
    const { mail } = fixture("message-get-example1.json");
    const copy = toPhoneMessage(mail, { key: "m-test-1", to: { name: "Alex Wilber", address: "AlexW@contoso.OnMicrosoft.com" }, rules: omit });
    expect(copy.text).toBe("E-mail from Adele Vance <adelev@contoso.OnMicrosoft.com>.\nSubject: 9/9/2018: concert.\n\nThe group represents Nevada.");
    const parsed = await simpleParser(copy.source);
    expect(parsed.from?.value[0]).toMatchObject({ name: "Adele Vance", address: "adelev@contoso.OnMicrosoft.com" });
    expect(parsed.subject).toBe("9/9/2018: concert");
    expect(parsed.date?.toISOString()).toBe("2018-09-09T03:15:08.000Z");
    expect(parsed.headers.get("message-context")).toBe("text-message");
    expect(parsed.headers.get("x-umc-key")).toBe("m-test-1");
    expect(parsed.html).toBe(false);
    expect(parsed.text?.trim()).toBe(copy.text.replace(/\n/g, "\r\n").replace(/\r\n/g, "\n").trim());
    // The voicemail sync reads it as e-mail written by umconnect: never copied back to Exchange.
    const m = await parseVoiceMessage(copy.source);
    expect(m.class).toBe("email");
    expect(m.createdByConnector).toBe(true);
  });

  it("drops Outlook's style block and layout, and names the attachment it left out", async () => {
    const { mail, attachments } = fixture("message-get-example4-mime.json");
    const copy = toPhoneMessage(mail, { key: "m-test-2", attachments, rules: omit });
    expect(copy.text).toContain("\n\nThe attachment is an email.\n");
    expect(copy.text).toMatch(/^E-mail from Administrator <admin@contoso\.com>\.\nSubject: This email has attachment\.\n\n/);
    expect(copy.text.split("\n").slice(2).join("\n")).not.toMatch(/margin|divtagdefaultwrapper|<|>|Calibri/);
    expect(copy.text).toMatch(/Attachments left out: Attachment email\.eml \(408 bytes\)\.$/);
    const parsed = await simpleParser(copy.source);
    expect(parsed.attachments).toHaveLength(0);
  });

  it("keeps attachments within the profile's size and types, and names the others", async () => {
    const { mail, attachments } = fixture("message-get-example4-mime.json");
    const pdf: MailAttachment = { name: "Agenda.pdf", contentType: "application/pdf", size: 900, bytes: Buffer.alloc(900, 1) };
    const big: MailAttachment = { name: "Plan.pdf", contentType: "application/pdf", size: 5000, bytes: Buffer.alloc(5000, 2) };
    const copy = toPhoneMessage(mail, { key: "m-test-3", attachments: [...attachments, pdf, big], rules: { mode: "limit", maxBytes: 2000, types: ["application/pdf"] } });
    const parsed = await simpleParser(copy.source);
    expect(parsed.attachments.map((a) => [a.filename, a.size])).toEqual([["Agenda.pdf", 900]]);
    expect(copy.text).toContain("Attachments left out: Attachment email.eml (408 bytes), Plan.pdf (5 KB).");
    expect(chooseAttachments([{ name: "logo.png", contentType: "image/png", size: 10, isInline: true }], { mode: "limit", maxBytes: 100, types: ["image/"] })).toEqual({ keep: [], leftOut: [] });
  });

  it("reads links, lists and tables as text, without URLs or images", () => {
    const r = bodyText({ contentType: "html", content: `<p>Hi &amp; welcome, see <a href="https://contoso.example/x?y=1">the plan</a>.</p><img src="cid:logo"><ul><li>one</li><li>two</li></ul><table><tr><td>April 14</td><td>1-3pm</td></tr></table>` });
    expect(r.text).toBeDefined();
    expect(r.text).toContain("Hi & welcome, see the plan.");
    expect(r.text).toMatch(/\* one\n \* two/);
    expect(r.text).toMatch(/April 14\s+1-3pm/);
    expect(r.text).not.toMatch(/https?:|cid:/);
  });

  it("gives the subject and a note when the body cannot be rendered, without failing", async () => {
    const deep = "<div>".repeat(20_000) + "x" + "</div>".repeat(20_000);
    const copy = toPhoneMessage({ id: "bad", subject: "Quarterly numbers", from: { address: "ann@contoso.com" }, body: { contentType: "html", content: deep } }, { key: "m-test-4", rules: omit });
    expect(copy.unrenderable).toMatch(/could not be rendered as text \(RangeError\)/);
    expect(copy.text).toMatch(/^E-mail from ann@contoso\.com\.\nSubject: Quarterly numbers\.\n\n\(This e-mail could not be read on the phone: .+\. Read it in Outlook\.\)$/);
    expect((await simpleParser(copy.source)).subject).toBe("Quarterly numbers");
    const images = bodyText({ contentType: "html", content: `<html><body><img src="cid:a"></body></html>` });
    expect(images).toEqual({ problem: "its body holds no text (only images or layout)" });
  });

  it("encodes non-ASCII headers as RFC 2047 words of at most 75 characters", async () => {
    const subject = "Grüße aus München – Überstunden und Öffnungszeiten im Dezember, bitte lesen";
    const h = encodeHeaderText(subject);
    for (const w of h.split("\r\n ")) expect(w.length).toBeLessThanOrEqual(75);
    const copy = toPhoneMessage({ id: "u", subject, from: { name: "Jürgen Weiß", address: "jw@contoso.com" }, body: { contentType: "text", content: "Hallo" } }, { key: "m-test-5", rules: omit });
    const parsed = await simpleParser(copy.source);
    expect(parsed.subject).toBe(subject);
    expect(parsed.from?.value[0]?.name).toBe("Jürgen Weiß");
  });
});
