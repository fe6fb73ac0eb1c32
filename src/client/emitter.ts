/**
 * A tiny typed event emitter (the connection events of HeraldEvents). A
 * listener that throws is reported to the console and does not stop the
 * others, like the dispatcher's handlers.
 */
export type Listener<T> = (payload: T) => void;

/** The wrapper once() registers, which knows the listener it stands for (so off() finds it). */
type OnceWrapper = Listener<never> & { readonly listener: Listener<never> };

export class Emitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Like `on`, but the listener runs at most once. */
  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const wrapper = Object.assign(
      (payload: Events[K]) => {
        off();
        listener(payload);
      },
      { listener: listener as Listener<never> },
    );
    const off = this.on(event, wrapper);
    return off;
  }

  /** Removes a listener added with on() or once(). */
  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    set.delete(listener as Listener<never>);
    // once() registered a wrapper, not the listener the page holds.
    for (const l of set) if ((l as Partial<OnceWrapper>).listener === listener) set.delete(l);
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(payload);
      } catch (error) {
        console.error(`[herald] a listener of "${String(event)}" threw`, error);
      }
    }
  }
}
