import { createHash } from 'node:crypto';

/**
 * The demo page's HTML (GET /demo, demo mode only). Its script is /demo.js
 * (src/client/demo/demo-app.ts), loaded after /herald.js exactly as a panel
 * page would load the library. No inline script, and DEMO_CSP is served with it.
 */
export const DEMO_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Herald demo</title>
<style>
  :root { color-scheme: light dark; --accent: #2f6fde; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: Canvas; color: CanvasText; }
  header { padding: 14px 24px; border-bottom: 1px solid #8884; display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
  header h1 { margin: 0; font-size: 20px; }
  main { display: grid; grid-template-columns: minmax(280px, 420px) 1fr; gap: 24px; padding: 20px 24px; }
  @media (max-width: 800px) { main { grid-template-columns: 1fr; } }
  section { border: 1px solid #8884; border-radius: 8px; padding: 14px 16px; margin-bottom: 16px; }
  h2 { font-size: 15px; margin: 0 0 10px; }
  label { display: block; margin: 8px 0 2px; font-size: 13px; opacity: .8; }
  input, select, textarea, button { font: inherit; }
  input, select, textarea { width: 100%; box-sizing: border-box; padding: 5px 8px; }
  textarea { min-height: 64px; }
  button { margin-top: 10px; padding: 5px 14px; cursor: pointer; }
  #state { font-weight: 600; padding: 2px 8px; border-radius: 10px; background: #8883; }
  /* Text colours per scheme, at least 4.5:1 on their tinted badge (WCAG 1.4.3). */
  #state[data-state="open"] { background: #2e7d3233; color: #1b5e20; }
  #state[data-state="waiting"], #state[data-state="connecting"] { background: #ef6c0033; color: #8a3a00; }
  #state[data-state="rejected"] { background: #c6282833; color: #a31515; }
  @media (prefers-color-scheme: dark) {
    #state[data-state="open"] { color: #81c784; }
    #state[data-state="waiting"], #state[data-state="connecting"] { color: #ffb74d; }
    #state[data-state="rejected"] { color: #ef9a9a; }
  }
  #log { list-style: none; margin: 0; padding: 0; font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; max-height: 70vh; overflow: auto; }
  #log li { padding: 3px 0; border-bottom: 1px solid #8882; overflow-wrap: anywhere; }
  #log time { opacity: .6; }
  #log .dir { color: var(--accent); }
  code.cmd { display: block; padding: 6px 8px; background: #8882; border-radius: 4px; font-size: 12px; overflow-wrap: anywhere; }
  #send-result { font: 12px ui-monospace, monospace; overflow-wrap: anywhere; }
</style>
</head>
<body>
<header>
  <h1>Herald demo</h1>
  <span>connection: <span id="state" role="status" data-state="idle">idle</span></span>
  <span>signed in as: <b id="who">nobody</b></span>
</header>
<main>
  <div>
    <form id="signin">
      <section>
        <h2>Sign in (demo mode only)</h2>
        <label for="kind">kind</label>
        <select id="kind"><option value="admin">admin (AID)</option><option value="user">user (UID)</option></select>
        <label for="id">id</label>
        <input id="id" type="number" min="1" value="1" required>
        <button type="submit">Sign in</button>
      </section>
    </form>
    <div id="session" hidden>
      <form id="send">
        <section>
          <h2>Send yourself a notification</h2>
          <label for="title">TITLE</label>
          <input id="title" value="Test notification">
          <label for="text">TEXT (a little HTML is allowed)</label>
          <textarea id="text">Just&lt;br/&gt;some&lt;br/&gt;text</textarea>
          <label for="extra">EXTRA (a link, optional)</label>
          <input id="extra" placeholder="https://example.net/ticket/42">
          <button type="submit">Send through the HTTP API</button>
          <p id="send-result" role="status"></p>
        </section>
      </form>
      <section>
        <h2>Or from a terminal</h2>
        <code class="cmd" id="cli">npx herald send --aid 1 --title Hi --text 'Just&lt;br/&gt;some&lt;br/&gt;text'</code>
      </section>
      <section>
        <h2>Connection</h2>
        <button id="disconnect" type="button">Close (CLOSE_REQUEST)</button>
        <button id="reconnect" type="button">Connect</button>
        <button id="desktop" type="button">Desktop notifications</button>
        <button id="signout" type="button">Sign out</button>
      </section>
    </div>
  </div>
  <section>
    <h2>Frames received</h2>
    <ol id="log"></ol>
  </section>
</main>
<script src="/herald.js"></script>
<script src="/demo.js"></script>
</body>
</html>
`;

/** The hash of the page's one inline <style>, for style-src. */
function inlineStyleHash(html: string): string {
  const css = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1];
  if (css === undefined) throw new Error('demo page: no <style> to hash');
  return `'sha256-${createHash('sha256').update(css, 'utf8').digest('base64')}'`;
}

/**
 * The demo page's Content-Security-Policy. Anyone who can reach a demo-mode
 * server can put a notification in front of anyone signed in there (POST
 * /demo/send), so the page keeps the sanitiser from being the only wall:
 * scripts from this origin only, no inline script, its own inline style by
 * hash (the toasts use a constructed stylesheet, which CSP does not govern),
 * fetches and the WebSocket to this origin only ('self' covers ws: and wss:
 * to the same host), images from here or https (a notification's ICON), no
 * <base>, no form submission, and no framing by other sites.
 */
export const DEMO_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  `style-src 'self' ${inlineStyleHash(DEMO_HTML)}`,
  "connect-src 'self'",
  "img-src 'self' https:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
