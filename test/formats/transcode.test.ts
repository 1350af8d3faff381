/**
 * Playable audio: the packaged ffmpeg decodes every format voice systems write and encodes the
 * profile's voiceFormat; durations are measured from the audio; caps and undecodable input end
 * in typed errors.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_TRANSCODE_LIMITS, toPlayable } from "../../src/formats/transcode.js";
import { sniffAudio } from "../../src/formats/audioFormat.js";
import { executable, ffmpegPath } from "../../src/formats/ffmpegBinary.js";
import { isConnectorError } from "../../src/errors.js";
import { audio } from "../fixtures/voiceFormats.js";

const code = (p: Promise<unknown>) => p.then(() => "ok", (e) => (isConnectorError(e) ? e.code : `untyped: ${String(e)}`));

describe("transcoding", () => {
  const sources: Array<[string, string]> = [
    ["wav-pcm", "audio/wav"], ["wav-mulaw", "audio/wav"], ["wav-alaw", "audio/x-wav"], ["wav49", "audio/x-WAV"], ["gsm", "audio/x-gsm"],
    ["g726", "audio/32kadpcm"], ["amr", "audio/amr"], ["mulaw", "audio/basic"], ["au", "audio/basic"], ["wav-ima-adpcm", "audio/wav"],
    ["wav-float", "audio/wav"], ["wav-s24-extensible", "audio/wav"], ["wav-u8", "audio/basic"], ["mp3", "audio/mpeg"],
  ];
  for (const [kind, type] of sources) {
    it(`${kind} (${type}) becomes MP3 and WAV PCM, its length measured`, async () => {
      const rec = { name: "msg0001.bin", contentType: type, bytes: audio(kind, 3) };
      const mp3 = await toPlayable(rec, "mp3");
      expect(sniffAudio(mp3.bytes, mp3.contentType)).toMatchObject({ container: "mp3" });
      expect(mp3).toMatchObject({ contentType: "audio/mpeg", name: kind === "mp3" ? "msg0001.bin" : "msg0001.mp3", transcoded: kind !== "mp3" });
      expect(mp3.durationSeconds).toBeGreaterThan(2.8);
      expect(mp3.durationSeconds).toBeLessThan(3.2);
      const wav = await toPlayable(rec, "wav");
      // PCM WAV plays everywhere as it is (8-bit too); everything else is made 16-bit, 8 kHz mono.
      expect(sniffAudio(wav.bytes, wav.contentType)).toMatchObject(kind === "wav-pcm" || kind === "wav-u8" ? { container: "wav", codec: "pcm" } : { container: "wav", codec: "pcm", bitsPerSample: 16, sampleRate: 8000, channels: 1 });
      expect(Math.abs(wav.durationSeconds! - 3)).toBeLessThan(0.2);
    }, 60_000);
  }

  it("keeps what already is in the profile's format", async () => {
    const mp3 = { name: "a.mp3", contentType: "audio/mpeg", bytes: audio("mp3", 2) };
    expect(await toPlayable(mp3, "mp3")).toMatchObject({ transcoded: false, bytes: mp3.bytes });
    const pcm = { name: "a.wav", contentType: "audio/x-wav", bytes: audio("wav-pcm", 2) };
    expect(await toPlayable(pcm, "wav")).toMatchObject({ transcoded: false, bytes: pcm.bytes, contentType: "audio/wav", durationSeconds: 2 });
    const gsm = { name: "msg0001.WAV", contentType: "audio/x-WAV", bytes: audio("wav49", 2) };
    expect(await toPlayable(gsm, "gsm-wav")).toMatchObject({ transcoded: false, bytes: gsm.bytes });
    // The packaged ffmpeg cannot encode GSM: other recordings get MP3 rather than nothing.
    const g726 = await toPlayable({ name: "m.726", contentType: "audio/32kadpcm", bytes: audio("g726", 2) }, "gsm-wav");
    expect(sniffAudio(g726.bytes, g726.contentType).container).toMatch(/^(mp3|wav)$/);
  }, 60_000);

  it("undecodable and truncated recordings give AUDIO_UNDECODABLE", async () => {
    const riff = Buffer.from(audio("wav-pcm", 1));
    riff.writeUInt16LE(0x1234, 20); // a WAVE format tag no decoder knows
    expect(await code(toPlayable({ name: "x.wav", contentType: "audio/wav", bytes: riff }, "mp3"))).toBe("AUDIO_UNDECODABLE");
    const headerOnly = audio("wav-mulaw", 1).subarray(0, 58);
    expect(await code(toPlayable({ name: "t.wav", contentType: "audio/wav", bytes: headerOnly }, "mp3"))).toBe("AUDIO_UNDECODABLE");
    const id3Only = Buffer.concat([Buffer.from("ID3\x04\x00\x00\x00\x00\x00\x00", "latin1"), Buffer.alloc(4000)]);
    expect(await code(toPlayable({ name: "e.mp3", contentType: "audio/mpeg", bytes: id3Only }, "wav"))).toBe("AUDIO_UNDECODABLE");
    const amrTruncated = audio("amr", 2).subarray(0, 6);
    expect(await code(toPlayable({ name: "a.amr", contentType: "audio/amr", bytes: amrTruncated }, "mp3"))).toBe("AUDIO_UNDECODABLE");
  }, 60_000);

  it("caps: audio length, output size and time", async () => {
    const long = { name: "l.ul", contentType: "audio/basic", bytes: audio("mulaw", 5) };
    expect(await code(toPlayable(long, "mp3", { ...DEFAULT_TRANSCODE_LIMITS, maxAudioSeconds: 2 }))).toBe("AUDIO_TOO_LONG"); // known from the size
    const amr = { name: "l.amr", contentType: "audio/amr", bytes: audio("amr", 5) };
    expect(await code(toPlayable(amr, "mp3", { ...DEFAULT_TRANSCODE_LIMITS, maxAudioSeconds: 2 }))).toBe("AUDIO_TOO_LONG"); // measured by ffmpeg
    expect(await code(toPlayable(amr, "wav", { ...DEFAULT_TRANSCODE_LIMITS, maxOutputBytes: 10_000 }))).toBe("PAYLOAD_TOO_LARGE");
    expect(await code(toPlayable(amr, "mp3", { ...DEFAULT_TRANSCODE_LIMITS, maxMs: 1 }))).toBe("AUDIO_UNDECODABLE");
  }, 60_000);

  it("runs the packaged binary, and a private executable copy when install scripts were held back", () => {
    expect(ffmpegPath()).toMatch(/@ffmpeg-installer/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "umc-ffmpeg-"));
    const notExec = path.join(dir, "ffmpeg");
    fs.copyFileSync(ffmpegPath(), notExec);
    fs.chmodSync(notExec, 0o644);
    const copy = executable(notExec);
    expect(copy).not.toBe(notExec);
    fs.accessSync(copy, fs.constants.X_OK);
    expect(executable(ffmpegPath())).toBe(ffmpegPath());
    fs.rmSync(dir, { recursive: true });
  });
});
