/**
 * Promise.all for set-up that opens things (a browser, servers): when one part
 * fails, every part that did open and has a `close()` is closed again before
 * the failure is thrown. With Promise.all, a browser connected while a
 * Herald failed to start was never assigned, so nothing closed it, and its
 * connection to the suite's shared Chromium kept the test process alive until
 * the runner's timeout (300 s) instead of failing at once.
 */
export async function openAll<T extends readonly unknown[]>(parts: { readonly [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(parts as readonly Promise<unknown>[]);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed === undefined) return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T;
  await Promise.allSettled(settled.map(async (s) => {
    const opened = s.status === 'fulfilled' ? (s.value as { close?: unknown } | undefined) : undefined;
    if (typeof opened?.close === 'function') await (opened.close as () => unknown)();
  }));
  throw failed.reason;
}
