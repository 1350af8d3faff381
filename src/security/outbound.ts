/**
 * Outgoing calls to addresses that configuration names (UC-location callbacks, the alert
 * webhook) (issue 12, point 6). Such a URL is chosen by whoever writes the configuration, so:
 *  - redirects are never followed (node's https client does not follow them; a 3xx is a
 *    failure), so the https-only rule cannot be bypassed by a 307 to http:// or to an
 *    internal host;
 *  - the host's addresses are checked after DNS resolution, in the connection's own lookup
 *    (no second resolution an attacker's DNS could answer differently): loopback, private
 *    (RFC 1918, RFC 4193), link-local (RFC 3927, RFC 4291; this includes the cloud metadata
 *    service at 169.254.169.254), shared (RFC 6598), unspecified, multicast and reserved
 *    addresses are refused;
 *  - a lab may allow named hosts (UMC_OUTBOUND_ALLOW_HOSTS); src/config.ts refuses that
 *    setting when UMC_ENVIRONMENT=azure.
 */
import dns from "node:dns";
import https from "node:https";
import net from "node:net";
import { ConnectorError } from "../errors.js";

const blocked = new net.BlockList();
for (const [a, p] of [["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12], ["192.0.0.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15], ["224.0.0.0", 4], ["240.0.0.0", 4]] as const) blocked.addSubnet(a, p, "ipv4");
for (const [a, p] of [["::", 128], ["::1", 128], ["fc00::", 7], ["fe80::", 10], ["ff00::", 8], ["64:ff9b::", 96], ["2001:db8::", 32]] as const) blocked.addSubnet(a, p, "ipv6");

/** True when an address is not a public unicast address. */
export function isInternalAddress(address: string): boolean {
  const v = net.isIP(address);
  if (v === 4) return blocked.check(address, "ipv4");
  if (v === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    return mapped ? blocked.check(mapped, "ipv4") : blocked.check(address, "ipv6");
  }
  return true;
}

export interface OutboundPolicy {
  /** Hosts (names or literal addresses) a lab allows to resolve to internal addresses. */
  allowHosts: readonly string[];
}

export class OutboundRefused extends Error {
  constructor(readonly host: string) {
    super(`${host} resolves to an internal address`);
  }
}

const allowed = (policy: OutboundPolicy, host: string) => policy.allowHosts.some((h) => h.toLowerCase() === host.toLowerCase());

/**
 * POSTs a JSON body; resolves with the status code. Throws CALLBACK_FAILED (transient) when
 * the host is unreachable, and CALLBACK_FAILED (not transient) when it is refused by the rules
 * above. `what` names the call in errors (never the URL's path or query).
 */
export async function postJson(url: string, headers: Record<string, string>, body: string, policy: OutboundPolicy, opts: { timeoutMs?: number; what: string; ids?: { endpoint?: string } }): Promise<number> {
  const u = new URL(url);
  if (u.protocol !== "https:") throw new ConnectorError("CALLBACK_FAILED", `${opts.what}: only https URLs are called`, { ...opts.ids, transient: false });
  const host = u.hostname.replace(/^\[|\]$/g, "");
  if (net.isIP(host) && isInternalAddress(host) && !allowed(policy, host)) throw new ConnectorError("CALLBACK_FAILED", `${opts.what}: ${host} is an internal address and is not called`, { ...opts.ids, transient: false });
  const lookup: net.LookupFunction = (hostname, options, cb) => {
    dns.lookup(hostname, { all: true, verbatim: true, family: options.family }, (err, addresses) => {
      if (err) return (cb as (e: Error) => void)(err);
      if (!allowed(policy, hostname) && addresses.some((a) => isInternalAddress(a.address))) return (cb as (e: Error) => void)(new OutboundRefused(hostname));
      if (options.all) return (cb as (e: null, a: dns.LookupAddress[]) => void)(null, addresses);
      const first = addresses[0]!;
      (cb as (e: null, a: string, f: number) => void)(null, first.address, first.family);
    });
  };
  return new Promise<number>((resolve, reject) => {
    const req = https.request(u, { method: "POST", headers: { ...headers, "content-length": String(Buffer.byteLength(body)) }, lookup, timeout: opts.timeoutMs ?? 10_000 }, (res) => {
      // The answer's body is not needed: read and drop at most 64 KiB of it, then let go.
      let seen = 0;
      res.on("data", (c: Buffer) => { seen += c.length; if (seen > 64 * 1024) res.destroy(); });
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("close", () => resolve(res.statusCode ?? 0));
      res.on("error", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => {
      const refused = e instanceof OutboundRefused || (e as { cause?: unknown }).cause instanceof OutboundRefused;
      reject(new ConnectorError("CALLBACK_FAILED", refused ? `${opts.what}: ${u.host} resolves to an internal address and is not called` : `${opts.what}: ${u.host} unreachable`, { ...opts.ids, cause: e, transient: !refused }));
    });
    req.end(body);
  });
}
