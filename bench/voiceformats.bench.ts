/**
 * Voice formats (issue 15): what making recordings playable costs.
 *  - transcoding cost per minute of audio, ffmpeg process start included, for the telephone
 *    codecs voice stores hold (G.711, GSM 6.10, G.726), to the default MP3 and to WAV PCM;
 *  - peak memory while transcoding a 60-minute message (both processes, kernel figures);
 *  - bytes uploaded to Graph per minute of audio for each voiceFormat.
 * Wall-clock on this 2-CPU machine shared with other work: each figure is the median of runs.
 */
import { execFile } from "node:child_process";
import { toPlayable } from "../src/formats/transcode.js";
import type { VoiceFormat } from "../src/formats/audioFormat.js";
import { audio } from "../test/fixtures/voiceFormats.js";
import type { Figure } from "./report.js";

export const title = "Voice formats: transcoding cost, memory and upload bytes";

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
const TYPES: Record<string, string> = { "wav-mulaw": "audio/wav", wav49: "audio/x-WAV", g726: "audio/32kadpcm", amr: "audio/amr" };

async function costPerMinute(kind: string, target: VoiceFormat, minutes: number, runs: number): Promise<number> {
  const input = audio(kind, minutes * 60);
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await toPlayable({ name: "m.wav", contentType: TYPES[kind]!, bytes: input }, target);
    ms.push(performance.now() - t);
  }
  return median(ms) / minutes;
}

function worker(kind: string, seconds: number, format: VoiceFormat): Promise<{ baselineRss: number; peakRss: number; ffmpegPeak: number; seconds: number; ms: number }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--import", "tsx", "bench/transcode-worker.ts", kind, String(seconds), format], { maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) return reject(err);
      resolve(JSON.parse(stdout.trim().split("\n").pop()!));
    });
  });
}

export async function run(): Promise<Figure[]> {
  const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7).split(",");
  const figures: Figure[] = [];
  if (only?.includes("backfill")) return backfillRealistic();
  const names: Record<string, string> = { "wav-mulaw": "G.711 mu-law WAV", wav49: "GSM 6.10 WAV", g726: "G.726 32k (VPIM)" };
  for (const kind of ["wav-mulaw", "wav49", "g726"]) {
    // A one-minute message: process start is paid once per minute of audio, the worst case.
    figures.push({ name: `${names[kind]} -> MP3, per minute of audio (1-minute message, process start included)`, value: await costPerMinute(kind, "mp3", 1, 7), unit: "ms", reference: 150, better: "lower" });
    figures.push({ name: `${names[kind]} -> WAV PCM, per minute of audio (1-minute message)`, value: await costPerMinute(kind, "wav", 1, 7), unit: "ms", reference: 150, better: "lower" });
  }
  figures.push({ name: "G.711 mu-law WAV -> MP3, per minute of audio (10-minute message)", value: await costPerMinute("wav-mulaw", "mp3", 10, 3), unit: "ms", reference: 150, better: "lower" });

  const long = await worker("wav-mulaw", 3600, "mp3");
  figures.push({ name: "60-minute G.711 message -> MP3: connector process peak RSS above its size with the message loaded (ru_maxrss)", value: (long.peakRss - long.baselineRss) / 2 ** 20, unit: "MB", reference: 150, better: "lower" });
  figures.push({ name: "60-minute G.711 message -> MP3: ffmpeg peak RSS (VmHWM)", value: long.ffmpegPeak / 2 ** 20, unit: "MB", reference: 150, better: "lower" });
  figures.push({ name: "60-minute G.711 message -> MP3: both processes together above baseline", value: (long.peakRss - long.baselineRss + long.ffmpegPeak) / 2 ** 20, unit: "MB", reference: 150, better: "lower" });
  figures.push({ name: "60-minute G.711 message -> MP3: measured length", value: long.seconds, unit: "s", reference: 3599, better: "higher" });

  // Upload bytes per minute of audio (what Graph receives for a one-minute recording).
  const minute = { g711: audio("wav-mulaw", 60), gsm: audio("wav49", 60) };
  const mp3 = await toPlayable({ name: "m.wav", contentType: "audio/wav", bytes: minute.g711 }, "mp3");
  const wav = await toPlayable({ name: "m.wav", contentType: "audio/wav", bytes: minute.g711 }, "wav");
  const gsm = await toPlayable({ name: "m.wav", contentType: "audio/x-WAV", bytes: minute.gsm }, "gsm-wav");
  // References: MP3 16 kbit/s = 120 KB, PCM 16-bit 8 kHz = 960 KB, GSM 6.10 13 kbit/s = 97.5 KB per minute.
  figures.push({ name: "bytes per minute of audio, voiceFormat mp3 (default)", value: mp3.bytes.length / 1024, unit: "KiB", reference: 125, better: "lower" });
  figures.push({ name: "bytes per minute of audio, voiceFormat wav (PCM 16-bit 8 kHz)", value: wav.bytes.length / 1024, unit: "KiB", reference: 940, better: "lower" });
  figures.push({ name: "bytes per minute of audio, voiceFormat gsm-wav (GSM 6.10 originals kept)", value: gsm.bytes.length / 1024, unit: "KiB", reference: 100, better: "lower" });
  if (!only || only.includes("all")) figures.push(...(await backfillRealistic()));
  return figures;
}

