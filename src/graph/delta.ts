/**
 * A delta query read to its end (https://learn.microsoft.com/en-us/graph/delta-query-overview):
 * every @odata.nextLink page is followed until the page that carries the @odata.deltaLink, the
 * cursor for the next round. The same item can come back more than once in one round
 * ("replays"), so the last word on an id wins: a later @removed undoes an earlier change and
 * a later change undoes an earlier @removed.
 */
import { ConnectorError } from "../errors.js";
import type { GraphClient } from "./client.js";

import type { DeltaChanges } from "../sync/ports.js";

export type { DeltaChanges };

export interface DeltaItem { id?: unknown; "@removed"?: unknown }

export interface DeltaRead<R extends DeltaItem, T> {
  /** The round's first request: the stored deltaLink, or the query that starts a full listing. */
  deltaLink: string | undefined;
  firstUrl: string;
  pageSize: number;
  mailbox: string;
  /** An item that is not @removed, as the caller keeps it. */
  map: (item: R) => T;
  /** Named in the error when the last page has no deltaLink ("contact delta"). */
  what?: string;
}

export async function readDelta<R extends DeltaItem, T>(graph: GraphClient, o: DeltaRead<R, T>): Promise<DeltaChanges<T>> {
  const upserted = new Map<string, T>();
  const removed = new Set<string>();
  let url: string | undefined = o.deltaLink ?? o.firstUrl;
  let next = "";
  while (url) {
    const page: { value: R[]; "@odata.nextLink"?: string; "@odata.deltaLink"?: string } =
      await graph.request({ method: "GET", url, headers: { Prefer: `odata.maxpagesize=${o.pageSize}` }, mailbox: o.mailbox });
    for (const item of page.value) {
      const id = String(item.id);
      if (item["@removed"]) { removed.add(id); upserted.delete(id); }
      else { upserted.set(id, o.map(item)); removed.delete(id); }
    }
    url = page["@odata.nextLink"];
    if (page["@odata.deltaLink"]) next = page["@odata.deltaLink"];
  }
  if (!next) throw new ConnectorError("GRAPH_REQUEST_FAILED", `${o.what ?? "delta"} ended without a deltaLink`, { mailboxId: o.mailbox });
  return { full: o.deltaLink === undefined, upserted: [...upserted.values()], removed: [...removed], deltaLink: next };
}
