// A Map bounded in size: `set` makes an entry the newest and, past the bound, drops the
// oldest. Insertion order is the recency (a Map iterates in insertion order), so
// nothing else is kept; `get` does not refresh.

export class Lru<K, V> {
  readonly #entries = new Map<K, V>()
  readonly #max: number

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`Lru bound ${max}: expected a positive integer`)
    this.#max = max
  }

  get(key: K): V | undefined {
    return this.#entries.get(key)
  }

  set(key: K, value: V): void {
    this.#entries.delete(key)
    this.#entries.set(key, value)
    if (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next()
      if (oldest.done !== true) this.#entries.delete(oldest.value)
    }
  }

  delete(key: K): void {
    this.#entries.delete(key)
  }

  get size(): number {
    return this.#entries.size
  }
}
