/**
 * Structured logging. A log line carries an event name plus ids, counts and timings.
 * Message content, audio, tokens and passwords never reach a sink: fields whose names look
 * like secrets or content are replaced by "[redacted]", and string values that look like
 * bearer tokens or JWTs are masked too (DESIGN.md section 5).
 */
import { ConnectorError } from "./errors.js";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogValue = string | number | boolean | null | undefined | LogValue[] | { [k: string]: LogValue };
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export type LogSink = (level: LogLevel, line: Record<string, LogValue>) => void;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const SECRET_KEY = /pass(word)?|secret|token|authorization|cookie|assertion|private.?key|credential|clientstate|signature|hmac/i;
const CONTENT_KEY = /^(body|content|contentbytes|raw|source|audio|subject|text|html|snippet|preview|payload|vcard|ical)$/i;
const TOKENISH = /\b(Bearer\s+[A-Za-z0-9._~+/-]+=*|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)/g;

export function redact(value: unknown, key = "", depth = 0): LogValue {
  if (key && (SECRET_KEY.test(key) || CONTENT_KEY.test(key))) return value === undefined ? undefined : "[redacted]";
  if (value === null || value === undefined) return value as null | undefined;
  if (typeof value === "string") return value.replace(TOKENISH, "[redacted]");
  if (typeof value === "number" || typeof value === "boolean") return value;
  if (typeof value === "bigint") return value.toString();
  if (value instanceof ConnectorError) return redact(value.toJSON(), "", depth + 1);
  if (value instanceof Error) return { name: value.name, message: redact(value.message) as string };
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  if (depth > 4) return "[depth]";
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => redact(v, "", depth + 1));
  if (typeof value === "object") {
    const out: Record<string, LogValue> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = redact(v, k, depth + 1);
    return out;
  }
  return String(value);
}

export const consoleSink: LogSink = (level, line) => {
  const text = JSON.stringify(line);
  if (level === "error" || level === "warn") process.stderr.write(text + "\n");
  else process.stdout.write(text + "\n");
};

export function createLogger(options: { level?: LogLevel; sink?: LogSink; fields?: LogFields } = {}): Logger {
  const min = LEVELS[options.level ?? "info"];
  const sink = options.sink ?? consoleSink;
  const base = options.fields ?? {};
  const emit = (level: LogLevel, event: string, fields?: LogFields) => {
    if (LEVELS[level] < min) return;
    const merged = redact({ ...base, ...fields }) as Record<string, LogValue>;
    sink(level, { time: new Date().toISOString(), level, event, ...merged });
  };
  return {
    debug: (e, f) => emit("debug", e, f),
    info: (e, f) => emit("info", e, f),
    warn: (e, f) => emit("warn", e, f),
    error: (e, f) => emit("error", e, f),
    child: (fields) => createLogger({ level: options.level, sink, fields: { ...base, ...fields } }),
  };
}

/** A logger that keeps lines in memory; for tests and for the log-scan in the security suite. */
export function memoryLogger(level: LogLevel = "debug"): Logger & { lines: Array<Record<string, LogValue>> } {
  const lines: Array<Record<string, LogValue>> = [];
  const logger = createLogger({ level, sink: (_l, line) => lines.push(line) });
  return Object.assign(logger, { lines });
}
