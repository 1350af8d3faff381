/**
 * MULTIAPPEND (RFC 3502): several messages appended to one folder in one APPEND command, one
 * round trip instead of one per message; all or none are stored (section 2: a NO stores none).
 * imapflow has no MULTIAPPEND: its `exec` sends the command with the library's own encoder
 * (small literals non-synchronizing with LITERAL+/LITERAL-, RFC 7888). The new UIDs come from
 * UIDPLUS's APPENDUID, whose UID set lists them in append order (RFC 4315 section 3).
 */
import type { ImapFlow } from "imapflow";
import { expandUidSet } from "./mirrorFolder.js";

export interface AppendItem { source: Buffer; flags: string[] }

/** Whether the server takes several messages in one APPEND (its MULTIAPPEND capability). */
export const canMultiAppend = (client: ImapFlow) => client.capabilities.has("MULTIAPPEND");

/**
 * Sends one MULTIAPPEND; returns the new UIDs in order, or `undefined` when the server gave no
 * usable APPENDUID (the caller then finds the copies by their identity).
 */
export async function multiAppend(client: ImapFlow, folder: string, items: readonly AppendItem[]): Promise<number[] | undefined> {
  const exec = (client as unknown as { exec(cmd: string, attrs: unknown[]): Promise<{ response: { attributes?: Array<{ section?: Array<{ value?: unknown }> }> }; next(): void }> }).exec.bind(client);
  const attrs: unknown[] = [{ type: "STRING", value: folder }];
  for (const it of items) {
    attrs.push(it.flags.map((f) => ({ type: "ATOM", value: f })));
    attrs.push({ type: "LITERAL", value: it.source });
  }
  const r = await exec("APPEND", attrs);
  r.next();
  const section = r.response.attributes?.[0]?.section;
  const uids = section && String(section[0]?.value ?? "").toUpperCase() === "APPENDUID" ? expandUidSet(String(section[2]?.value ?? "")) : [];
  return uids.length === items.length ? uids : undefined;
}
