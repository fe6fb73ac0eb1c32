/**
 * Herald's Node SDK: `import { BrowserSender } from 'herald'`. Talks to a
 * Herald server over its HTTP API; imports no server code.
 */
export { BrowserSender, DEFAULT_CONNECT_TOKEN_TTL_SEC, SDK_VERSION, type BrowserSenderOptions } from './browser-sender.js';
export { mintConnectToken, CONNECT_TOKEN_AUDIENCE } from './connect-token.js';
export { HeraldSdkError, isHeraldSdkError, ClientErrorCodes, type ClientErrorCode, type HeraldErrorCode } from './errors.js';
export type {
  CommandInfo, CommandState, CommandStatusOptions, ConnectToken, LegacyAnswer, ListedCommand, MessageStatus, NotificationObject, NotificationPayload,
  Person, PersonSendResult, PingResult, PrincipalKind, Recipient, RunInBackgroundOptions, SendMessageInput, SendResult, ServerStatus,
} from './types.js';
export { CloseCode, CloseReason } from '../protocol/close-codes.js';
