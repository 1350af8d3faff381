/**
 * Protocol trace for support: for a bounded time (`umconnect trace <link> --minutes 10`, or a
 * whole endpoint), every IMAP line exchanged for that link or endpoint goes to the normal log
 * (event "imap.trace", so App Insights in Azure), with credentials and message contents
 * redacted: LOGIN / AUTHENTICATE arguments and SASL continuations are dropped, literals and
 * FETCH body sections are replaced by their size. imapflow already masks the values it marks
 * sensitive; this is the second, independent layer.
 * The trace switch is a row with an end time (table "traces"), so every instance sees it.
 */
import { ConnectorError } from "../errors.js";
import type { MailboxLink } from "../state/stateStore.js";
import { storeAccessState } from "./credentials.js";
import type { Deps } from "./deps.js";

export const MAX_TRACE_MINUTES = 60;
const LINE_MAX = 300;

/** One protocol line made safe to log. `src`: "c" client, "s" server. */
export function redactProtocolLine(src: "c" | "s", line: string): string {
  let l = line.replace(/[\r\n]+$/, "");
  if (src === "c") {
    const m = /^(\S+\s+(?:UID\s+)?)(LOGIN|AUTHENTICATE)\b(.*)$/i.exec(l);
    if (m) return `${m[1]}${m[2]!.toUpperCase()} ${/^\s*\S+/.test(m[3]!) && m[2]!.toUpperCase() === "AUTHENTICATE" ? m[3]!.trim().split(/\s+/)[0] + " " : ""}[credentials redacted]`;
    // A bare continuation line (SASL response, APPEND literal data): never logged.
    if (!/^\S+\s+[A-Za-z]/.test(l) || /^[A-Za-z0-9+/=]{16,}$/.test(l.trim())) return "[continuation redacted]";
  }
  // Message contents: FETCH BODY[...] / BINARY[...] / RFC822 data and every literal.
  l = l.replace(/\b(BODY|BINARY|RFC822(?:\.TEXT|\.HEADER)?)(\[[^\]]*\](?:<\d+>)?)?\s+(\{\d+\}|"(?:[^"\\]|\\.)*"|\(\* [^)]*\*\))[\s\S]*$/i, (_m, what: string, section = "") => `${what}${section} [content redacted]`);
  l = l.replace(/\bENVELOPE\s+\([\s\S]*$/i, "ENVELOPE [content redacted]");
  l = l.replace(/\{(\d+)\+?\}[\s\S]*$/, "{$1} [literal redacted]");
  return l.length > LINE_MAX ? `${l.slice(0, LINE_MAX)} [...]` : l;
}

export type TraceTarget = { kind: "link"; linkId: string } | { kind: "endpoint"; endpointId: string };
const keyOf = (t: TraceTarget) => (t.kind === "link" ? `link:${t.linkId}` : `endpoint:${t.endpointId}`);

/** Switches the trace on for `minutes` (at most an hour: traces are for looking, not keeping). */
export async function startTrace(deps: Deps, target: TraceTarget, minutes: number): Promise<{ until: string }> {
  if (!Number.isFinite(minutes) || minutes <= 0 || minutes > MAX_TRACE_MINUTES) throw new ConnectorError("BAD_REQUEST", `--minutes must be between 1 and ${MAX_TRACE_MINUTES}`);
  if (target.kind === "link" && !(await deps.state.getLink(target.linkId))) throw new ConnectorError("NOT_FOUND", `no link ${target.linkId}`);
  if (target.kind === "endpoint") (await deps.directory()).endpoint(target.endpointId);
  const until = Date.now() + minutes * 60_000;
  await storeAccessState(deps).putMark(`trace:${keyOf(target)}`, String(until));
  // This process at once (a read already in flight must not put the old answer back); other
  // instances within TRACE_CHECK_MS.
  cache.delete(keyOf(target));
  switchedAt.set(keyOf(target), (switchedAt.get(keyOf(target)) ?? 0) + 1);
  deps.log.info("imap.trace.started", { target: keyOf(target), until: new Date(until).toISOString() });
  return { until: new Date(until).toISOString() };
}

/** How often a connection's trace switch is read again (per process). */
const TRACE_CHECK_MS = 5000;
const cache = new Map<string, { at: number; until: number }>();
/** Times a trace was switched in this process, per key: a read older than the switch is not cached. */
const switchedAt = new Map<string, number>();
async function traceUntil(deps: Deps, key: string): Promise<number> {
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < TRACE_CHECK_MS) return hit.until;
  const generation = switchedAt.get(key);
  const until = Number((await storeAccessState(deps).getMark(`trace:${key}`)) ?? 0);
  if (switchedAt.get(key) === generation) cache.set(key, { at: Date.now(), until });
  return until;
}

/** The protocol logger for a link's connection, when a trace covers it now. */
export async function protocolLogFor(deps: Deps, link: Pick<MailboxLink, "linkId" | "endpointId">): Promise<((src: "c" | "s", line: string) => void) | undefined> {
  const now = Date.now();
  const [l, e] = await Promise.all([traceUntil(deps, `link:${link.linkId}`), traceUntil(deps, `endpoint:${link.endpointId}`)]);
  if (Math.max(l, e) <= now) return undefined;
  const until = Math.max(l, e);
  return (src, line) => { if (Date.now() < until) deps.log.info("imap.trace", { linkId: link.linkId, endpoint: link.endpointId, dir: src === "c" ? "C" : "S", line: redactProtocolLine(src, line) }); };
}
