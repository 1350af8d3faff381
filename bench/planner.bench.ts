/** Planner cost over 10,000 linked items with 10% changed: must stay far below a run's I/O. */
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
  let actions = 0;
  for (let r = 0; r < rounds; r++) actions = planVoicemail(items, { massDeleteMaxShare: 0.5 }).actions.length;
  const ms = (performance.now() - t0) / rounds;
  return [
    { name: "plan time per run", value: ms, unit: "ms", reference: 50, better: "lower" },
    { name: "actions planned (10% changed)", value: actions, unit: "actions", reference: 1000, better: "lower" },
  ];
}
