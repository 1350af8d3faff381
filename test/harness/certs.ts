/**
 * A throwaway certificate authority and a server certificate for 127.0.0.1/localhost, so every
 * https fake (Graph simulator, token endpoint) is trusted through NODE_EXTRA_CA_CERTS while TLS
 * verification stays on. Made with the openssl CLI once per checkout under .local/certs and
 * reused; scripts/test.sh and scripts/start.sh export NODE_EXTRA_CA_CERTS before Node starts
 * (Node reads it only at process start).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface TestCerts {
  dir: string;
  caCertPath: string;
  serverKeyPath: string;
  serverCertPath: string;
  /** A client certificate + key for the app registration's certificate credential. */
  appKeyPath: string;
  appCertPath: string;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const DEFAULT_CERT_DIR = path.join(ROOT, ".local", "certs");

function openssl(args: string[], cwd: string) {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

export function ensureTestCerts(dir = DEFAULT_CERT_DIR): TestCerts {
  const certs: TestCerts = {
    dir,
    caCertPath: path.join(dir, "ca.crt"),
    serverKeyPath: path.join(dir, "server.key"),
    serverCertPath: path.join(dir, "server.crt"),
    appKeyPath: path.join(dir, "app.key"),
    appCertPath: path.join(dir, "app.crt"),
  };
  if (Object.values(certs).slice(1).every((p) => fs.existsSync(p))) return certs;
  fs.mkdirSync(dir, { recursive: true });
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
    "-subj", "/CN=umconnect test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"], dir);
  fs.writeFileSync(path.join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n");
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "3650", "-extfile", "server.ext"], dir);
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "app.key", "-out", "app.crt", "-days", "365", "-subj", "/CN=umconnect-test-app"], dir);
  return certs;
}

// `tsx test/harness/certs.ts` prints the CA path for the shell scripts.
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  process.stdout.write(ensureTestCerts().caCertPath + "\n");
}
