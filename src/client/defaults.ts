/**
 * The built-in handlers a client installs on its dispatcher: MESSAGE shows a
 * toast (unless `toasts: false`) and a desktop notification when the tab is
 * hidden and the page opted in, COMMAND_PROGRESS keeps a live toast per
 * command with a Cancel button, EVENT is emitted to the client's `event`
 * listeners. Page handlers run first and may call `ctx.preventDefault()` to
 * skip these.
 */
import type { ClientFrame, NotificationObject } from '../protocol/frames.js';
import type { CommandProgressFrame } from '../protocol/commands.js';
import type { Dispatcher, HandlerContext } from './dispatcher.js';
import type { DesktopNotifier } from './desktop.js';
import type { Toaster } from './toaster.js';

export interface DefaultHandlerDeps {
  toaster: Toaster | undefined;
  desktop: DesktopNotifier;
  send: (frame: ClientFrame) => boolean;
  emitEvent: (message: NotificationObject) => void;
}

function isProgress(m: NotificationObject): m is NotificationObject & CommandProgressFrame {
  return m.TYPE === 'COMMAND_PROGRESS' && typeof m.COMMAND_ID === 'string' && typeof m.STATE === 'string';
}

/**
 * Installs the built-ins. Each acts with the dependencies of the client the
 * notification came through (`ctx.via.builtins`, DispatchVia), and with
 * `deps` only for one dispatched by no client (AMessageChecker.processData
 * before any connect).
 */
export function installDefaultHandlers(dispatcher: Dispatcher, deps: DefaultHandlerDeps): void {
  const of = (ctx: HandlerContext): DefaultHandlerDeps => (ctx.via?.builtins as DefaultHandlerDeps | undefined) ?? deps;
  dispatcher.setBuiltin('EVENT', (m, ctx) => of(ctx).emitEvent(m));
  // Without toasts (`toasts: false`, a page with its own UI), a MESSAGE still
  // reaches the desktop when the tab is hidden and the page opted in.
  dispatcher.setBuiltin('MESSAGE', (m, ctx) => {
    const { toaster, desktop } = of(ctx);
    desktop.maybeShow(m);
    toaster?.show(m);
  });
  if (!deps.toaster && !dispatcher.hasBuiltin('COMMAND_PROGRESS')) return;
  dispatcher.setBuiltin('COMMAND_PROGRESS', (m, ctx) => {
    const { toaster, send } = of(ctx);
    if (!toaster || !isProgress(m)) return;
    toaster.progress(m, (commandId) => send({ TYPE: 'COMMAND_CANCEL', COMMAND_ID: commandId }));
  });
}
