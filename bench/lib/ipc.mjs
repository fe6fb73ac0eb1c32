// Request/answer over a forked child's IPC channel. The orchestrator sends
// {id, cmd, args}; the child answers {id, ok, result} or {id, ok:false, error}.
// Children also emit unsolicited {event, ...} messages (ready, progress).

/** Child side: serve commands with `handlers[cmd](args)` (sync or async). */
export function serveIpc(handlers) {
  process.on('message', async (msg) => {
    if (!msg || typeof msg.id !== 'number') return;
    const h = handlers[msg.cmd];
    try {
      if (!h) throw new Error(`unknown command ${msg.cmd}`);
      const result = await h(msg.args ?? {});
      process.send({ id: msg.id, ok: true, result });
    } catch (e) {
      process.send({ id: msg.id, ok: false, error: String(e?.stack ?? e) });
    }
  });
  // The orchestrator owns our lifetime: if it goes, so do we.
  process.on('disconnect', () => process.exit(0));
}

/** Parent side: wraps a forked ChildProcess with call(cmd, args, timeoutMs). */
export function ipcClient(child, name) {
  let next = 1;
  const pending = new Map();
  const listeners = new Set();
  child.on('message', (msg) => {
    if (msg && typeof msg.id === 'number' && pending.has(msg.id)) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`${name}: ${msg.error}`));
    } else {
      for (const l of listeners) l(msg);
    }
  });
  child.on('exit', (code, signal) => {
    for (const [, p] of pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`${name} exited (code ${code}, signal ${signal}) during a call`));
    }
    pending.clear();
  });
  return {
    child,
    name,
    call(cmd, args = {}, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const id = next++;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: ${cmd} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
        child.send({ id, cmd, args });
      });
    },
    /** Resolves with the first unsolicited message that `pred` accepts. */
    waitEvent(pred, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(l);
          reject(new Error(`${name}: no expected event within ${timeoutMs} ms`));
        }, timeoutMs);
        const l = (msg) => {
          if (pred(msg)) {
            clearTimeout(timer);
            listeners.delete(l);
            resolve(msg);
          }
        };
        listeners.add(l);
        child.once('exit', (code) => {
          if (!listeners.has(l)) return;
          clearTimeout(timer);
          listeners.delete(l);
          reject(new Error(`${name} exited with code ${code} before it was ready`));
        });
      });
    },
  };
}
