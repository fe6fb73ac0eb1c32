/**
 * Which programs may run, resolved once at start-up (DESIGN.md,
 * CommandRunner). The allowlist names programs by name (looked up in the
 * configured search path) or by absolute path; each entry is pinned to the
 * real path of the file it named at start-up, and that real path is what
 * runs. A request may name a program by its bare name or by any absolute
 * path that resolves (symlinks and `..` followed) to an allowed file, so
 * `ping` and `/usr/bin/ping` both work while `/usr/bin/../../tmp/x` or a
 * symlink to `/bin/sh` do not.
 *
 * An argument rule belongs to the file, not to the way it is named: it holds
 * for every entry that runs the same file (another name, a symlink, a hard
 * link), or a request would choose the unruled way of asking for it.
 */
import { accessSync, constants, existsSync, lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, isAbsolute, join, resolve as resolvePath, sep } from 'node:path';
import { quoted } from '../../protocol/text-cut.js';
import { HeraldError } from '../errors.js';
import { MAX_LINK_HOPS, directoryVerdict, programTrust } from './program-trust.js';

/** Longest program name or path, and longest argument, in characters. */
export const MAX_PROGRAM_CHARS = 4096;

/**
 * The server's PATH as the search path for allowed names (`commandsPath` empty), without
 * its relative entries and the directories inside a node_modules, each of which is listed
 * in `skipped` (start-up logs them).
 *
 * A relative entry (`bin`, `.`, or an empty one, which a shell reads as `.`) names a place
 * under the server's working directory, whoever may write there: never searched (see
 * CommandPolicy's constructor). `npm start` puts the node_modules/.bin of the checkout and
 * of every directory above it, and npm's own node-gyp-bin, in front of the PATH it was
 * given (@npmcli/run-script, set-path.js): an allowed name would resolve to a dependency's
 * bin (`semver`, `tsc`, or one named like a system program) before the system's. Those are
 * the packages' programs, not the machine's; name them in `commandsPath` or by absolute
 * path to allow them.
 */
export function serverSearchPath(envPath: string): { searchPath: string; skipped: string[] } {
  const kept: string[] = [];
  const skipped: string[] = [];
  // An unset or empty PATH has no entries, not one empty entry.
  if (envPath === '') return { searchPath: '', skipped };
  for (const dir of envPath.split(delimiter)) {
    if (!isAbsolute(dir) || dir.split(sep).includes('node_modules')) skipped.push(dir);
    else kept.push(dir);
  }
  return { searchPath: kept.join(delimiter), skipped };
}

/** Where a policy reports what it skipped (the runner's logger): fields, then message. */
export type PolicyWarn = (fields: Record<string, unknown>, message: string) => void;

export interface CommandPolicyOptions {
  /** Names or absolute paths (`commandsAllow`). */
  allow: readonly string[];
  /** `PROGRAM=REGEX` entries (`commandsArgRules`). */
  argRules?: readonly string[];
  /** Directories searched for names, joined with `:` (`commandsPath`; empty: none). Relative entries are never searched. */
  searchPath: string;
  /**
   * Told of relative entries in `searchPath` (at construction) and of each program file that is
   * not run because another user could control it (once per name and path). Default: nobody.
   */
  warn?: PolicyWarn;
}

/** A program a request may run. */
export interface ResolvedProgram {
  /**
   * The allowlist entry as configured (`ping`, `/usr/local/bin/report`). It is
   * also the program's argv[0]: a multi-call binary (busybox, xz) picks what it
   * does by that name, so it must be the allowed name, never the real path
   * (busybox run as `/bin/busybox` would take its first argument as the program
   * to be) nor whatever path the request used.
   */
  entry: string;
  /** The real path that is executed. */
  path: string;
}

interface Entry {
  spec: string;
  /** Real path once found; undefined while the program is missing. */
  path: string | undefined;
  rule: RegExp | undefined;
  ruleSource: string | undefined;
  /** The candidates the last look-up found but did not trust, each `path: why`, for the refusal. */
  skipped: string[];
}

