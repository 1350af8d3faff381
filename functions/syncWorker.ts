import type { InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";
import { getDeps } from "../src/app/deps.js";
import { handleSyncMessage } from "../src/app/syncWorker.js";
import { parseSyncRequest } from "../src/app/syncQueue.js";

/** One sync run per queue message; a thrown error makes the host retry, then park it in sync-mailbox-poison. */
async function syncWorker(message: unknown, _ctx: InvocationContext): Promise<void> {
  await handleSyncMessage(getDeps(), parseSyncRequest(message));
}

export const syncWorkerFunction: FunctionDefinition = {
  name: "syncWorker",
  // The queue lives in the host storage account (AzureWebJobsStorage); its name matches UMC_SYNC_QUEUE's default.
  trigger: { kind: "queue", queueName: "sync-mailbox", connection: "AzureWebJobsStorage" },
  handler: syncWorker,
};
