/**
 * Whether Herald may run a program file it found: only when no other user controls what runs.
 * A command runs as Herald's user, who can read DATA_DIR/secrets.json; a file another user put
 * where an allowed name is looked up (a PATH directory anyone may write, /tmp-like, or a shared
 * group's) ran with that access.
 *
 * The rule is the data dir's (path-trust.ts, checkDirectory): a directory is trusted when it is
 * this user's or root's (a link of theirs: the directory it leads to) and no other user may write
 * it; one that its group may write is refused for a group that is not one of this process's and
 * only warned about for one that is. The file, and every link on the way to it, must be this
 * user's or root's, and the file writable by no one else. Only the messages differ from
 * checkDirectory's, whose remedies are the data dir's ("name one in it for Herald to make").
 *
 * A directory others may write is accepted as the holder of a file only when it is sticky (/tmp):
 * there, nobody but the owner of a file (this user or root, checked) may replace or rename it
 * (configFileProblem's rule). A directory searched for a name gets no such exemption: anyone who
 * may write it can add the name. The directories above them are not judged, as for the data dir.
 */
import { lstatSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { ownGroup, trustedOwner, type DirectoryVerdict } from '../path-trust.js';

/** The links followed before giving up, as Linux does (MAXSYMLINKS, path_resolution(7)). */
export const MAX_LINK_HOPS = 40;

/** A program file's verdict: why it is not run (`problem`), and what is unsafe but allowed (its own group may write it). */
export interface ProgramTrust {
  problem?: string;
  warnings: string[];
}

function modeText(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** `not by …` for a file of uid `uid`, which is neither this user's nor root's. */
function notOurs(uid: number): string {
  const me = process.geteuid?.();
  return me === 0 ? `owned by uid ${uid}, not by root (Herald runs as root, and trusts root's files alone)` : `owned by uid ${uid}, not by this user (uid ${me}) or root`;
}

/** The entry at `path` without following a link, or undefined when it is not there or cannot be read. */
function entry(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * The verdict on a directory searched for allowed names (`search`), or holding a program file or
 * a link to one (`holder`, no link itself: a real path). A missing directory is neither refused
 * nor warned about: nothing is found in it.
 */
export function directoryVerdict(dir: string, role: 'search' | 'holder'): DirectoryVerdict {
  const name = role === 'search' ? 'search directory' : 'directory';
  const remedy = role === 'search'
    ? 'take it out of the search path (commandsPath, or the server\'s PATH), or let only its owner write it'
    : 'keep the program in a directory only this user or root may write';
  let st = entry(dir);
  if (st === undefined) return {};
  if (st.isSymbolicLink()) {
    if (!trustedOwner(st)) return { refusal: `${name} ${dir} is a symbolic link ${notOurs(st.uid)}: that user could point it at a directory of theirs; ${remedy}` };
    try {
      st = statSync(dir);
    } catch {
      return {};
    }
  }
  if (!trustedOwner(st)) return { refusal: `${name} ${dir} is ${notOurs(st.uid)}: that user could put any program there; ${remedy}` };
  if (!st.isDirectory()) return {};
  // Sticky: others may add files, but not replace or rename one of this user's or root's.
  if (role === 'holder' && (st.mode & 0o1000) !== 0) return {};
  if ((st.mode & 0o002) !== 0) {
    return { refusal: `${name} ${dir} is writable by other users (mode ${modeText(st.mode)}): any of them could put a program there that Herald would run as its own user; ${remedy}` };
  }
  if ((st.mode & 0o020) !== 0) {
    if (!ownGroup(st.gid)) {
      return { refusal: `${name} ${dir} is writable by its group (gid ${st.gid}, not one of this process's; mode ${modeText(st.mode)}): the group's members could put a program there that Herald would run as its own user; ${remedy}` };
    }
    return { warning: `${name} ${dir} is writable by its group (gid ${st.gid}, one of this process's; mode ${modeText(st.mode)}): anyone else in that group could put a program there; chmod g-w it` };
  }
  return {};
}

/**
 * Whether the program at `path` (a file that exists, or a link that leads to one) may run: the
 * path and each link after it, and the directory each is in, are checked as the kernel follows
 * them. What cannot be read is refused: what runs must be known.
 */
export function programTrust(path: string): ProgramTrust {
  const warnings: string[] = [];
  let at = path;
  for (let hops = 0; hops <= MAX_LINK_HOPS; hops++) {
    let st: Stats;
    let dir: string;
    try {
      st = lstatSync(at);
      dir = realpathSync(dirname(at));
    } catch (e) {
      return { problem: `${at} cannot be checked (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, warnings };
    }
    const held = directoryVerdict(dir, 'holder');
    if (held.refusal !== undefined) return { problem: held.refusal, warnings };
    if (held.warning !== undefined) warnings.push(held.warning);
    if (!trustedOwner(st)) {
      const what = st.isSymbolicLink() ? 'the link' : 'the file';
      return { problem: `${what} ${at} is ${notOurs(st.uid)}: that user could make it run what they like as Herald's user; chown it`, warnings };
    }
    if (st.isSymbolicLink()) {
      // From the directory the link really is in, as the kernel follows it.
      try {
        at = resolvePath(dir, readlinkSync(at));
      } catch (e) {
        return { problem: `the link ${at} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, warnings };
      }
      continue;
    }
    const others = (st.mode & 0o002) !== 0;
    const group = (st.mode & 0o020) !== 0;
    if (others || (group && !ownGroup(st.gid))) {
      const who = others ? 'other users' : `its group (gid ${st.gid}, not one of this process's)`;
      return { problem: `the file ${at} is writable by ${who} (mode ${modeText(st.mode)}): they could change what it does as Herald's user; chmod go-w it`, warnings };
    }
    if (group) warnings.push(`the file ${at} is writable by its group (gid ${st.gid}, one of this process's; mode ${modeText(st.mode)}): anyone else in that group could change what it does; chmod g-w it`);
    return { warnings };
  }
  return { problem: `${path} leads through more than ${MAX_LINK_HOPS} links`, warnings };
}
