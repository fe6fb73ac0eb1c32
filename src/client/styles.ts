/**
 * The toasts live in an open shadow root, so the host page's CSS cannot
 * reach in and ours cannot leak out. Theming goes through CSS custom
 * properties (they inherit into the shadow tree), e.g.
 * `#herald-toasts { --herald-accent: #0a7; }`, and through `::part(toast)`,
 * `::part(title)`, `::part(text)`, `::part(close)`, `::part(link)`,
 * `::part(progress)`, `::part(cancel)`.
 */
export const TOAST_CSS: string = `
:host {
  all: initial;
  position: fixed;
  top: var(--herald-top, 16px);
  right: var(--herald-right, 16px);
  z-index: var(--herald-z, 2147483000);
  display: flex;
  flex-direction: column;
  gap: 8px;
  width: var(--herald-width, 360px);
  max-width: calc(100vw - 32px);
  /* Never past the viewport's bottom, where nothing could be read or closed:
     the newest toast (the last) stays in view, and whatever does not fit is
     cut off the oldest, at the top. The toasts' shadows are not: the clip
     margin leaves room for them (the default --herald-shadow reaches 20px
     down and 16px sideways). Clipped on both axes, since Chromium honours
     overflow-clip-margin only then (with overflow-y alone, the bottom
     shadow was cut). */
  max-height: calc(100vh - var(--herald-top, 16px) - 16px);
  justify-content: flex-end;
  overflow: clip;
  overflow-clip-margin: 24px;
  font: var(--herald-font, 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  color: var(--herald-fg, #1d2430);
  pointer-events: none;
}
.herald-toast {
  pointer-events: auto;
  display: flex;
  gap: 10px;
  align-items: flex-start;
  /* Logical sides: on a dir="rtl" page the accent bar and the wider
     padding go to the right, where the text starts. */
  padding-block: 12px;
  padding-inline: 14px 12px;
  background: var(--herald-bg, #fff);
  border-inline-start: 4px solid var(--herald-accent, #2f6fde);
  border-radius: var(--herald-radius, 6px);
  box-shadow: var(--herald-shadow, 0 4px 16px rgba(0, 0, 0, .18));
  animation: herald-in .18s ease-out;
  overflow-wrap: anywhere;
}
.herald-toast[data-state="failed"], .herald-toast[data-state="timed_out"] { border-inline-start-color: var(--herald-danger, #c62828); }
.herald-toast[data-state="succeeded"] { border-inline-start-color: var(--herald-success, #2e7d32); }
.herald-icon { width: 24px; height: 24px; flex: none; object-fit: contain; }
.herald-icon-text { flex: none; font-size: 20px; line-height: 24px; }
.herald-body { flex: 1; min-width: 0; }
/* A long TITLE or TEXT scrolls inside its toast rather than growing it past the screen. */
.herald-title { font-weight: 600; margin: 0 0 2px; max-height: 4.2em; overflow-y: auto; }
.herald-text { max-height: var(--herald-text-height, min(40vh, 20em)); overflow-y: auto; }
.herald-title:empty { display: none; }
.herald-text p { margin: 0 0 4px; }
.herald-text ul, .herald-text ol { margin: 2px 0; padding-inline-start: 20px; }
.herald-text a, .herald-link { color: var(--herald-link, #1f5bc6); }
.herald-link { display: inline-block; margin-top: 4px; }
.herald-close, .herald-cancel {
  font: inherit;
  cursor: pointer;
  border: 0;
  background: transparent;
  color: var(--herald-muted, #5b6472);
}
.herald-close { flex: none; font-size: 18px; line-height: 18px; padding: 0 2px; }
/* The toast's own text colour, whatever the scheme or theme: a fixed light
   fallback here left the × at about 1.1:1 on the dark toast (WCAG 1.4.11). */
.herald-close:hover, .herald-close:focus-visible { color: inherit; }
.herald-cancel {
  margin-top: 6px;
  padding: 2px 10px;
  border: 1px solid currentColor;
  border-radius: 4px;
}
.herald-cancel[aria-disabled="true"] { cursor: default; opacity: .6; }
.herald-output {
  margin: 6px 0 0;
  max-height: 9.5em;
  overflow: auto;
  padding: 6px 8px;
  background: var(--herald-code-bg, #f3f5f8);
  border-radius: 4px;
  font: 12px/1.35 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  white-space: pre-wrap;
  /* Program output reads left to right even on a dir="rtl" page, where the
     inherited direction reordered "64 bytes from 127.0.0.1: icmp_seq=1";
     each line still finds its own direction (an Arabic line reads right to
     left). */
  direction: ltr;
  unicode-bidi: plaintext;
  text-align: left;
}
.herald-output:empty { display: none; }
.herald-state { color: var(--herald-muted, #5b6472); font-weight: 400; }
.herald-spinner {
  display: inline-block;
  width: 12px;
  height: 12px;
  margin-inline-end: 6px;
  vertical-align: -1px;
  border: 2px solid var(--herald-accent, #2f6fde);
  border-inline-end-color: transparent;
  border-radius: 50%;
  animation: herald-spin .8s linear infinite;
}
@keyframes herald-spin { to { transform: rotate(360deg); } }
@keyframes herald-in { from { opacity: 0; transform: translateY(-6px); } }
@media (prefers-reduced-motion: reduce) {
  .herald-toast { animation: none; }
  .herald-spinner { animation-duration: 3s; }
}
/* A phone, or a short landscape window: the stack may take half the
   screen, never all of it (the oldest toasts are cut off at the top). One
   toast must fit in that half whole, or its title and close button, at its
   top, were cut off with the oldest (a long TEXT at min(40vh, 20em) made a
   toast of 219 px in a stack of 187 px at 667x375): its text, output and
   title take less here, about 140 px in all at a height of 320 px. Should a
   toast still be taller (a larger --herald-font or --herald-text-height), it
   scrolls within that half, its top and close button first in view; toasts
   keep their height (flex: none), so it is still the oldest that is cut. */
@media (max-width: 480px), (max-height: 480px) {
  :host { max-height: 50vh; }
  .herald-toast { flex: none; max-height: 50vh; overflow-y: auto; }
  .herald-title { max-height: 2.8em; }
  .herald-text { max-height: var(--herald-text-height, min(20vh, 10em)); }
  .herald-output { max-height: min(15vh, 9.5em); }
}
@media (prefers-color-scheme: dark) {
  :host { color: var(--herald-fg, #e6e9ef); }
  .herald-toast { background: var(--herald-bg, #232a35); }
  .herald-output { background: var(--herald-code-bg, #1a2029); }
  .herald-text a, .herald-link { color: var(--herald-link, #8ab4f8); }
  .herald-close, .herald-cancel, .herald-state { color: var(--herald-muted, #a4adbb); }
}
`;
