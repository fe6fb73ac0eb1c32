/**
 * The built-in handlers a client installs on its dispatcher: MESSAGE shows a
 * toast (and a desktop notification when the tab is hidden and the page opted
 * in), COMMAND_PROGRESS keeps a live toast per command with a Cancel button,
 * EVENT is emitted to the client's `event` listeners. Page handlers run first
 * and may call `ctx.preventDefault()` to skip these.
 */
import type { ClientFrame, NotificationObject } from '../protocol/frames.js';
import type { CommandProgressFrame } from '../protocol/commands.js';
import type { Dispatcher } from './dispatcher.js';
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

export function installDefaultHandlers(dispatcher: Dispatcher, deps: DefaultHandlerDeps): void {
  const { toaster, desktop } = deps;
  dispatcher.setBuiltin('EVENT', (m) => deps.emitEvent(m));
  if (!toaster) return;
  dispatcher.setBuiltin('MESSAGE', (m) => {
    desktop.maybeShow(m);
    toaster.show(m);
  });
  dispatcher.setBuiltin('COMMAND_PROGRESS', (m) => {
    if (!isProgress(m)) return;
    toaster.progress(m, (commandId) => deps.send({ TYPE: 'COMMAND_CANCEL', COMMAND_ID: commandId }));
  });
}
