/** One hostile-MIME case in a fresh process: prints input size, time, peak RSS growth, outcome. */
import { parseVoiceMessage } from "../src/formats/voiceMessage.js";
import { isConnectorError } from "../src/errors.js";
import { avayaVoiceMessage } from "../test/fixtures/voicemail.js";
import { peakRssBytes } from "./report.js";

const head = "From: a@b.test\r\nTo: c@d.test\r\nSubject: x\r\nMessage-ID: <h@x>\r\nMIME-Version: 1.0\r\n";
function build(name: string): Buffer {
  switch (name) {
    case "deep-nesting": {
      let n = "--b0\r\nContent-Type: audio/wav\r\nContent-Transfer-Encoding: base64\r\n\r\nUklGRg==\r\n--b0--\r\n";
      for (let i = 1; i < 5000; i++) n = `--b${i}\r\nContent-Type: multipart/mixed; boundary="b${i - 1}"\r\n\r\n${n}--b${i}--\r\n`;
      return Buffer.from(`${head}Content-Type: multipart/mixed; boundary="b4999"\r\n\r\n${n}`);
    }
    case "huge-header": return Buffer.from(`${head}X-Long: ${"a".repeat(40 * 1024 * 1024)}\r\n\r\nbody`);
    case "many-headers": return Buffer.from(`${head}${"X-H: v\r\n".repeat(1_000_000)}\r\nbody`);
    case "part-flood": return Buffer.from(`${head}Content-Type: multipart/mixed; boundary="p"\r\n\r\n${"--p\r\nContent-Type: audio/wav\r\nContent-Transfer-Encoding: base64\r\n\r\nUklGRg==\r\n".repeat(200_000)}--p--\r\n`);
    case "encoded-word-flood": return Buffer.from(`From: a@b.test\r\nSubject: ${"=?utf-8?B?w6TDtsO8?= ".repeat(500_000)}\r\nContent-Type: audio/wav\r\n\r\nRIFF`);
    case "max-size-audio": return avayaVoiceMessage({ audioSamples: 17_000_000 }); // ~45 MB as base64, just under the 50 MB cap
    default: throw new Error(name);
  }
}

const raw = build(process.argv[2]!);
if (global.gc) global.gc();
const base = process.memoryUsage().rss;
const t0 = performance.now();
const outcome = await parseVoiceMessage(raw).then(() => "read", (e) => (isConnectorError(e) ? e.code : `untyped ${String(e)}`));
const ms = performance.now() - t0;
// The kernel's peak for the process (getrusage ru_maxrss) over the resident size before parsing:
// an upper bound (building the input may have peaked higher), never a missed spike.
process.stdout.write(JSON.stringify({ inputMB: raw.length / 1024 / 1024, ms, peakRssDeltaMB: Math.max(0, peakRssBytes() - base) / 1024 / 1024, outcome }) + "\n");
