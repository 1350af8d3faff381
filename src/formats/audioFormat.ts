/**
 * What a recording really is, from its bytes first and its declared type second: voice systems
 * label GSM-in-WAV as audio/x-wav (Asterisk's "wav49", app_voicemail.c names the part
 * "audio/x-" + format), send WAV files as Audio/BASIC (Mitel MiVoice Business Embedded UM) and
 * raw G.726 as audio/32kadpcm (RFC 3802). The answer says how ffmpeg must read it, whether it
 * already plays everywhere, and how long it is when the header tells.
 */

export type AudioCodec =
  | "pcm" | "float" | "alaw" | "mulaw" | "gsm" | "g726" | "ima-adpcm" | "ms-adpcm" | "mp3" | "amr" | "amr-wb" | "vorbis" | "opus" | "aac" | "wma" | "unknown";

export interface AudioInfo {
  container: "wav" | "au" | "amr" | "mp3" | "ogg" | "mp4" | "asf" | "raw" | "unknown";
  codec: AudioCodec;
  sampleRate?: number;
  channels?: number;
  bitsPerSample?: number;
  /** From the container's own fields (WAV data size / byte rate, raw size / bit rate). */
  durationSeconds?: number;
  /** ffmpeg input options for containers it cannot probe (raw G.726, raw mu-law, raw GSM). */
  inputArgs: string[];
}

/** WAVE format tags (Microsoft mmreg.h / RFC 2361). */
const WAVE_TAGS: Record<number, AudioCodec> = {
  0x0001: "pcm", 0x0002: "ms-adpcm", 0x0003: "float", 0x0006: "alaw", 0x0007: "mulaw", 0x0011: "ima-adpcm",
  0x0031: "gsm", 0x0040: "g726", 0x0045: "g726", 0x0064: "g726", 0x0055: "mp3", 0x0160: "wma", 0x0161: "wma",
};

/** Raw payloads by declared type: ffmpeg's demuxer and the bit rate (bytes per second). */
const RAW: Record<string, { codec: AudioCodec; args: string[]; bytesPerSecond: number }> = {
  // RFC 3802 audio/32kadpcm: ITU-T G.726 at 32 kbit/s, 8 kHz mono, packed as in RFC 3551 4.5.4.
  "audio/32kadpcm": { codec: "g726", args: ["-f", "g726le", "-code_size", "4", "-ar", "8000"], bytesPerSecond: 4000 },
  "audio/g726-32": { codec: "g726", args: ["-f", "g726le", "-code_size", "4", "-ar", "8000"], bytesPerSecond: 4000 },
  // RFC 2046 4.3 audio/basic: 8-bit ISDN mu-law, 8 kHz mono (when it has no .snd header).
  "audio/basic": { codec: "mulaw", args: ["-f", "mulaw", "-ar", "8000", "-ac", "1"], bytesPerSecond: 8000 },
  "audio/pcmu": { codec: "mulaw", args: ["-f", "mulaw", "-ar", "8000", "-ac", "1"], bytesPerSecond: 8000 },
  "audio/x-ulaw": { codec: "mulaw", args: ["-f", "mulaw", "-ar", "8000", "-ac", "1"], bytesPerSecond: 8000 },
  "audio/pcma": { codec: "alaw", args: ["-f", "alaw", "-ar", "8000", "-ac", "1"], bytesPerSecond: 8000 },
  "audio/x-alaw": { codec: "alaw", args: ["-f", "alaw", "-ar", "8000", "-ac", "1"], bytesPerSecond: 8000 },
  // GSM 06.10 full rate: 33-byte frames of 20 ms (Asterisk's "gsm" format).
  "audio/gsm": { codec: "gsm", args: ["-f", "gsm"], bytesPerSecond: 1650 },
  "audio/x-gsm": { codec: "gsm", args: ["-f", "gsm"], bytesPerSecond: 1650 },
};

export function sniffAudio(bytes: Buffer, declaredType: string): AudioInfo {
  const type = declaredType.toLowerCase().split(";")[0]!.trim();
  const head = bytes.subarray(0, 12).toString("latin1");
  if (head.startsWith("RIFF") && head.slice(8, 12) === "WAVE") return wav(bytes);
  if (head.startsWith(".snd")) return au(bytes);
  if (head.startsWith("#!AMR-WB\n")) return { container: "amr", codec: "amr-wb", sampleRate: 16000, channels: 1, inputArgs: [] };
  if (head.startsWith("#!AMR\n")) return { container: "amr", codec: "amr", sampleRate: 8000, channels: 1, inputArgs: [] };
  if (head.startsWith("OggS")) return { container: "ogg", codec: head.includes("Opus") ? "opus" : "vorbis", inputArgs: [] };
  if (head.startsWith("ID3") || (bytes.length > 1 && bytes[0] === 0xff && (bytes[1]! & 0xe0) === 0xe0)) return mp3(bytes);
  if (head.slice(4, 8) === "ftyp") return { container: "mp4", codec: "aac", inputArgs: [] };
  if (bytes.subarray(0, 4).equals(Buffer.from([0x30, 0x26, 0xb2, 0x75]))) return { container: "asf", codec: "wma", inputArgs: [] };
  const raw = RAW[type];
  if (raw) return { container: "raw", codec: raw.codec, sampleRate: 8000, channels: 1, durationSeconds: bytes.length / raw.bytesPerSecond, inputArgs: raw.args };
  return { container: "unknown", codec: "unknown", inputArgs: [] };
}

