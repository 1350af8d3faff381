/**
 * Shell completion. `umconnect completion bash|zsh|fish` prints a small script that asks the
 * command itself for candidates (`umconnect __complete -- <words so far>`), so what completes is
 * always the command tree of the installed version, hidden aliases left out. No setting is
 * needed (nothing is looked up in the deployment).
 */
import { Argument, type Command } from "commander";
import type { CliContext } from "./context.js";
import { UsageError } from "./commandKit.js";

/** Candidates for the word being typed (the last of `words`; "" for a new word). */
export function completions(program: Command, words: string[]): string[] {
  let cmd = program;
  const typed = words.slice(0, -1);
  const current = words.at(-1) ?? "";
  for (let i = 0; i < typed.length; i++) {
    const w = typed[i]!;
    if (w.startsWith("-")) {
      // An option that takes a value swallows the next word.
      const opt = cmd.options.find((o) => o.long === w || o.short === w);
      if (opt && (opt.required || opt.optional)) i++;
      continue;
    }
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (sub) cmd = sub;
  }
  // The value of an option with fixed choices.
  const prev = typed.at(-1);
  const valueOf = prev?.startsWith("--") ? cmd.options.find((o) => o.long === prev) : undefined;
  if (valueOf && (valueOf.required || valueOf.optional)) return (valueOf.argChoices ?? []).filter((c) => c.startsWith(current));
  const visible = cmd.createHelp();
  const names = current.startsWith("-")
    ? visible.visibleOptions(cmd).flatMap((o) => [o.long, o.short]).filter((x): x is string => !!x)
    : visible.visibleCommands(cmd).map((c) => c.name());
  return names.filter((n) => n.startsWith(current)).sort();
}

const SCRIPTS: Record<string, string> = {
  bash: `# umconnect completion for bash: eval "$(umconnect completion bash)" in ~/.bashrc
_umconnect_complete() {
  local IFS=$'\\n'
  COMPREPLY=($(umconnect __complete -- "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _umconnect_complete umconnect`,
  zsh: `# umconnect completion for zsh: eval "$(umconnect completion zsh)" in ~/.zshrc
_umconnect() {
  local -a candidates
  candidates=("\${(@f)$(umconnect __complete -- "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  compadd -- $candidates
}
compdef _umconnect umconnect`,
  fish: `# umconnect completion for fish: umconnect completion fish > ~/.config/fish/completions/umconnect.fish
complete -c umconnect -f -a '(umconnect __complete -- (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'`,
};

export function completionCommands(ctx: CliContext, program: Command): void {
  program.command("completion").description("print the shell completion script (bash, zsh or fish)")
    .addArgument(new Argument("<shell>", "your shell").choices(Object.keys(SCRIPTS)))
    .action((shell: string) => {
      const script = SCRIPTS[shell];
      if (!script) throw new UsageError(`no completion for ${shell}`, "use bash, zsh or fish");
      ctx.out(script);
    });
  program.command("__complete", { hidden: true }).description("candidates for the shell's completion")
    .argument("[words...]").allowUnknownOption().helpOption(false)
    .action((words: string[]) => { for (const c of completions(program, words.length ? words : [""])) ctx.out(c); });
}
