/**
 * Whether Herald may trust a directory or file it keeps its state in (the data dir, secrets.json,
 * the SQLite store, the command audit file): only when no other user controls it. A data dir that
 * another user made (under /tmp, say) held their secrets.json, and Herald took their API token; a
 * store file or a link another user planted received every notification. Checked with lstat, so a
 * symbolic link is seen as the link, not as what it points to.
 *
 * Who is trusted: this process's user, and root. Root can read and replace any file of this user
 * already, so a file of root's (secrets.json provisioned `root:herald` 0640) gives no one more
 * than they had. Herald run as root trusts root's files alone.
 */
import { lstatSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';

/** A directory's verdict: a refusal (start must not go on), a warning (it may), or neither. */
export interface DirectoryVerdict {
  refusal?: string;
  warning?: string;
}

/** The entry at `path` as lstat sees it, or undefined when there is none or it cannot be told (what opens it says why). */
function entry(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    // ENOTDIR, EACCES: the open that follows reports it, naming the path.
    return undefined;
  }
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** Whether `st` is this user's or root's (or there are no user ids to compare: Windows). */
export function trustedOwner(st: Stats): boolean {
  const me = process.geteuid?.();
  return me === undefined || st.uid === me || st.uid === 0;
}

/** Why `st`, named `what path`, is not trusted for being a link or another user's, or undefined. */
function foreign(st: Stats, what: string, path: string): string | undefined {
  if (st.isSymbolicLink()) {
    return `${what} ${path} is a symbolic link: Herald follows no link to its state (another user could point one at a file of theirs); name the real path, or remove the link`;
  }
  if (trustedOwner(st)) return undefined;
  const me = process.geteuid?.();
  const asRoot = me === 0 ? '; as root, Herald trusts root\'s files alone' : '';
  return `${what} ${path} is owned by uid ${st.uid}, not by this user (uid ${me})${asRoot}: that user could read or replace what Herald keeps there; remove it to have Herald make it again, or chown it to this user`;
}

/** The remedy for a directory others may write: not `chmod 700` alone, which said of /tmp (an absolute sqliteFile there) breaks the machine. */
const ONLY_MINE = 'use a directory only this user may write (chmod 700 it, if it is Herald\'s alone, or name one in it for Herald to make, 0700)';

/** Whether `gid` is a group of this process: its own or a supplementary one (a Kubernetes fsGroup). */
export function ownGroup(gid: number): boolean {
  return gid === process.getegid?.() || (process.getgroups?.().includes(gid) ?? false);
}

/**
 * A directory Herald keeps files in: refused when it is another user's (or another user's
 * link), or writable by others (any of them could plant a file or a link, a `-wal` or a hot
 * journal that SQLite reads as its own, between two starts or while Herald runs).
 * Group-writable is refused for a group that is not one of this process's (its members are
 * other users), and only warned about for one of its own: with a per-user group (umask 002
 * makes `mkdir` 0775) that group is this user alone, and a Kubernetes fsGroup volume
 * (root:<fsGroup> 2775) is the pod's; refusing them would stop set-ups with nobody else in
 * them. A missing directory is neither: Herald creates it (0700).
 */
export function checkDirectory(dir: string, what: string): DirectoryVerdict {
  let st = entry(dir);
  if (st === undefined) return {};
  // A link of this user's or root's to a directory is the operator's own doing (systemd's
  // DynamicUser= makes /var/lib/NAME a link to private/NAME): the directory it leads to is
  // judged instead. A link of another user's is refused below, as a file's always is.
  if (st.isSymbolicLink() && trustedOwner(st)) {
    try {
      st = statSync(dir);
    } catch {
      return {};
    }
  }
  const refusal = foreign(st, what, dir);
  if (refusal !== undefined) return { refusal };
  if (!st.isDirectory()) return {};
  if ((st.mode & 0o002) !== 0) {
    return { refusal: `${what} ${dir} is writable by other users (mode ${octal(st.mode)}): any of them could plant a file or a link Herald would open; ${ONLY_MINE}` };
  }
  if ((st.mode & 0o020) !== 0) {
    const own = ownGroup(st.gid);
    const said = `${what} ${dir} is writable by its group (gid ${st.gid}${own ? ', one of this process\'s' : ''}; mode ${octal(st.mode)})`;
    if (!own) return { refusal: `${said}: the group's members could plant a file or a link Herald would open; ${ONLY_MINE}` };
    return { warning: `${said}: anyone else in that group could plant a file Herald would open; chmod 700 it` };
  }
  return {};
}

/**
 * Why a file Herald would open at `file` is not to be trusted (a symbolic link, another user's),
 * or undefined: trusted, or not there (Herald creates it, 0600).
 */
export function fileProblem(file: string, what: string): string | undefined {
  const st = entry(file);
  return st === undefined ? undefined : foreign(st, what, file);
}

/**
 * Why the config file at `file` is not to be trusted, or undefined: trusted, or not there (its
 * read says so). It decides more than any file of the data dir (commandsAllow, commandsEnv,
 * apiToken, dataDir itself), so it is held to the same rule: a file another user owns or may
 * write, or one in a directory where another user may replace it, was taken as it was, and a
 * root Herald ran the programs it allowed with the API token it set. A link of this user's or
 * root's (configuration management's) is judged by the file it leads to, and a directory that is
 * such a link by the directory it leads to.
 */
export function configFileProblem(file: string): string | undefined {
  let st = entry(file);
  if (st === undefined) return undefined;
  if (st.isSymbolicLink()) {
    if (!trustedOwner(st)) return `config file ${file} is a symbolic link of uid ${st.uid}, not of this user or root: that user could point it at a file of theirs; name the real file`;
    try {
      st = statSync(file);
    } catch {
      return undefined;
    }
  }
  if (!trustedOwner(st)) {
    return `config file ${file} is owned by uid ${st.uid}, not by this user (uid ${process.geteuid?.()}) or root: that user could change what Herald runs and who it lets in; chown it`;
  }
  if ((st.mode & 0o002) !== 0 || ((st.mode & 0o020) !== 0 && !ownGroup(st.gid))) {
    return `config file ${file} is writable by other users (mode ${octal(st.mode)}, group ${st.gid}): any of them could change what Herald runs and who it lets in; chmod 600 it (or 640 with Herald's group)`;
  }
  const dir = dirname(file);
  let parent = entry(dir);
  // A directory reached through a link of this user's or root's (/etc/herald leading to a
  // release directory; /dev/fd, root's link to /proc/self/fd, for `--config <(…)`) is judged as
  // the directory it leads to, as checkDirectory judges one: lstat saw the link, always 0777.
  if (parent?.isSymbolicLink() === true) {
    if (!trustedOwner(parent)) return `config file ${file} is in ${dir}, a symbolic link of uid ${parent.uid}, not of this user or root: that user could point it at a directory of theirs; name the real path`;
    try {
      parent = statSync(dir);
    } catch {
      return undefined;
    }
  }
  // Sticky (/tmp): others may not replace a file of ours there.
  if (parent !== undefined && (parent.mode & 0o002) !== 0 && (parent.mode & 0o1000) === 0) {
    return `config file ${file} is in ${dir}, which other users may write (mode ${octal(parent.mode)}): any of them could replace it; keep it in a directory only this user or root may write`;
  }
  return undefined;
}
