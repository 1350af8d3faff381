/**
 * Transcodes one long recording in a process of its own and reports the peak memory of both
 * processes involved, from the kernel: this process's ru_maxrss (getrusage) and ffmpeg's
 * VmHWM (/proc/<pid>/status, its resident high-water mark, read until it exits).
 * argv: <kind> <seconds> <voiceFormat>
 */
import fs from "node:fs";
import { toPlayable } from "../src/formats/transcode.js";
import { audio } from "../test/fixtures/voiceFormats.js";
/** The kernel's record of this process's peak resident set (getrusage ru_maxrss, in KiB). */
const peakRssBytes = () => process.resourceUsage().maxRSS * 1024;

const [kind, seconds, format] = [process.argv[2]!, Number(process.argv[3]), process.argv[4] as "mp3" | "wav" | "gsm-wav"];
const input = audio(kind, seconds);
const baseline = peakRssBytes();
let ffmpegPeak = 0;
const seen = new Set<number>();
const poll = setInterval(() => {
  // ffmpeg is this process's only child while transcoding.
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).map(Number)) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      if (!status.includes(`PPid:\t${process.pid}\n`)) continue;
      seen.add(pid);
      const hwm = Number(status.match(/VmHWM:\s+(\d+) kB/)?.[1] ?? 0) * 1024;
      ffmpegPeak = Math.max(ffmpegPeak, hwm);
    } catch { /* exited */ }
  }
}, 20);
const t = performance.now();
const out = await toPlayable({ name: "long.wav", contentType: kind === "g726" ? "audio/32kadpcm" : "audio/wav", bytes: input }, format);
clearInterval(poll);
process.stdout.write(JSON.stringify({ inputBytes: input.length, outputBytes: out.bytes.length, seconds: out.durationSeconds, ms: performance.now() - t, baselineRss: baseline, peakRss: peakRssBytes(), ffmpegPeak, children: seen.size }) + "\n");
