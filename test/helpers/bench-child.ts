/**
 * One of the bench's child processes (bench/sender.mjs, bench/loadgen.mjs),
 * forked as the bench forks it, with a way to call it over its IPC channel
 * (bench/lib/ipc.mjs: `{id, cmd, args}` in, `{id, ok, result | error}` out).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

const root = new URL('../..', import.meta.url).pathname;

export interface BenchChild {
  child: ChildProcess;
  call(cmd: string, args: object): Promise<unknown>;
}

/** `script` relative to the repository (`bench/sender.mjs`); resolves once the child said it is ready. */
export async function forkBenchChild(script: string, options: { execArgv?: string[]; serialization?: 'json' | 'advanced' } = {}): Promise<BenchChild> {
  const child = fork(`${root}${script}`, [], { execArgv: options.execArgv ?? [], serialization: options.serialization ?? 'json', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await once(child, 'message');
  let next = 1;
  const call = (cmd: string, args: object): Promise<unknown> => new Promise((resolve, reject) => {
    const id = next++;
    const onMessage = (m: { id?: number; ok?: boolean; result?: unknown; error?: string }): void => {
      if (m.id !== id) return;
      child.off('message', onMessage);
      if (m.ok) resolve(m.result);
      else reject(new Error(m.error));
    };
    child.on('message', onMessage);
    child.send({ id, cmd, args });
  });
  return { child, call };
}
