/**
 * Telling "wrong password" from "busy, try later": the verdict table (RFC 5530 codes first,
 * then vendor wordings) and the same answers given by a real TCP server to the real imapflow
 * client through connectMailbox. Hostile stores (garbage, silence, dropped connections) end
 * in a typed, transient error and leave no connection behind.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { judgeLoginRefusal } from "../../src/imap/loginAnswers.js";
import { connectMailbox, type ImapEndpoint } from "../../src/imap/endpoint.js";
import { isConnectorError } from "../../src/errors.js";
import { startScriptedImap, type ScriptedImap } from "../harness/scriptedImap.js";

describe("login refusal verdicts", () => {
  it.each([
    // RFC 5530 section 3 codes
    ["A1 NO [AUTHENTICATIONFAILED] Authentication failed.", "rejected"],
    ["A1 NO [AUTHORIZATIONFAILED] Authorization failed", "rejected"],
    ["A1 NO [EXPIRED] Password expired", "rejected"],
    ["A1 NO [UNAVAILABLE] Temporary authentication failure. [host:2026-11-30 13:00:00]", "busy"],
    ["A1 NO [LIMIT] At connection limit", "busy"],
    ["A1 NO [INUSE] Mailbox in use", "busy"],
    // vendor wordings without a code
    ["* BYE Maximum number of connections from user+IP exceeded (mail_max_userip_connections=3)", "busy"],
    ["A1 NO User is authenticated but not connected.", "busy"],
    ["A1 NO Request is throttled. Suggested Backoff Time: 92 milliseconds", "busy"],
    ["A1 NO Too many connections, try again later", "busy"],
    ["A1 NO Authentication failed.", "rejected"],
    ["A1 NO Invalid credentials", "rejected"],
    // the ambiguous one: Exchange's answer for a wrong password and for other states alike
    ["A1 NO AUTHENTICATE failed.", "ambiguous"],
    ["A1 NO LOGIN failed.", "ambiguous"],
  ])("%s -> %s", (answer, verdict) => {
    expect(judgeLoginRefusal(undefined, answer)).toBe(verdict);
  });
  it("prefers the parsed response code to the text", () => {
    expect(judgeLoginRefusal("UNAVAILABLE", "A1 NO Authentication failed.")).toBe("busy");
    expect(judgeLoginRefusal("AUTHENTICATIONFAILED", "A1 NO try again later")).toBe("rejected");
  });
});

describe("login refusals from a live server", () => {
  let srv: ScriptedImap;
  beforeAll(async () => { srv = await startScriptedImap(); });
  afterAll(async () => { await srv?.stop(); });
  let n = 0;
  const ep = (): ImapEndpoint => ({ id: `scripted-${n++}`, host: srv.host, port: srv.port, tls: "plaintext", maxConnections: 1, connectTimeoutMs: 800, acquireTimeoutMs: 500, auth: { mode: "user-password", password: "pw" } });
  const loginWith = async (o: Parameters<ScriptedImap["set"]>[0]) => { srv.set(o); return connectMailbox(ep(), "4711").then(async (c) => { await c.release(); return undefined; }, (e: unknown) => e); };

  it("a definite rejection is IMAP_AUTH_FAILED, not transient", async () => {
    const e = await loginWith({ loginAnswer: "NO [AUTHENTICATIONFAILED] Authentication failed." });
    expect(isConnectorError(e, "IMAP_AUTH_FAILED") && !e.transient).toBe(true);
  });
  it("[UNAVAILABLE], [LIMIT] and vendor busy wordings are a connection limit (transient), not a wrong password", async () => {
    for (const answer of ["NO [UNAVAILABLE] Temporary authentication failure.", "NO [LIMIT] Too many connections", "NO User is authenticated but not connected."]) {
      const e = await loginWith({ loginAnswer: answer });
      expect(isConnectorError(e, "IMAP_CONNECTION_LIMIT") && e.transient, answer).toBe(true);
    }
  });
  it("an ambiguous refusal is IMAP_AUTH_FAILED but transient (the credential gate decides)", async () => {
    const e = await loginWith({ loginAnswer: "NO AUTHENTICATE failed." });
    expect(isConnectorError(e, "IMAP_AUTH_FAILED") && e.transient).toBe(true);
  });
  it("garbage, silence and dropped connections end in a transient typed error and leak nothing", async () => {
    for (const greeting of ["garbage", "silent", "drop"] as const) {
      const e = await loginWith({ greeting });
      expect(isConnectorError(e) && e.transient, greeting).toBe(true);
      await expect.poll(() => srv.open(), { timeout: 3000 }).toBe(0);
    }
    // The endpoint's one connection slot came back each time: a normal login works.
    const endpoint = ep();
    srv.set({});
    for (const greeting of ["garbage", "silent", "drop", "ok"] as const) {
      srv.set({ greeting });
      const r = await connectMailbox(endpoint, "4711").then(async (c) => { await c.release(); return "ok"; }, () => "failed");
      expect(r).toBe(greeting === "ok" ? "ok" : "failed");
    }
    await expect.poll(() => srv.open(), { timeout: 3000 }).toBe(0);
  }, 30_000);
});
