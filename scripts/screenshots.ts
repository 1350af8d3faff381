/**
 * `npm run demo -- screenshots`: starts its own local world (as the tests do), links a few
 * mailboxes, leaves voicemails (one without audio, so a problem shows), pauses one, lets the
 * worker run, then opens each status page in headless Chromium and writes the screenshots to
 * docs/screenshots/ (linked from the README). Everything shown is real output of that world.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ADMIN_TOKEN, startWorld } from "../test/e2e/world.js";
import { avayaVoiceMessage } from "../test/fixtures/voicemail.js";
import { launchChromium } from "../test/harness/chromium.js";
import { setLinkState } from "../src/admin/links.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(root, "docs", "screenshots");
fs.mkdirSync(out, { recursive: true });

const people: Array<[string, string]> = [["4711", "alice"], ["4712", "bob"], ["4713", "carol"], ["4714", "dave"], ["4715", "erin"]];
const w = await startWorld({ users: people.map(([m]) => m), quiet: true });
try {
  for (const [mb, name] of people) await w.link(mb, `${name}@contoso.test`);
  for (const [mb] of people.slice(0, 3)) await w.dc.lda(mb, avayaVoiceMessage({ id: `shot-${mb}`, caller: "Demo Caller", seconds: 12 }));
  await w.dc.lda("4713", avayaVoiceMessage({ id: "shot-noaudio", noAudio: true }));
  await w.dc.lda("4711", avayaVoiceMessage({ id: "shot-2", caller: "Front Desk", seconds: 31 }));
  await new Promise((r) => setTimeout(r, 8000));
  await w.queueDrained(60_000);
  await setLinkState(w.deps, "L-4715", "paused");
  const browser = await launchChromium();
  try {
    const pages: Array<[string, string, { width: number; height: number }]> = [
      ["status.png", "?format=html", { width: 1280, height: 900 }],
      ["status-problems.png", "?format=html&problem=any", { width: 1280, height: 900 }],
      ["status-sorted-unread.png", "?format=html&sort=unread&dir=desc", { width: 1280, height: 900 }],
      ["status-link.png", "?format=html&link=L-4711", { width: 1280, height: 900 }],
      ["status-phone.png", "?format=html", { width: 390, height: 844 }],
    ];
    for (const [file, query, viewport] of pages) {
      const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport, extraHTTPHeaders: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const page = await context.newPage();
      await page.goto(`${w.host.url}/api/admin/status${query}`);
      await page.screenshot({ path: path.join(out, file), fullPage: true });
      await context.close();
      console.log(`wrote docs/screenshots/${file}`);
    }
  } finally {
    await browser.close();
  }
} finally {
  await w.stop();
}
