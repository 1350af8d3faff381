import type { InvocationContext } from "@azure/functions";
import type { FunctionDefinition } from "./definition.js";

/** One sync run per queue message; a thrown error makes the host retry, then park it in sync-mailbox-poison. */
async function syncWorker(message: unknown, _ctx: InvocationContext): Promise<void> {
  // The IMAP, MIME, iCalendar and Graph stacks load with the first run, not with the app.
  const [{ getDeps }, { handleSyncMessage }, { parseSyncRequest }] = await Promise.all([import("../src/app/deps.js"), import("../src/app/syncWorker.js"), import("../src/app/syncQueue.js")]);
  await handleSyncMessage(getDeps(), parseSyncRequest(message));
}

export const syncWorkerFunction: FunctionDefinition = {
  name: "syncWorker",
  // The queue lives in the host storage account (AzureWebJobsStorage); its name matches UMC_SYNC_QUEUE's default.
  trigger: { kind: "queue", queueName: "sync-mailbox", connection: "AzureWebJobsStorage" },
  handler: syncWorker,
};
