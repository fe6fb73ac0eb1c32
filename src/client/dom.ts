/**
 * The document's own properties, read through Document.prototype. A page's
 * HTML can shadow them: `<img name="currentScript">` or `<form
 * name="body">` makes `document.currentScript` or `document.body` that
 * element (named properties override the document's own, by the HTML
 * standard), with no script at all, from markup a panel's sanitiser lets
 * through. The library decides where its socket goes and where its toasts
 * live from these, so it never reads them from `document` itself.
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
