/**
 * Makes a recording playable in Outlook: decodes whatever the voice system wrote (G.726, GSM
 * 6.10, AMR, mu-law/A-law, odd WAV sub-formats) with ffmpeg and encodes the profile's
 * `voiceFormat`, streaming through pipes (no temporary files), under three caps: wall-clock
 * time, output bytes and audio length. Also measures the recording's length (ffmpeg's final
 * report), which is what the item shows when no header gives a duration.
 *
 * Formats (profiles.ts): "mp3" (default) is the smallest that every Outlook plays: desktop,
 * web and mobile play MPEG audio in the browser's <audio> element; "wav" is 16-bit PCM, 8 kHz
 * mono, larger but decodable by anything; "gsm-wav" is GSM 6.10 in WAV (WAVE_FORMAT_GSM610),
 * the smallest, but only Windows' own codecs play it (browsers do not).
 */
import { spawn, spawnSync } from "node:child_process";
import os from "node:os";
import { ConnectorError } from "../errors.js";
import { alreadyIn, sniffAudio, type AudioInfo, type VoiceFormat } from "./audioFormat.js";
import { ffmpegPath } from "./ffmpegBinary.js";

export interface TranscodeLimits {
  /** Wall-clock cap for one ffmpeg run. */
  maxMs: number;
  /** Cap on the encoded output. */
  maxOutputBytes: number;
  /** Longest recording accepted (seconds of audio). */
  maxAudioSeconds: number;
}

export const DEFAULT_TRANSCODE_LIMITS: TranscodeLimits = {
  maxMs: 120_000,
  // Graph's attachment limit via upload sessions is 150 MB (outlook-large-attachments).
  maxOutputBytes: 150 * 1024 * 1024,
  maxAudioSeconds: 4 * 3600,
};

export interface Recording {
  name: string;
  contentType: string;
  bytes: Buffer;
}

export interface TranscodeResult extends Recording {
  /** Seconds of audio, measured from the audio itself. */
  durationSeconds?: number;
  transcoded: boolean;
}

const OUTPUT: Record<VoiceFormat, { args: string[]; contentType: string; ext: string }> = {
  // Layer III at the telephone's own 8 kHz, 16 kbit/s mono (120 KB per minute): a voice mail
  // recording holds nothing above 4 kHz, so a higher rate would cost CPU and bytes for nothing.
  // LAME's fastest psychoacoustic setting (-compression_level 9 = lame -q 9) halves the
  // encoding time at this bit rate.
  mp3: { args: ["-ac", "1", "-ar", "8000", "-c:a", "libmp3lame", "-b:a", "16k", "-compression_level", "9", "-f", "mp3"], contentType: "audio/mpeg", ext: "mp3" },
  wav: { args: ["-ac", "1", "-ar", "8000", "-c:a", "pcm_s16le", "-f", "wav"], contentType: "audio/wav", ext: "wav" },
  "gsm-wav": { args: ["-ac", "1", "-ar", "8000", "-c:a", "libgsm_ms", "-f", "wav"], contentType: "audio/wav", ext: "wav" },
};

/** Converts a message's recordings, in order, to `target` (see toPlayable). */
export async function playableRecordings(recs: Recording[], target: VoiceFormat, limits: TranscodeLimits = DEFAULT_TRANSCODE_LIMITS): Promise<TranscodeResult[]> {
  const out: TranscodeResult[] = [];
  for (const r of recs) out.push(await toPlayable(r, target, limits));
  return out;
}

/** ffmpeg runs at once in this process: one per CPU, so parallel sync actions queue here. */
const MAX_RUNNING = Math.max(1, os.availableParallelism());
let running = 0;
const waiting: Array<() => void> = [];
async function slot<T>(work: () => Promise<T>): Promise<T> {
  if (running >= MAX_RUNNING) await new Promise<void>((r) => waiting.push(r));
  running++;
  try { return await work(); } finally { running--; waiting.shift()?.(); }
}

/** Converts one recording to `target` unless it already is in that format. */
export async function toPlayable(rec: Recording, target: VoiceFormat, limits: TranscodeLimits = DEFAULT_TRANSCODE_LIMITS): Promise<TranscodeResult> {
  const info = sniffAudio(rec.bytes, rec.contentType);
  if (info.durationSeconds !== undefined && info.durationSeconds > limits.maxAudioSeconds) {
    throw new ConnectorError("AUDIO_TOO_LONG", `recording ${rec.name} lasts ${Math.round(info.durationSeconds)} s, over the ${limits.maxAudioSeconds} s limit`, { transient: false });
  }
  if (alreadyIn(info, target)) {
    const out = OUTPUT[target];
    return { ...rec, contentType: out.contentType, durationSeconds: info.durationSeconds, transcoded: false };
  }
  // GSM-WAV originals are kept as they are; encoding GSM needs libgsm, which the packaged
  // static ffmpeg is built without: other recordings then get the next smallest, MP3.
  const out = OUTPUT[target === "gsm-wav" && !hasEncoder("libgsm_ms") ? "mp3" : target];
  const { bytes, seconds } = await slot(() => runFfmpeg(rec, info, out.args, limits));
  return { name: rename(rec.name, out.ext), contentType: out.contentType, bytes, durationSeconds: seconds, transcoded: true };
}

