/**
 * Reading a password for `--password-prompt`: from the terminal without echo, or one line from
 * stdin when it is a pipe (scripts: `printf '%s\n' "$PW" | umconnect credentials set L-1 --password-prompt`).
 * Never from the command line, where it would land in the shell history and `ps`.
 */
export async function readPassword(prompt: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): Promise<string> {
  return new Promise((resolve, reject) => {
    let value = "";
    const tty = input.isTTY === true;
    if (tty) { output.write(prompt); input.setRawMode(true); }
    input.setEncoding("utf8");
    const done = (err?: Error) => {
      input.off("data", onData); input.off("end", onEnd);
      if (tty) { input.setRawMode(false); output.write("\n"); }
      input.pause();
      if (err) reject(err); else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const c of chunk) {
        if (c === "\n" || c === "\r") return done();
        if (c === "\u0003") return done(new Error("cancelled"));
        if (tty && (c === "\u007f" || c === "\b")) { value = value.slice(0, -1); continue; }
        value += c;
      }
    };
    const onEnd = () => done();
    input.on("data", onData);
    input.on("end", onEnd);
    input.resume();
  });
}