export interface PolicyEntryStatus {
  entry: string;
  path: string | null;
}

export class CommandPolicy {
  readonly #entries: Entry[];
  readonly #dirs: string[];
  readonly #warn: PolicyWarn;
  /** The warnings given, by what they are about: each once, so a request that repeats one adds no log line. */
  readonly #warned = new Set<string>();

  constructor(options: CommandPolicyOptions) {
    this.#warn = options.warn ?? (() => {});
    // A relative entry would be looked up from the server's working directory, whoever may write
    // there (mutants-commands-path.test.ts): left out, and said so.
    const listed = options.searchPath === '' ? [] : options.searchPath.split(delimiter);
    this.#dirs = listed.filter((d) => isAbsolute(d));
    const relative = listed.filter((d) => !isAbsolute(d));
    if (relative.length > 0) {
      this.#warn({ skipped: relative }, 'commandsPath: entries that are not absolute directories are never searched (they would be looked up from the server\'s working directory)');
    }
    this.#entries = options.allow.map((spec) => {
      if (spec === '' || spec.includes('\0')) throw new HeraldError('HERALD_ERR_CONFIG', `option "commandsAllow": invalid entry ${JSON.stringify(spec)}`);
      if (spec.includes('/') && !isAbsolute(spec)) {
        throw new HeraldError('HERALD_ERR_CONFIG', `option "commandsAllow": "${spec}" must be a bare name or an absolute path`);
      }
      const entry: Entry = { spec, path: undefined, rule: undefined, ruleSource: undefined, skipped: [] };
      entry.path = this.#find(entry);
      return entry;
    });
    for (const raw of options.argRules ?? []) {
      const eq = raw.indexOf('=');
      if (eq <= 0) throw new HeraldError('HERALD_ERR_CONFIG', `option "commandsArgRules": "${raw}" is not PROGRAM=REGEX`);
      const program = raw.slice(0, eq);
      const source = raw.slice(eq + 1);
      // Every entry of that name; checkArgs adds every entry that runs the same file, whatever it is called.
      const named = this.#entries.filter((e) => e.spec === program || basename(e.spec) === program);
      if (named.length === 0) throw new HeraldError('HERALD_ERR_CONFIG', `option "commandsArgRules" names "${program}", which is not in "commandsAllow"`);
      let rule: RegExp;
      try {
        // Anchored here, so a rule without ^…$ still has to match the whole argument.
        rule = new RegExp(`^(?:${source})$`);
      } catch (e) {
        throw new HeraldError('HERALD_ERR_CONFIG', `option "commandsArgRules": bad regular expression for "${program}": ${(e as Error).message}`);
      }
      for (const entry of named) {
        entry.rule = rule;
        entry.ruleSource = source;
      }
    }
  }

  /** What each allowlist entry resolved to (null: not installed), for start-up logs and status. */
  entries(): PolicyEntryStatus[] {
    return this.#entries.map((e) => ({ entry: e.spec, path: e.path ?? null }));
  }

  /**
   * Turns a requested program into the file to run, or throws:
   * HERALD_ERR_COMMAND_FORBIDDEN (not allowed), HERALD_ERR_COMMAND_NOT_FOUND
   * (allowed but not installed, or installed where another user could control
   * it), HERALD_ERR_VALIDATION (not a program name).
   */
  resolve(program: string): ResolvedProgram {
    if (typeof program !== 'string' || program === '' || program.length > MAX_PROGRAM_CHARS || program.includes('\0')) {
      throw new HeraldError('HERALD_ERR_VALIDATION', 'program must be a non-empty name or absolute path');
    }
    this.#retryMissing();
    if (!program.includes('/')) {
      // A name: an entry of that name, or an absolute entry with that file name.
      const entry = this.#named(program);
      if (!entry) throw this.#forbidden(program);
      return this.#installed(entry, program);
    }
    if (!isAbsolute(program)) {
      throw new HeraldError('HERALD_ERR_COMMAND_FORBIDDEN', `program "${program}" is a relative path: give an allowed name or an absolute path (allowed: ${this.#allowed()})`);
    }
    let real: string;
    try {
      real = realpathSync(program);
    } catch {
      // Not there. If it names an allowed program that is missing (or was removed since start-up), say that;
      // otherwise it is simply not allowed.
      const missing = this.#entries.find((e) => e.spec === program || e.path === program || (e.path === undefined && basename(e.spec) === basename(program)));
      if (!missing) throw this.#forbidden(program);
      if (missing.path !== undefined && existsSync(missing.path)) {
        // The entry's link was pointed at nothing while its pinned file stayed: by name the entry
        // runs that file (docs/commands.md: "wherever its symlink points now"), but this path
        // leads to no file. Said so: "its file is gone" named a file that is there, and runs.
        const target = danglingTarget(program);
        const why = target === undefined ? `${program} leads to no file` : `the link ${program} is dangling: its target ${target} is missing`;
        const name = basename(missing.spec);
        const still = this.#named(name) === missing ? `asked by its name "${name}", it still runs its pinned file ${missing.path}` : `its pinned file ${missing.path} is still there`;
        throw new HeraldError('HERALD_ERR_COMMAND_NOT_FOUND', `program "${program}" is allowed but ${why}; ${still}`);
      }
      return this.#installed(missing, program);
    }
    // Several entries may pin the same file (a multi-call binary under two names): the one the
    // request names, else the first. The entry, not the path asked for, names the program to it.
    const same = this.#entries.filter((e) => e.path === real);
    const entry = same.find((e) => e.spec === program) ?? same.find((e) => basename(e.spec) === basename(program)) ?? same[0];
    if (!entry) {
      // The entry itself, but no program there (a directory, a file not executable): allowed, not
      // installed; or its pinned file is gone and nothing runnable took its place: gone.
      const named = this.#entries.find((e) => (e.path === undefined || !existsSync(e.path)) && (e.spec === program || e.spec === real));
      if (named) return this.#installed(named, program);
      throw this.#forbidden(program, real);
    }
    return this.#trusted(entry, real, program);
  }

  /**
   * Applies the argument rules of the file that runs (HERALD_ERR_COMMAND_FORBIDDEN naming the
   * first argument refused): the rule of every entry that runs the same file, each of which
   * every argument must match. With `cat` and `/usr/bin/cat` listed and a rule for
   * `/usr/bin/cat` only, a request for `cat` or `/bin/cat` ran /usr/bin/cat with any argument.
   */
  checkArgs(program: ResolvedProgram, args: readonly string[]): void {
    for (const entry of this.#rulesFor(program)) {
      const rule = entry.rule as RegExp;
      const whose = entry.spec === program.entry ? 'its rule' : `the rule of "${entry.spec}" (the same file)`;
      for (const [i, arg] of args.entries()) {
        if (!rule.test(arg)) {
          throw new HeraldError(
            'HERALD_ERR_COMMAND_FORBIDDEN',
            `argument ${i + 1} of "${program.entry}" (${quoted(arg, 80)}) is not allowed by ${whose} /${entry.ruleSource ?? ''}/`,
          );
        }
      }
    }
  }

  /**
   * The entries with a rule that run `program`'s file: its own entry, and any entry pinned to the
   * same path or to the same file under another path (a hard link: Debian's `perl` and
   * `perl5.36.0`). Compared by device and inode now, not at start-up: an upgrade replaces a file
   * under the same path, and an entry found after start-up was pinned later.
   */
  #rulesFor(program: ResolvedProgram): Entry[] {
    const ruled = this.#entries.filter((e) => e.rule !== undefined);
    if (ruled.length === 0) return [];
    const file = fileId(program.path);
    return ruled.filter((e) => e.spec === program.entry
      || (e.path !== undefined && (e.path === program.path || (file !== undefined && fileId(e.path) === file))));
  }

  /** The entry a bare name asks for: the entry of that name, else the first absolute entry with that file name. */
  #named(name: string): Entry | undefined {
    return this.#entries.find((e) => e.spec === name) ?? this.#entries.find((e) => basename(e.spec) === name);
  }

  #installed(entry: Entry, requested: string): ResolvedProgram {
    // An absolute entry that is a symlink to nothing: said so, with the target it names, which is
    // what an admin who retargeted the link (or removed what it points at) looks for.
    const dangling = (): string | undefined => (isAbsolute(entry.spec) ? danglingTarget(entry.spec) : undefined);
    // What the last look-up found and would not run: the reason a program that is there is refused.
    const skipped = entry.skipped.length > 0 ? `; not run: ${entry.skipped.join('; ')}` : '';
    if (entry.path === undefined) {
      const target = dangling();
      // Only the directories really searched: a relative entry never is.
      const searched = this.#dirs.length > 0 ? `any of ${this.#dirs.join(delimiter)}` : '(no absolute directory in the search path)';
      const where = target !== undefined
        ? `the link ${entry.spec} is dangling: its target ${target} is missing`
        : `looked for "${entry.spec}" in ${isAbsolute(entry.spec) ? entry.spec : searched}`;
      throw new HeraldError('HERALD_ERR_COMMAND_NOT_FOUND', `program "${requested}" is allowed but not installed (${where}${skipped})`);
    }
    // Removed since it was found (an upgrade of the package, say): the same answer as when
    // the request names its path, not a run that fails to spawn.
    if (!existsSync(entry.path)) {
      const target = dangling();
      const link = target === undefined ? ''
        : target === entry.path ? `: the link ${entry.spec} to it is dangling`
          : `, and the link ${entry.spec} is dangling: its target ${target} is missing`;
      throw new HeraldError('HERALD_ERR_COMMAND_NOT_FOUND', `program "${requested}" is allowed but its file ${entry.path} is gone${link}${skipped}`);
    }
    return this.#trusted(entry, entry.path, requested);
  }

  /**
   * The pinned file, checked again on each request as a look-up checks it: its owner, mode or
   * directory may have changed since it was pinned (a `chmod 777`, a directory handed to a
   * group), and what runs must still be what only this user or root controls.
   */
  #trusted(entry: Entry, path: string, requested: string): ResolvedProgram {
    const trust = programTrust(path);
    this.#warnAbout(entry.spec, path, trust.warnings);
    if (trust.problem !== undefined) {
      this.#skip(entry.spec, path, trust.problem);
      throw new HeraldError('HERALD_ERR_COMMAND_NOT_FOUND', `program "${requested}" is allowed but its file is not run: ${trust.problem}`);
    }
    return { entry: entry.spec, path };
  }

  /** Logs, once per name and path, a program file that is not run and why. */
  #skip(spec: string, path: string, problem: string): void {
    const key = `skip\0${spec}\0${path}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#warn({ program: spec, path, reason: problem }, 'allowed program not run: another user could control the file or where it is');
  }

  /** Logs, once per name and path, what is unsafe about a file that runs (its own group may write it). */
  #warnAbout(spec: string, path: string, warnings: readonly string[]): void {
    const key = `warn\0${spec}\0${path}`;
    if (warnings.length === 0 || this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#warn({ program: spec, path, reason: warnings.join('; ') }, 'allowed program runs, but others in this process\'s group could change it');
  }

  #forbidden(program: string, real?: string): HeraldError {
    const resolved = real !== undefined && real !== program ? ` (resolves to ${real})` : '';
    return new HeraldError('HERALD_ERR_COMMAND_FORBIDDEN', `program "${program}"${resolved} is not allowed (allowed: ${this.#allowed()})`);
  }

  #allowed(): string {
    return this.#entries.map((e) => e.spec).join(', ') || 'nothing';
  }

  /**
   * An allowed program that was missing at start-up may have been installed
   * since: look again, in the same configured places (never a new PATH). So is
   * one whose pinned file is gone: an upgrade that points the entry's symlink
   * at a new version and removes the old one (update-alternatives,
   * `/opt/tool-1.2`), where a restart would find the new file. The entry means
   * what it names; it is looked up again as at start-up. Found nowhere, it
   * stays pinned to the file that is gone, which is what a request is told.
   * A pinned file that is still there keeps running even if the entry's
   * symlink now points elsewhere.
   */
  #retryMissing(): void {
    for (const e of this.#entries) {
      if (e.path === undefined) e.path = this.#find(e);
      else if (!existsSync(e.path)) e.path = this.#find(e) ?? e.path;
    }
  }

  /**
   * The real path of the first runnable file the entry names that no other user controls, and in
   * `entry.skipped` the ones passed over. A name is looked for in each search directory, which,
   * like the data dir, must be this user's or root's and writable by no one else (program-trust.ts):
   * in a directory others may write (1777, a shared group's), any of them could add the name, at
   * start-up or later, when a missing program is looked for again on each request. The file and
   * each link on the way to it are then held to programTrust.
   */
  #find(entry: Entry): string | undefined {
    const spec = entry.spec;
    entry.skipped = [];
    const places = isAbsolute(spec) ? [{ candidate: spec, dir: undefined }] : this.#dirs.map((dir) => ({ candidate: join(dir, spec), dir }));
    for (const { candidate, dir } of places) {
      const real = runnable(candidate);
      if (real === undefined) continue;
      const warnings: string[] = [];
      let problem: string | undefined;
      if (dir !== undefined) {
        const verdict = directoryVerdict(dir, 'search');
        problem = verdict.refusal;
        if (verdict.warning !== undefined) warnings.push(verdict.warning);
      }
      if (problem === undefined) {
        const trust = programTrust(candidate);
        problem = trust.problem;
        warnings.push(...trust.warnings);
      }
      if (problem !== undefined) {
        entry.skipped.push(`${candidate}: ${problem}`);
        this.#skip(spec, candidate, problem);
        continue;
      }
      this.#warnAbout(spec, candidate, warnings);
      return real;
    }
    return undefined;
  }
}

