/**
 * The voice-format corpus (test/fixtures/voice-formats/, sources in its README): every sample
 * is understood, attributed and made playable as expected.json says.
 */
import { describe, expect, it } from "vitest";
import { parseVoiceMessage } from "../../src/formats/voiceMessage.js";
import { playableRecordings } from "../../src/formats/transcode.js";
import { sniffAudio } from "../../src/formats/audioFormat.js";
import { toVoicemailItem } from "../../src/sync/voicemailCopy.js";
import { isConnectorError } from "../../src/errors.js";
import { corpus, loadSample } from "../fixtures/voiceFormats.js";

const samples = Object.entries(corpus());

describe("voice-format corpus", () => {
  it("covers every system the issue names", () => {
    const systems = samples.map(([, e]) => e.system).join(" | ");
    for (const s of ["Asterisk", "FreePBX", "VPIM", "RFC 4239", "Exchange Unified Messaging", "Cisco Unity Connection", "NuPoint", "MiVoice", "visual voicemail", "TIFF", "PDF", "RFC 3464", "RFC 8098"]) expect(systems).toContain(s);
  });

  for (const [file, want] of samples) {
    it(`${file}: ${want.system}`, async () => {
      const raw = loadSample(file);
      if (want.error) {
        await expect(parseVoiceMessage(raw)).rejects.toSatisfy((e) => isConnectorError(e) && e.code === want.error);
        return;
      }
      const m = await parseVoiceMessage(raw);
      expect({ class: m.class, importance: m.importance, sensitivity: m.sensitivity }, JSON.stringify(m.decidedBy)).toEqual({ class: want.class, importance: want.importance, sensitivity: want.sensitivity });
      if (want.caller) expect({ name: m.caller.name, number: m.caller.number }, JSON.stringify(m.decidedBy)).toEqual({ name: want.caller.name, number: want.caller.number });
      if (want.recordings) expect(m.recordings.map((r) => r.name)).toEqual(want.recordings);
      if (want.callId) expect(m.callId).toBe(want.callId);
      // Playable: every recording becomes MP3 (the default voiceFormat) and its length is measured.
      const playable = m.class === "voice" ? await playableRecordings(m.recordings, "mp3") : [];
      for (const p of playable) expect(sniffAudio(p.bytes, p.contentType).container).toBe("mp3");
      const item = toVoicemailItem(m, "k", false, m.sensitivity === "private" || m.sensitivity === "confidential" ? [] : playable);
      if (want.subject) expect(item.subject).toBe(want.subject);
      if (want.duration !== undefined) expect(Math.round(item.durationSeconds!)).toBe(want.duration);
      if (want.faxPages !== undefined) expect(item.faxPages).toBe(want.faxPages);
      if (m.class === "voice" && item.attachments.length) expect(item.attachmentOrder).toEqual(item.attachments.map((a) => a.name));
      if (m.class === "receipt" || m.class === "email") {
        expect(item.attachments).toEqual([]);
        expect(item.bodyHtml).not.toMatch(/attached/i);
      }
    }, 60_000);
  }
});
