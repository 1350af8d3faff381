/**
 * Property tests over the corpus (test/fixtures/voice-formats/): messages mutated the ways
 * real mail systems and relays rewrite them.
 *  - Lossless rewrites (headers reordered, folded, values as RFC 2047 encoded words) change
 *    nothing: same class and caller as expected.json.
 *  - Lossy damage (MIME parts missing, truncation, flipped bytes) never crashes (only typed
 *    errors) and never names a different caller: the caller is the expected one or unknown.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parseVoiceMessage } from "../../src/formats/voiceMessage.js";
import { isConnectorError } from "../../src/errors.js";
import { corpus, loadSample } from "../fixtures/voiceFormats.js";

const samples = Object.entries(corpus()).filter(([, e]) => !e.error).map(([file, e]) => ({ file, e, raw: loadSample(file).toString("latin1") }));

/** Header block split into fields (a field keeps its folded continuation lines). */
function split(raw: string): { fields: string[]; body: string } {
  const end = raw.indexOf("\r\n\r\n");
  const fields: string[] = [];
  for (const line of raw.slice(0, end).split("\r\n")) {
    if (/^[ \t]/.test(line) && fields.length) fields[fields.length - 1] += "\r\n" + line;
    else fields.push(line);
  }
  return { fields, body: raw.slice(end) };
}

const ENCODABLE = /^(subject|x-[\w-]+|from|to)$/i;

function encodeWord(text: string, b: boolean): string {
  const bytes = Buffer.from(text, "utf8");
  return b ? `=?UTF-8?B?${bytes.toString("base64")}?=` : `=?UTF-8?Q?${[...bytes].map((c) => (/[A-Za-z0-9]/.test(String.fromCharCode(c)) ? String.fromCharCode(c) : "=" + c.toString(16).toUpperCase().padStart(2, "0"))).join("")}?=`;
}

/** RFC 2047 section 5: encoded words in unstructured text, and in a display name (phrase). */
function encodeField(field: string, b: boolean): string {
  const m = field.match(/^([\w-]+):\s?([\s\S]*)$/);
  if (!m || !ENCODABLE.test(m[1]!) || /\r\n|=\?/.test(m[2]!)) return field;
  const [, name, value] = m as unknown as [string, string, string];
  if (/^(from|to)$/i.test(name)) {
    const addr = value.match(/^"?([^"<]*?)"?\s*(<[^>]*>)$/);
    return addr && addr[1]!.trim() ? `${name}: ${encodeWord(addr[1]!.trim(), b)} ${addr[2]}` : field;
  }
  return value.trim() ? `${name}: ${encodeWord(value, b)}` : field;
}

/** RFC 5322 2.2.3: a fold is CRLF before white space. */
function foldField(field: string, at: number): string {
  const spaces = [...field.matchAll(/ /g)].map((x) => x.index!).filter((i) => i > field.indexOf(":") + 1 && !/[ \n]/.test(field[i - 1]!));
  if (!spaces.length) return field;
  const i = spaces[at % spaces.length]!;
  return field.slice(0, i) + "\r\n" + field.slice(i);
}

const lossless = fc.record({
  sample: fc.nat({ max: samples.length - 1 }),
  order: fc.array(fc.nat(), { minLength: 40, maxLength: 40 }),
  folds: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 6 }),
  encodes: fc.array(fc.tuple(fc.nat(), fc.boolean()), { maxLength: 6 }),
});

describe("voice messages rewritten by mail systems (property)", () => {
  it("reordered, folded and encoded headers change neither class nor caller", async () => {
    await fc.assert(fc.asyncProperty(lossless, async ({ sample, order, folds, encodes }) => {
      const { e, raw } = samples[sample]!;
      const { fields, body } = split(raw);
      // Shuffle (a stable sort on random keys), then fold and encode some fields.
      let out = fields.map((f, i) => ({ f, k: order[i % order.length]! })).sort((a, b) => a.k - b.k).map((x) => x.f);
      for (const [i, b] of encodes) out[i % out.length] = encodeField(out[i % out.length]!, b);
      for (const [i, at] of folds) out[i % out.length] = foldField(out[i % out.length]!, at);
      const m = await parseVoiceMessage(Buffer.from(out.join("\r\n") + body, "latin1"));
      expect(m.class).toBe(e.class);
      expect({ name: m.caller.name, number: m.caller.number }).toEqual({ name: e.caller?.name, number: e.caller?.number });
      expect(m.importance).toBe(e.importance);
      expect(m.sensitivity).toBe(e.sensitivity);
    }), { numRuns: 200 });
  }, 120_000);

  it("missing parts, truncation and flipped bytes: typed errors only, never another caller", async () => {
    const damage = fc.record({
      sample: fc.nat({ max: samples.length - 1 }),
      dropPart: fc.option(fc.nat(), { nil: undefined }),
      cut: fc.option(fc.double({ min: 0.05, max: 1, noNaN: true }), { nil: undefined }),
      flips: fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
    });
    await fc.assert(fc.asyncProperty(damage, async ({ sample, dropPart, cut, flips }) => {
      const { e, raw } = samples[sample]!;
      let text = raw;
      const boundary = raw.match(/boundary="?([^";\r\n]+)"?/i)?.[1];
      if (dropPart !== undefined && boundary) {
        const parts = text.split(`\r\n--${boundary}`);
        if (parts.length > 2) { parts.splice(1 + (dropPart % (parts.length - 2)), 1); text = parts.join(`\r\n--${boundary}`); }
      }
      const bytes = Buffer.from(text, "latin1");
      let buf = cut === undefined ? bytes : bytes.subarray(0, Math.max(1, Math.floor(bytes.length * cut)));
      buf = Buffer.from(buf);
      for (const [at, v] of flips) buf[Math.floor(at * (buf.length - 1))] = v;
      let m;
      try { m = await parseVoiceMessage(buf); } catch (err) { expect(isConnectorError(err), String(err)).toBe(true); return; }
      // Flipped bytes can corrupt a name or number into something else: only whole-part
      // damage is held to "the expected caller or nobody".
      if (flips.length) return;
      // Without its recording a notification is plain mail, whose sender is no caller.
      if (m.class !== "voice" && m.class !== "fax") return;
      if (m.caller.name !== undefined) expect(m.caller.name).toBe(e.caller?.name);
      if (m.caller.number !== undefined) expect(m.caller.number).toBe(e.caller?.number);
    }), { numRuns: 300 });
  }, 180_000);
});
