/**
 * Cold start stays cheap (issue 14; figures: `npm run bench -- coldstart`): the entry point
 * loads only the wiring, the webhook path loads neither the IMAP, MIME, iCalendar, Graph-token
 * nor telemetry stacks, and telemetry starts only after an HTTP function has answered. The
 * static import graph is read from the sources (type-only imports and dynamic import() do
 * not load anything at start).
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { withStartFirst, type FunctionDefinition } from "../../functions/definition.js";

const root = path.resolve(import.meta.dirname, "../..");

/** Packages reached through static imports from `entry`, with the file that imports each. */
function staticPackages(entry: string): Map<string, string> {
  const seen = new Set<string>();
  const packages = new Map<string, string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = fs.readFileSync(file, "utf8");
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm)) {
      const spec = m[1]!;
      if (spec.startsWith(".")) visit(path.resolve(path.dirname(file), spec.replace(/\.js$/, ".ts")));
      else if (!spec.startsWith("node:")) {
        const pkg = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
        if (!packages.has(pkg)) packages.set(pkg, path.relative(root, file));
      }
    }
  };
  visit(path.join(root, entry));
  return packages;
}

const WORKER_ONLY = ["imapflow", "mailparser", "ical.js", "@azure/msal-node", "@azure/identity", "@azure/monitor-opentelemetry", "jose", "@azure/keyvault-secrets"];

describe("cold start", () => {
  it("loads only the wiring at start: no package but @azure/functions, no composition root", () => {
    const pkgs = staticPackages("functions/index.ts");
    expect([...pkgs.entries()].map(([p, by]) => `${p} (${by})`)).toEqual(["@azure/functions (functions/index.ts)"]);
    const text = fs.readdirSync(path.join(root, "functions")).map((f) => fs.readFileSync(path.join(root, "functions", f), "utf8")).join("\n");
    expect(text).not.toMatch(/^import (?!type)[^\n]*"\.\.\/src\/(app|admin|sync|imap|graph|state|formats)\//m);
  });

  it("answers webhooks without the worker-only stacks", () => {
    for (const entry of ["src/app/deps.ts", "src/app/webhooks.ts"]) {
      const pkgs = staticPackages(entry);
      for (const p of WORKER_ONLY) expect(pkgs.get(p), `${entry} reaches ${p}`).toBeUndefined();
    }
  });

  it("starts telemetry after an HTTP answer and before a queue or timer run", async () => {
    const order: string[] = [];
    const start = async () => { order.push("telemetry"); };
    const http = withStartFirst({ name: "h", trigger: { kind: "http", route: "h", methods: ["GET"], authLevel: "anonymous", maxBodyBytes: 0 }, handler: async () => { order.push("answer"); return { status: 200 }; } } as FunctionDefinition, start, 20);
    const queue = withStartFirst({ name: "q", trigger: { kind: "queue", queueName: "q", connection: "c" }, handler: async () => { order.push("run"); } } as FunctionDefinition, start);
    await (http.handler as (a: unknown, b: unknown) => Promise<unknown>)({}, {});
    expect(order).toEqual(["answer"]);
    await new Promise((r) => setTimeout(r, 60));
    expect(order).toEqual(["answer", "telemetry"]);
    order.length = 0;
    await (queue.handler as (a: unknown, b: unknown) => Promise<unknown>)({}, {});
    expect(order).toEqual(["telemetry", "run"]);
  });
});
