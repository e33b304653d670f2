import { describe, expect, it } from 'vitest'
import { Lru } from '../src/lru.js'

describe('Lru', () => {
  it('drops the least recently set entry past its bound; set refreshes, get does not', () => {
    const l = new Lru<string, number>(2)
    l.set('a', 1)
    l.set('b', 2)
    l.set('a', 3) // a is now the newest
    l.set('c', 4)
    expect([l.get('a'), l.get('b'), l.get('c'), l.size]).toEqual([3, undefined, 4, 2])
    l.get('a')
    l.set('d', 5)
    expect([l.get('a'), l.get('c'), l.get('d')]).toEqual([undefined, 4, 5])
    l.delete('c')
    expect(l.size).toBe(1)
  })
  it('refuses a bound that holds nothing', () => {
    expect(() => new Lru(0)).toThrow(RangeError)
  })
})
