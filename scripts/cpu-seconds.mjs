// The CPU time processes have used, in seconds, from Linux's /proc: what
// `node scripts/run-tests.mjs --durations` weighs each test file by, besides
// its wall time (scripts/test-groups.mjs). Elsewhere every figure is
// undefined, and the planner treats the files as busy.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const ticks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** Fields 3 on of /proc/<pid>/stat (after the command name, which may hold spaces), or undefined. */
function statOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** utime + stime + cutime + cstime: the process's own time and that of the children it waited for. */
function ownAndReaped(fields) {
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / ticks;
}

/** The CPU time of this process's children that have exited and been waited for, and of theirs. */
export function reapedChildrenSeconds() {
  const fields = statOf('self');
  return fields === undefined ? undefined : (Number(fields[13]) + Number(fields[14])) / ticks;
}

/** The CPU time of `pid` and every live process under it, with what each has reaped; undefined without /proc. */
export function treeSeconds(pid) {
  let names;
  try {
    names = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  const parentOf = new Map();
  const timeOf = new Map();
  for (const name of names) {
    const fields = statOf(name);
    if (fields === undefined) continue;
    parentOf.set(Number(name), Number(fields[1]));
    timeOf.set(Number(name), ownAndReaped(fields));
  }
  if (!timeOf.has(pid)) return undefined;
  let total = 0;
  for (const [p, seconds] of timeOf) {
    for (let q = p; q !== undefined && q !== 0; q = parentOf.get(q)) {
      if (q === pid) {
        total += seconds;
        break;
      }
    }
  }
  return total;
}