/**
 * Backfill of realistic recordings (30-90 s; Asterisk G.711 and GSM WAV, VPIM G.726, carrier
 * AMR) into one mailbox at the default voiceFormat, against the limit that binds: Graph's
 * request budget (10,000 per 10 minutes), its upload budget (150 MB per 5 minutes, enforced by
 * the simulator) or 4 requests in flight at 20 ms each, whichever allows fewer messages per
 * second for the requests and bytes one message really costs.
 */
export async function backfillRealistic(): Promise<Figure[]> {
  const { startWorld } = await import("../test/e2e/world.js");
  const { enqueueSync } = await import("../src/app/syncQueue.js");
  const { loadSample } = await import("../test/fixtures/voiceFormats.js");
  const { SYNC_KEY_PROP } = await import("../src/graph/voicemail.js");
  const N = 120;
  const w = await startWorld({ users: ["5101"], sim: { latencyMs: 20 }, quiet: true, timers: false });
  try {
    const tenant = "0c0ffee0-0000-4000-8000-000000000001";
    const user = w.sim.addUser(tenant, { userPrincipalName: "realistic@contoso.test" });
    const templates = ["asterisk-imap-storage.eml", "freepbx-notification.eml", "vpim-v2.eml", "carrier-visual-voicemail.eml"];
    const c = await w.imap("5101");
    let seed = 7;
    for (let i = 0; i < N; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      await c.append("INBOX", loadSample(templates[i % templates.length]!, { seconds: 30 + (seed % 61), messageId: `bf-real-${i}@bench.test` }));
    }
    await c.logout();
    const req0 = w.sim.stats.byMailbox.get(user.id) ?? 0;
    const thr0 = w.sim.stats.throttled;
    const up0 = w.sim.uploadBudget.stats.uploaded.get(user.id) ?? 0;
    await w.deps.state.createLink({ linkId: "L-5101", tenantId: tenant, endpointId: "voice-1", voiceMailbox: "5101", userId: user.id, profileId: "default", state: "enabled" });
    const t = performance.now();
    await enqueueSync(w.deps.syncQueue, { linkId: "L-5101", reason: "admin", at: Date.now() });
    const end = Date.now() + 600_000;
    while (Date.now() < end && w.sim.outlook(user.id).messages("inbox").length < N) await new Promise((r) => setTimeout(r, 100));
    const seconds = (performance.now() - t) / 1000;
    const copies = w.sim.outlook(user.id).messages("inbox");
    const keys = new Set(copies.map((m) => m.ext.get(SYNC_KEY_PROP.toLowerCase())?.value));
    const requests = (w.sim.stats.byMailbox.get(user.id) ?? 0) - req0;
    const bytes = (w.sim.uploadBudget.stats.uploaded.get(user.id) ?? 0) - up0;
    const perItem = { requests: requests / copies.length, bytes: bytes / copies.length };
    const limits = {
      "request budget": 10_000 / 600 / perItem.requests,
      "upload budget": (150 * 2 ** 20) / 300 / perItem.bytes,
      "4 in flight": 4 / 0.020 / perItem.requests,
    };
    const [bindingName, binding] = Object.entries(limits).sort((a, b) => a[1] - b[1])[0]!;
    const rate = copies.length / seconds;
    return [
      { name: `realistic backfill (${N} x 30-90 s, mixed formats -> MP3): messages per second vs the binding limit (${bindingName}: ${binding.toFixed(1)}/s)`, value: rate / binding, unit: "x limit", reference: 0.9, better: "higher" },
      { name: "realistic backfill: messages per second", value: rate, unit: "/s", reference: 0.9 * binding, better: "higher" },
      { name: "realistic backfill: bytes uploaded per message", value: perItem.bytes / 1024, unit: "KiB", reference: 200, better: "lower" },
      { name: "realistic backfill: 429 responses received", value: w.sim.stats.throttled - thr0, unit: "", reference: 0, better: "lower" },
      { name: "realistic backfill: duplicates", value: copies.length - keys.size, unit: "", reference: 0, better: "lower" },
      { name: "realistic backfill: copies", value: copies.length, unit: "", reference: N, better: "higher" },
    ];
  } finally { await w.stop(); }
}