/** The real path of the executable file at `candidate`, or undefined: not there, not a file, not executable. */
function runnable(candidate: string): string | undefined {
  try {
    const real = realpathSync(candidate);
    if (!statSync(real).isFile()) return undefined;
    accessSync(real, constants.X_OK);
    return real;
  } catch {
    return undefined;
  }
}

/**
 * Where the symlink at `path` leads to nothing: the first path along its chain of links that is
 * not there (its own target, or one further on). Undefined when `path` is not a symlink, or its
 * chain ends at something that exists or goes round (ELOOP).
 */
function danglingTarget(path: string): string | undefined {
  let at = path;
  for (let hops = 0; hops < MAX_LINK_HOPS; hops++) {
    let link: string;
    try {
      if (!lstatSync(at).isSymbolicLink()) return undefined;
      link = readlinkSync(at);
    } catch {
      // The link itself is not there: nothing dangles. A target along the chain that is not there: that one.
      return hops === 0 ? undefined : at;
    }
    // From the directory the link really is in, as the kernel follows it: `../lib/tool` in a
    // directory reached through a symlink is not where the path's text alone points.
    let dir = dirname(at);
    try {
      dir = realpathSync(dir);
    } catch {
      // Its directory cannot be resolved: the text is all there is.
    }
    at = resolvePath(dir, link);
  }
  return undefined;
}

/** The file's device and inode (`dev:ino`), or undefined when it cannot be read: two paths with one id are one file. */
function fileId(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}
