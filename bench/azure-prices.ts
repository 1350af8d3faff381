/**
 * Azure list prices the cost model (bench/cost.bench.ts, docs/cost.md) uses: one row per meter,
 * with the date it was checked and where. Update a row by editing it here and running
 * `npm run bench -- cost` (it rewrites docs/cost.md). USD, pay-as-you-go, East US, LRS.
 *
 * Checked 2026-11-30 with the project's search tool: the Functions rows were found (Microsoft's
 * pricing page states the free grant; the per-unit figures came from a guide quoting East US
 * list prices, matching Microsoft's long-standing consumption rates). The storage and Log
 * Analytics rows could NOT be confirmed from a stored page in that check: they are the
 * published rates as last known, marked "unverified" below; confirm them on the linked pages.
 */
export interface Price {
  meter: string;
  usd: number;
  per: number;
  unit: string;
  /** Monthly free grant in the same unit (per subscription or billing account), if any. */
  freePerMonth?: number;
  checked: string;
  source: string;
  verified: boolean;
}

export const PRICES = {
  functionsExecutions: { meter: "Functions consumption: executions", usd: 0.2, per: 1_000_000, unit: "executions", freePerMonth: 1_000_000, checked: "2026-11-30", source: "https://azure.microsoft.com/en-us/pricing/details/functions/ (free grant); https://modal.com/blog/azure-function-pricing-guide (East US rate)", verified: true },
  functionsGbSeconds: { meter: "Functions consumption: execution time", usd: 0.000016, per: 1, unit: "GB-s", freePerMonth: 400_000, checked: "2026-11-30", source: "https://azure.microsoft.com/en-us/pricing/details/functions/ (free grant); https://modal.com/blog/azure-function-pricing-guide (East US rate)", verified: true },
  tableTransactions: { meter: "Table storage (LRS): transactions", usd: 0.00036, per: 10_000, unit: "transactions", checked: "2026-11-30", source: "https://azure.microsoft.com/en-us/pricing/details/storage/tables/", verified: false },
  queueOperations: { meter: "Queue storage (GPv2 LRS): class 1 and 2 operations", usd: 0.0004, per: 10_000, unit: "operations", checked: "2026-11-30", source: "https://azure.microsoft.com/en-us/pricing/details/storage/queues/", verified: false },
  logIngestionGb: { meter: "Log Analytics (Application Insights) Analytics logs: ingestion", usd: 2.3, per: 1, unit: "GB", freePerMonth: 5, checked: "2026-11-30", source: "https://azure.microsoft.com/en-us/pricing/details/monitor/ ; how billed size is measured: https://learn.microsoft.com/azure/azure-monitor/logs/cost-logs", verified: false },
} satisfies Record<string, Price>;
