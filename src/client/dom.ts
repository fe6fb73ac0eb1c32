/**
 * The document's own properties and methods, read through Document.prototype
 * (and EventTarget.prototype). A page's HTML can shadow them: `<img
 * name="currentScript">`, `<form name="body">` or `<img
 * name="createElement">` makes `document.currentScript`, `document.body` or
 * `document.createElement` that element (named properties override the
 * document's own, by the HTML standard), with no script at all, from markup
 * a panel's sanitiser lets through (a subscriber's text with an image in
 * it). The library decides where its socket goes and where its toasts live
 * from these, builds every toast with them and listens to the document with
 * them, so it never reads them from `document` itself.
 */
function own<T>(name: string): T | null {
  const getter = Object.getOwnPropertyDescriptor(Document.prototype, name)?.get;
  return getter ? (getter.call(document) as T | null) : null;
}

/** The <script> element running now (during its first run only), else null. */
export function currentScript(): HTMLScriptElement | null {
  const script = own<Element>('currentScript');
  return script instanceof HTMLScriptElement ? script : null;
}

/** <body> (or <frameset>), null while the parser is still in <head>. */
export function pageBody(): HTMLElement | null {
  const body = own<Element>('body');
  return body instanceof HTMLElement ? body : null;
}

/** The root element (<html>, or <svg> in an SVG document). */
export function rootElement(): Element | null {
  const root = own<Element>('documentElement');
  return root instanceof Element ? root : null;
}

/** Whether the parser is still reading the page. */
export function stillLoading(): boolean {
  return own<DocumentReadyState>('readyState') === 'loading';
}

/**
 * Whether the tab is visible: `document.visibilityState`. Markup can only
 * make it an element or a collection, never a string, so a string is the
 * document's (or what a page's script put there, e.g. a test pretending the
 * tab is hidden); anything else is read from Document.prototype.
 */
export function visibility(): DocumentVisibilityState {
  const value: unknown = (document as { visibilityState: unknown }).visibilityState;
  return value === 'visible' || value === 'hidden' ? value : (own<DocumentVisibilityState>('visibilityState') ?? 'visible');
}

/** `document.createElement(tag)`. */
export function createElement<K extends keyof HTMLElementTagNameMap>(tag: K): HTMLElementTagNameMap[K] {
  return Document.prototype.createElement.call(document, tag) as HTMLElementTagNameMap[K];
}

/** `document.addEventListener(...)`. */
export function listenToDocument(type: string, listener: EventListener, options?: AddEventListenerOptions): void {
  EventTarget.prototype.addEventListener.call(document, type, listener, options);
}

/** `document.removeEventListener(...)`. */
export function stopListeningToDocument(type: string, listener: EventListener): void {
  EventTarget.prototype.removeEventListener.call(document, type, listener);
}
