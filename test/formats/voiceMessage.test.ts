import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parseVoiceMessage } from "../../src/formats/voiceMessage.js";
import { isConnectorError } from "../../src/errors.js";
import { asteriskVoiceMessage, avayaVoiceMessage, faxMessage, readReceipt } from "../fixtures/voicemail.js";

describe("voice message understanding", () => {
  it("reads an Avaya/VPIM-style voice message", async () => {
    const m = await parseVoiceMessage(avayaVoiceMessage({ seconds: 65 }));
    expect(m).toMatchObject({ class: "voice", caller: { name: "Ann Lee", number: "+49 30 123456" }, durationSeconds: 65, sensitivity: "normal", importance: "normal", messageId: "<vm-1@pbx.example.test>" });
    expect(m.recordings).toHaveLength(1);
    expect(m.recordings[0]).toMatchObject({ name: "msg0001.wav", contentType: "audio/wav", role: "message" });
    expect(m.recordings[0]!.bytes.subarray(0, 4).toString()).toBe("RIFF");
    expect(m.receivedAt?.toISOString()).toBe("2026-11-24T10:00:00.000Z");
  });
  it("reads Asterisk's headers", async () => {
    expect(await parseVoiceMessage(asteriskVoiceMessage())).toMatchObject({ class: "voice", caller: { name: "Bob Smith", number: "015112345678" }, durationSeconds: 42 });
  });
  it("classifies fax, receipts and plain mail", async () => {
    expect((await parseVoiceMessage(faxMessage())).class).toBe("fax");
    expect((await parseVoiceMessage(readReceipt())).class).toBe("receipt");
    expect((await parseVoiceMessage(Buffer.from("From: a@b\r\nSubject: hi\r\n\r\nhello\r\n"))).class).toBe("email");
  });
  it("keeps private voice messages without requiring audio", async () => {
    const m = await parseVoiceMessage(avayaVoiceMessage({ sensitivity: "Private", noAudio: true }));
    expect(m).toMatchObject({ class: "voice", sensitivity: "private" });
    expect(m.recordings).toEqual([]);
  });
  it("gives typed errors for missing or unsupported audio and malformed MIME", async () => {
    const code = async (raw: Buffer) => parseVoiceMessage(raw).then(() => "ok", (e) => (isConnectorError(e) ? e.code : "untyped"));
    expect(await code(avayaVoiceMessage({ noAudio: true }))).toBe("AUDIO_MISSING");
    // The bytes decide, not the label: a WAV labelled with an unknown type is still a WAV.
    expect(await code(avayaVoiceMessage({ audioType: "audio/x-unknown-codec" }))).toBe("ok");
    expect(await code(Buffer.from(avayaVoiceMessage({ audioType: "audio/x-unknown-codec" }).toString("latin1").replace(/UklGR[A-Za-z0-9+/]{3}/, "AAAAAAAA"), "latin1"))).toBe("AUDIO_UNSUPPORTED");
    expect(await code(Buffer.from("this is not a message"))).toBe("MIME_MALFORMED");
    expect(await code(Buffer.from("Content-Type: multipart/mixed\r\n\r\n--x\r\n"))).toBe("MIME_MALFORMED");
  });
  it("never throws anything but a typed error on mutated input (property)", async () => {
    const base = avayaVoiceMessage();
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 0, max: 255 })), { maxLength: 30 }), fc.nat({ max: base.length }), async (edits, cut) => {
      const raw = Buffer.from(base.subarray(0, Math.max(1, cut)));
      for (const [i, v] of edits) if (i < raw.length) raw[i] = v;
      await parseVoiceMessage(raw).catch((e) => { if (!isConnectorError(e)) throw e; });
    }), { numRuns: 150 });
  });

  it("refuses hostile MIME with a typed error or reads it, and never blows up (nesting, huge headers, bad encodings, part floods)", async () => {
    const outcome = async (raw: Buffer) => parseVoiceMessage(raw).then(() => "ok", (e) => (isConnectorError(e) ? e.code : `untyped: ${String(e)}`));
    const head = "From: a@b.test\r\nTo: c@d.test\r\nSubject: x\r\nMessage-ID: <h@x>\r\nMIME-Version: 1.0\r\n";
    // 2,000 levels of nested multiparts.
    let nested = "--b0\r\nContent-Type: audio/wav\r\nContent-Transfer-Encoding: base64\r\n\r\nUklGRg==\r\n--b0--\r\n";
    for (let i = 1; i < 2000; i++) nested = `--b${i}\r\nContent-Type: multipart/mixed; boundary="b${i - 1}"\r\n\r\n${nested}--b${i}--\r\n`;
    const cases: Record<string, Buffer> = {
      "deep nesting": Buffer.from(`${head}Content-Type: multipart/mixed; boundary="b1999"\r\n\r\n${nested}`),
      "one 8 MB header line": Buffer.from(`${head}X-Long: ${"a".repeat(8 * 1024 * 1024)}\r\n\r\nbody`),
      "200,000 headers": Buffer.from(`${head}${"X-H: v\r\n".repeat(200_000)}\r\nbody`),
      "20,000 tiny parts": Buffer.from(`${head}Content-Type: multipart/mixed; boundary="p"\r\n\r\n${"--p\r\nContent-Type: audio/wav\r\nContent-Transfer-Encoding: base64\r\n\r\nUklGRg==\r\n".repeat(20_000)}--p--\r\n`),
      "broken base64 audio": Buffer.from(`${head}Content-Type: multipart/mixed; boundary="p"\r\n\r\n--p\r\nContent-Type: audio/wav\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!not base64 at all%%%%\r\n--p--\r\n`),
      "unknown charset and bad quoted-printable": Buffer.from(`${head}Content-Type: text/plain; charset=x-klingon\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=4=\r\n`),
      "encoded-word flood in the subject": Buffer.from(`From: a@b.test\r\nSubject: ${"=?utf-8?B?w6TDtsO8?= ".repeat(50_000)}\r\nContent-Type: audio/wav\r\n\r\nRIFF`),
      "over the size limit": Buffer.alloc(50 * 1024 * 1024 + 1, 0x61),
    };
    for (const [what, raw] of Object.entries(cases)) {
      const o = await outcome(raw);
      expect(o, what).not.toMatch(/^untyped/);
    }
    expect(await outcome(cases["over the size limit"]!)).toBe("PAYLOAD_TOO_LARGE");
  }, 120_000);
});
