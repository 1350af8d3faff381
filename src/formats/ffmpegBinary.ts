/**
 * The ffmpeg executable: the static build that the npm package @ffmpeg-installer/ffmpeg ships
 * for this platform (an optional dependency per platform, e.g. @ffmpeg-installer/linux-x64), so
 * nothing is downloaded at run time and the deployment package carries it.
 *
 * That platform package makes its binary executable in a postinstall script (`chmod u+x
 * ffmpeg`). npm may hold install scripts back (`npm warn install-scripts`), and an Azure
 * Functions app run from a package has a read-only wwwroot, so when the shipped file is not
 * executable a copy is made once into the temp directory and made executable there.
 */
import { createRequire } from "node:module";
import { accessSync, constants, copyFileSync, chmodSync, existsSync, mkdirSync, renameSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConnectorError } from "../errors.js";

let resolved: string | undefined;

export function ffmpegPath(): string {
  if (resolved) return resolved;
  let shipped: string;
  try {
    const require = createRequire(import.meta.url);
    shipped = (require("@ffmpeg-installer/ffmpeg") as { path: string }).path;
  } catch (e) {
    throw new ConnectorError("INTERNAL", `no ffmpeg binary for ${process.platform}-${process.arch} in @ffmpeg-installer/ffmpeg`, { cause: e, transient: false });
  }
  resolved = executable(shipped);
  return resolved;
}

/** `file` itself when it may be executed, else a private executable copy of it. */
export function executable(file: string): string {
  try {
    accessSync(file, constants.X_OK);
    return file;
  } catch {
    // Held-back postinstall or a read-only package mount: run a private executable copy.
  }
  const size = statSync(file).size;
  const dir = path.join(os.tmpdir(), "umconnect-ffmpeg");
  const copy = path.join(dir, `ffmpeg-${process.platform}-${process.arch}-${size}`);
  if (!existsSync(copy)) {
    mkdirSync(dir, { recursive: true });
    const partial = `${copy}.${process.pid}.tmp`;
    copyFileSync(file, partial);
    chmodSync(partial, 0o755);
    renameSync(partial, copy); // atomic: concurrent workers never run a half-copied file
  }
  return copy;
}
