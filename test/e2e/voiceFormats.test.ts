/**
 * Real voice-system messages end to end: corpus samples (test/fixtures/voice-formats/)
 * delivered by dovecot-lda -> Lua push -> storeNotifications -> queue -> syncWorker -> Graph
 * simulator. Each arrives as Outlook shows a voice message: the caller's words in subject,
 * the Unified Messaging properties, playable audio in the profile's voiceFormat; a recording
 * that cannot be decoded is skipped with its reason while the store keeps it unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, type World } from "./world.js";
import { corpus, loadSample } from "../fixtures/voiceFormats.js";
import { sniffAudio } from "../../src/formats/audioFormat.js";
import type { SimMessage } from "../graph-sim/index.js";

let w: World;
let mp3User = "";
let wavUser = "";
let linkMp3 = "";
const expected = corpus();
const inbox = (user: string) => w.sim.outlook(user).messages("inbox");
const props = (m: SimMessage) => Object.fromEntries([...m.ext.values()].map((p) => [p.id, p.value]));
const bySubject = (user: string, subject: string) => inbox(user).find((m) => m.subject === subject);

beforeAll(async () => {
  w = await startWorld({
    users: ["4811", "4812"], quiet: true,
    profiles: [{ id: "wav-receipts", displayName: "WAV, receipts copied", voiceFormat: "wav", copy: { receipts: true } }],
  });
  ({ userId: mp3User, linkId: linkMp3 } = await w.link("4811", "alice@contoso.test"));
  ({ userId: wavUser } = await w.link("4812", "bob@contoso.test", "wav-receipts"));
}, 90_000);
afterAll(async () => { await w?.stop(); });

describe("voice formats end to end", () => {
  const voice = ["asterisk-imap-storage.eml", "asterisk-forward-with-intro.eml", "exchange-um-voice.eml", "vpim-v2.eml", "vpim-forward-no-intro.eml",
    "cisco-unity-connection.eml", "mitel-nupoint.eml", "mitel-mivoice-business.eml", "carrier-visual-voicemail.eml", "rfc4239-private-urgent.eml"];

  it("a representative set arrives attributed, with UM properties and MP3 audio (default voiceFormat)", async () => {
    for (const f of [...voice, "fax-server-pdf.eml"]) await w.dc.lda("4811", loadSample(f));
    await expect.poll(() => inbox(mp3User).length, { timeout: 60_000, interval: 500 }).toBe(voice.length + 1);
    for (const f of voice) {
      const e = expected[f]!;
      const m = bySubject(mp3User, e.subject!);
      expect(m, `${f}: ${e.subject} in ${inbox(mp3User).map((x) => x.subject).join(" | ")}`).toBeDefined();
      const p = props(m!);
      expect(p["String 0x001A"]).toBe("IPM.Note.Microsoft.Voicemail.UM.CA");
      expect(p["Integer 0x6801"], f).toBe(String(e.duration));
      expect(p["String 0x6803"], f).toBe(e.caller?.name);
      expect(p["String 0x6802"], f).toBe(e.caller?.number);
      expect(p["Integer 0x0036"], f).toBe(String({ normal: 0, personal: 1, private: 2, confidential: 3 }[e.sensitivity]));
      expect(m!.importance, f).toBe(e.importance);
      if (e.callId) expect(p["String 0x6806"]).toBe(e.callId);
      if (e.sensitivity === "private") {
        expect(m!.attachments, f).toEqual([]);
        expect(m!.body.content).toMatch(/private/);
        continue;
      }
      // Every recording, in play order, as MP3; the order property lists them.
      expect(m!.attachments.map((a) => a.name), f).toEqual(e.recordings!.map((r) => r.replace(/\.[^.]+$/, ".mp3")));
      expect(p["String 0x6805"]).toBe(m!.attachments.map((a) => a.name).join(";"));
      for (const a of m!.attachments) expect(sniffAudio(Buffer.from(a.contentBytes, "base64"), a.contentType).container, f).toBe("mp3");
    }
    const fax = bySubject(mp3User, expected["fax-server-pdf.eml"]!.subject!)!;
    expect(props(fax)).toMatchObject({ "String 0x001A": "IPM.Note.Microsoft.Fax.CA", "Integer 0x6804": "3" });
    expect(fax.attachments.map((a) => a.contentType)).toEqual(["application/pdf"]);
  }, 120_000);

  it("a profile's voiceFormat is honoured (WAV PCM), and copied receipts say what they are", async () => {
    for (const f of ["vpim-v2.eml", "mitel-nupoint-unknown.eml", "read-receipt.eml"]) await w.dc.lda("4812", loadSample(f));
    await expect.poll(() => inbox(wavUser).length, { timeout: 30_000, interval: 500 }).toBe(3);
    for (const f of ["vpim-v2.eml", "mitel-nupoint-unknown.eml"]) {
      const m = bySubject(wavUser, expected[f]!.subject!)!;
      expect(m.attachments.map((a) => a.contentType), f).toEqual(["audio/wav"]);
      expect(sniffAudio(Buffer.from(m.attachments[0]!.contentBytes, "base64"), "audio/wav"), f).toMatchObject({ container: "wav", codec: "pcm", bitsPerSample: 16 });
    }
    const receipt = bySubject(wavUser, "Disposition notification")!;
    expect(receipt.attachments).toEqual([]);
    expect(receipt.body.content).toMatch(/read receipt/i);
    expect(receipt.body.content).not.toMatch(/recording is attached/i);
  }, 60_000);

  it("an undecodable recording is skipped with its reason, the store copy untouched, and the mailbox goes on", async () => {
    const good = loadSample("mitel-nupoint.eml").toString("latin1").replace("np-4021-000117", "np-4021-000999").replace("4085550123", "4085550999");
    // A WAV whose format tag no decoder knows (0x1234): the bytes are WAV, the codec is not.
    const raw = loadSample("cisco-unity-connection.eml").toString("latin1").replace(/(filename="VoiceMessage.wav"\r\n\r\n)UklGR([A-Za-z0-9+/]{27})/, (_m, a: string, b: string) => {
      const head = Buffer.from("UklGR" + b, "base64");
      head.writeUInt16LE(0x1234, 20);
      return a + head.toString("base64");
    });
    expect(raw).not.toBe(loadSample("cisco-unity-connection.eml").toString("latin1"));
    const before = inbox(mp3User).length;
    await w.dc.lda("4811", Buffer.from(raw.replace("6.2.5.7.0.20261130080000", "broken-1"), "latin1"));
    await w.dc.lda("4811", Buffer.from(good, "latin1"));
    await expect.poll(() => inbox(mp3User).length, { timeout: 30_000, interval: 500 }).toBe(before + 1);
    expect(bySubject(mp3User, "Voice message from 4085550999, 0:13")).toBeDefined();
    // The run records the outcome on the link when it ends (the status page shows it).
    await expect.poll(async () => (await w.deps.state.getLink(linkMp3))?.skippedItems, { timeout: 10_000 }).toBe(1);
    const items = await w.deps.state.voicemailState(linkMp3).loadItems();
    const skipped = items.filter((i) => i.skipped);
    expect(skipped.map((i) => i.skipped!.code)).toEqual(["AUDIO_UNDECODABLE"]);
    expect(skipped[0]!.skipped!.message).toMatch(/could not be decoded/);
    // The store keeps the original, byte for byte.
    const c = await w.imap("4811");
    try {
      const uid = skipped[0]!.imapUid!;
      const msg = await c.fetchOne(String(uid), { source: true }, { uid: true });
      expect(msg && msg.source && msg.source.toString("latin1").includes("broken-1")).toBe(true);
    } finally { await c.logout(); }
  }, 60_000);
});