function wav(b: Buffer): AudioInfo {
  const info: AudioInfo = { container: "wav", codec: "unknown", inputArgs: [] };
  let byteRate = 0;
  // RIFF chunks (Multimedia Programming Interface and Data Specifications 1.0): id, size, body, pad to even.
  for (let at = 12; at + 8 <= b.length;) {
    const id = b.toString("latin1", at, at + 4);
    const size = b.readUInt32LE(at + 4);
    const body = at + 8;
    if (id === "fmt " && body + 16 <= b.length) {
      let tag = b.readUInt16LE(body);
      // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the SubFormat GUID.
      if (tag === 0xfffe && size >= 40 && body + 26 <= b.length) tag = b.readUInt16LE(body + 24);
      info.codec = WAVE_TAGS[tag] ?? "unknown";
      info.channels = b.readUInt16LE(body + 2);
      info.sampleRate = b.readUInt32LE(body + 4);
      byteRate = b.readUInt32LE(body + 8);
      info.bitsPerSample = b.readUInt16LE(body + 14);
    } else if (id === "data") {
      // Streams written while recording may leave the size at 0 or 0xFFFFFFFF: use what is there.
      const dataBytes = size === 0 || size === 0xffffffff || body + size > b.length ? b.length - body : size;
      if (byteRate > 0) info.durationSeconds = dataBytes / byteRate;
      break;
    }
    if (size > b.length) break;
    at = body + size + (size % 2);
  }
  return info;
}

/** MPEG audio (ISO/IEC 11172-3, 13818-3, and the 2.5 extension): length from the first frame. */
function mp3(b: Buffer): AudioInfo {
  const info: AudioInfo = { container: "mp3", codec: "mp3", inputArgs: [] };
  let at = 0;
  // ID3v2 tag: 10-byte header with a syncsafe size.
  if (b.toString("latin1", 0, 3) === "ID3" && b.length >= 10) at = 10 + ((b[6]! & 0x7f) << 21 | (b[7]! & 0x7f) << 14 | (b[8]! & 0x7f) << 7 | (b[9]! & 0x7f));
  while (at + 4 <= b.length && !(b[at] === 0xff && (b[at + 1]! & 0xe0) === 0xe0)) at++;
  if (at + 4 > b.length) return info;
  const version = (b[at + 1]! >> 3) & 3; // 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
  const layer = (b[at + 1]! >> 1) & 3; // 1 = Layer III
  const rateIndex = (b[at + 2]! >> 2) & 3, bitrateIndex = b[at + 2]! >> 4;
  if (layer !== 1 || rateIndex === 3 || bitrateIndex === 0 || bitrateIndex === 15 || version === 1) return info;
  const kbps = (version === 3 ? [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320] : [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160])[bitrateIndex]!;
  const rate = [44100, 48000, 32000][rateIndex]! / (version === 3 ? 1 : version === 2 ? 2 : 4);
  info.sampleRate = rate;
  info.channels = (b[at + 3]! >> 6) === 3 ? 1 : 2;
  // A Xing/Info frame counts the frames (VBR); otherwise the stream is read as constant bit rate.
  const samplesPerFrame = version === 3 ? 1152 : 576;
  const xing = b.indexOf("Xing", at) >= 0 && b.indexOf("Xing", at) < at + 64 ? b.indexOf("Xing", at) : b.indexOf("Info", at) >= 0 && b.indexOf("Info", at) < at + 64 ? b.indexOf("Info", at) : -1;
  if (xing >= 0 && xing + 12 <= b.length && (b.readUInt32BE(xing + 4) & 1)) info.durationSeconds = (b.readUInt32BE(xing + 8) * samplesPerFrame) / rate;
  else info.durationSeconds = ((b.length - at) * 8) / (kbps * 1000);
  return info;
}

function au(b: Buffer): AudioInfo {
  // Sun/NeXT .au: magic, data offset, data size, encoding (1 = mu-law, 2/3 = PCM, 27 = A-law), rate, channels.
  if (b.length < 24) return { container: "au", codec: "unknown", inputArgs: [] };
  const enc = b.readUInt32BE(12), rate = b.readUInt32BE(16), channels = b.readUInt32BE(20), offset = b.readUInt32BE(4);
  const codec: AudioCodec = enc === 1 ? "mulaw" : enc === 27 ? "alaw" : enc === 2 || enc === 3 ? "pcm" : "unknown";
  const bytesPerSample = enc === 3 ? 2 : 1;
  const duration = rate && channels ? Math.max(0, b.length - offset) / (rate * channels * bytesPerSample) : undefined;
  return { container: "au", codec, sampleRate: rate, channels, durationSeconds: duration, inputArgs: [] };
}

/** The profile's choices (profiles.ts `voiceFormat`). */
export type VoiceFormat = "mp3" | "wav" | "gsm-wav";

/** Whether the bytes are already what the target format would produce (no transcoding needed). */
export function alreadyIn(info: AudioInfo, target: VoiceFormat): boolean {
  if (target === "mp3") return info.container === "mp3";
  if (target === "wav") return info.container === "wav" && info.codec === "pcm" && (info.bitsPerSample === 16 || info.bitsPerSample === 8);
  return info.container === "wav" && info.codec === "gsm";
}