const encoders = new Map<string, boolean>();
/** Whether the packaged ffmpeg has an encoder (asked once per process). */
export function hasEncoder(name: string): boolean {
  if (!encoders.has(name)) {
    const r = spawnSync(ffmpegPath(), ["-hide_banner", "-encoders"], { encoding: "latin1", timeout: 10_000 });
    encoders.set(name, new RegExp(String.raw`^\s*A\S*\s+${name}\s`, "m").test(r.stdout ?? ""));
  }
  return encoders.get(name)!;
}

function rename(name: string, ext: string): string {
  const base = name.replace(/\.[A-Za-z0-9]{1,5}$/, "");
  return `${base || "voicemail"}.${ext}`;
}

/** Runs ffmpeg stdin -> stdout; returns the output and the audio length ffmpeg reported. */
export function runFfmpeg(rec: Recording, info: AudioInfo, outputArgs: string[], limits: TranscodeLimits): Promise<{ bytes: Buffer; seconds?: number }> {
  const args = [
    "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
    ...info.inputArgs, "-i", "pipe:0",
    // One second over the limit is enough to know it is over; nothing longer is decoded.
    "-t", String(limits.maxAudioSeconds + 1),
    "-vn", "-map_metadata", "-1",
    ...outputArgs, "pipe:1",
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpegPath(), args, { stdio: ["pipe", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = "";
    let failure: ConnectorError | undefined;
    const stop = (err: ConnectorError) => { failure ??= err; child.kill("SIGKILL"); };
    const timer = setTimeout(() => stop(new ConnectorError("AUDIO_UNDECODABLE", `transcoding ${rec.name} took longer than ${limits.maxMs} ms`, { transient: false })), limits.maxMs);
    child.stdout.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limits.maxOutputBytes) stop(new ConnectorError("PAYLOAD_TOO_LARGE", `transcoded ${rec.name} exceeds ${limits.maxOutputBytes} bytes`, { transient: false }));
      else chunks.push(c);
    });
    // Only the tail matters (the final report and the last error line).
    child.stderr.on("data", (c: Buffer) => { stderr = (stderr + c.toString("latin1")).slice(-8192); });
    child.stdin.on("error", () => undefined); // ffmpeg may stop reading early (bad input); its exit code tells
    child.on("error", (e) => { clearTimeout(timer); reject(new ConnectorError("INTERNAL", `ffmpeg could not start: ${e.message}`, { cause: e, transient: false })); });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (failure) return reject(failure);
      const seconds = reportedSeconds(stderr);
      if (code !== 0 || size === 0 || seconds === undefined || seconds <= 0) {
        return reject(new ConnectorError("AUDIO_UNDECODABLE", `recording ${rec.name} (${rec.contentType}) could not be decoded: ${lastError(stderr)}`, { transient: false }));
      }
      if (seconds > limits.maxAudioSeconds) {
        return reject(new ConnectorError("AUDIO_TOO_LONG", `recording ${rec.name} lasts more than ${limits.maxAudioSeconds} s`, { transient: false }));
      }
      resolve({ bytes: Buffer.concat(chunks, size), seconds });
    });
    child.stdin.end(rec.bytes);
  });
}

/** The output time of ffmpeg's final report ("size=  180kB time=00:01:00.02 bitrate=..."). */
function reportedSeconds(stderr: string): number | undefined {
  const all = [...stderr.matchAll(/time=\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)/g)];
  const m = all.at(-1);
  return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) : undefined;
}

function lastError(stderr: string): string {
  const lines = stderr.split(/\r?\n|\r/).map((l) => l.trim()).filter((l) => l && !/^(size=|video:|Stream|Input|Output|Duration|Metadata|encoder|  )/.test(l));
  const err = lines.reverse().find((l) => /invalid|error|could not|unable|not found|failed|no such|malformed|truncat/i.test(l)) ?? lines[0] ?? "no audio";
  return err.replace(/pipe:\d/g, "input").slice(0, 200);
}
