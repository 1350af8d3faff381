/**
 * The one way the app opens a voice mailbox: the link's credential (its own password or the
 * endpoint's super user, src/app/credentials.ts), through the lockout gate
 * (src/app/credentialGate.ts), within the store's connection budget across all instances
 * (src/app/connectionBudget.ts). Sync runs of every kind and the operator's test login use it.
 */
import { openVoiceMailbox, type VoiceMailboxOptions, type VoiceMailboxSession } from "../imap/voiceMailbox.js";
import type { MailboxLink } from "../state/stateStore.js";
import { gatedLogin, type GateOptions } from "./credentialGate.js";
import { loginCredential } from "./credentials.js";
import type { Deps } from "./deps.js";
import { BUDGET_WAIT_MS, budgetInUse, budgetRetryDelay, tryTakeConnection } from "./connectionBudget.js";
import { protocolLogFor } from "./protocolTrace.js";

export async function openLinkedMailbox(deps: Deps, link: Pick<MailboxLink, "linkId" | "endpointId" | "voiceMailbox">, options: VoiceMailboxOptions, gate: GateOptions & { waitForBudget?: boolean } = {}): Promise<VoiceMailboxSession> {
  const loaded = await loginCredential(deps, link);
  const protocolLog = await protocolLogFor(deps, link);
  const cred = protocolLog ? { ...loaded, endpoint: { ...loaded.endpoint, protocolLog } } : loaded;
  const budget = cred.endpoint.connectionBudget;
  const purpose = options.watch ? "watch" : "sync";
  // A watch does not wait for the budget: its mailbox stays with the poll (src/app/watchers.ts).
  // Nor does a connection that only speeds a run up (the mirror's extra append lane).
  const deadline = Date.now() + (options.watch || gate.waitForBudget === false ? 0 : BUDGET_WAIT_MS);
  for (let attempt = 0; ; attempt++) {
    let release: (() => void) | undefined;
    let full = false;
    try {
      // The budget is taken inside the gate (a stopped credential costs no slot), one try
      // per login slot: the wait happens below, outside it, so a full budget does not hold up
      // the logins of other mailboxes with the same credential.
      const session = await gatedLogin(deps, cred, async () => {
        if (budget) {
          release = await tryTakeConnection(deps, cred.endpointId, link.voiceMailbox, budget, purpose);
          if (!release) { full = true; throw budgetInUse(cred.endpointId, link.voiceMailbox, budget, purpose); }
        }
        return openVoiceMailbox(cred.endpoint, link.voiceMailbox, options);
      }, gate);
      const free = release;
      return { ...session, close: async () => { try { await session.close(); } finally { free?.(); } } };
    } catch (e) {
      release?.();
      if (!full || Date.now() >= deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, budgetRetryDelay(attempt)));
  }
}
