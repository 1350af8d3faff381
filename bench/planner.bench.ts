/**
 * Planner cost over 10,000 linked items with 10% changed: must stay far below a run's I/O.
 * The time only counts when the plan is the right one: exactly the 1,000 changed items (read on
 * the phone) become 1,000 "mark read in Exchange" actions, nothing else. A planner that planned
 * nothing would be fast; the count row fails it (seen: planVoicemail returning no actions ->
 * "actions planned" 0, NO).
 */
import { planVoicemail, type ItemView } from "../src/sync/voicemailPlanner.js";
import type { Figure } from "./report.js";

export const title = "Voicemail planner, 10,000 linked items";

export async function run(): Promise<Figure[]> {
  const items: ItemView[] = Array.from({ length: 10_000 }, (_, i) => ({
    syncKey: `k${i}`,
    link: { agreedSeen: false, imapUid: i + 1, graphId: `g${i}` },
    imap: { uid: i + 1, seen: i % 10 === 0 },
    graph: { id: `g${i}`, isRead: false },
  }));
  const rounds = 20;
  const t0 = performance.now();
  let plan = planVoicemail(items, { massDeleteMaxShare: 0.5 });
  for (let r = 1; r < rounds; r++) plan = planVoicemail(items, { massDeleteMaxShare: 0.5 });
  const ms = (performance.now() - t0) / rounds;
  const changed = new Set(items.filter((i) => i.imap!.seen).map((i) => i.graph!.id));
  const right = plan.actions.filter((a) => a.kind === "setGraphRead" && a.read && changed.has(a.graphId)).length;
  return [
    { name: "plan time per run", value: ms, unit: "ms", reference: 50, better: "lower" },
    { name: "actions planned (10% changed: 1,000 reads on the phone)", value: plan.actions.length, unit: "actions", reference: 1000, better: "equal" },
    { name: "of which: mark read in Exchange, on a changed item", value: right, unit: "actions", reference: 1000, better: "equal" },
  ];
}
