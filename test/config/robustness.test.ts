// Whatever the input, the config parsers throw ConfigError and nothing else.

import { describe, it, expect } from 'vitest'
import { ConfigError, meshConfigFromEnv, meshConfigFromText } from '../../src/config/index.js'
import { thrown } from '../support.js'

const PIECES = ['#', '##', ':', '[', ']', '/', ',', '0', '1', '127.0.0.1', 'fd00::', '65536', 'true', 'false', 'a', '.', '-', ' ', 'DISABLED', '%', '\n', '15001']

describe('robustness', () => {
  it('random env values never escape as anything but ConfigError', () => {
    let seed = 7
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed % n
    }
    const str = () => Array.from({ length: rnd(10) }, () => PIECES[rnd(PIECES.length)]).join('')
    let accepted = 0
    for (let i = 0; i < 3000; i++) {
      const env: NodeJS.ProcessEnv = {
        CONTRAST_INGRESS_PROXY_CONFIG: str(),
        ...(rnd(2) ? { CONTRAST_EGRESS_PROXY_CONFIG: str() } : {}),
        ...(rnd(3) ? {} : { CONTRAST_ADMIN_PORT: str() }),
        ...(rnd(2) ? { PODVM_MESH_TRANSPARENT_EGRESS: 'true', PODVM_MESH_EGRESS_PLAINTEXT: str() } : {}),
      }
      try {
        meshConfigFromEnv(env)
        accepted++
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err
        expect(err.issues.length).toBeGreaterThan(0)
      }
    }
    // Some random inputs are valid (e.g. empty ones); the loop must exercise both paths.
    expect(accepted).toBeGreaterThan(0)
    expect(accepted).toBeLessThan(3000)
  })

  it.each([
    ['integer beyond 2^53', 'toml', '[admin]\nport = 99999999999999999999\n', 'FILE_SYNTAX'],
    ['inf', 'toml', '[admin]\nport = inf\n', 'WRONG_TYPE'],
    ['nan', 'toml', '[admin]\nport = nan\n', 'WRONG_TYPE'],
    ['a date', 'toml', '[admin]\nport = 1979-05-27\n', 'WRONG_TYPE'],
    ['__proto__ key', 'toml', '[[egress]]\nname = "a"\nlisten = "127.0.0.1:1"\nremote = "b:1"\n__proto__ = 1\n', 'UNKNOWN_KEY'],
    ['JSON __proto__', 'json', '{"__proto__": {"admin": {"port": 1}}}', 'UNKNOWN_KEY'],
    ['JSON 1e400', 'json', '{"admin":{"port":1e400}}', 'WRONG_TYPE'],
    ['JSON null', 'json', 'null', 'WRONG_TYPE'],
    ['JSON null entry', 'json', '{"egress":[null]}', 'WRONG_TYPE'],
    ['empty JSON', 'json', '', 'FILE_SYNTAX'],
  ] as const)('%s', (_name, format, text, reason) => {
    const err = thrown(() => meshConfigFromText(text, format))
    expect(err).toBeInstanceOf(ConfigError)
    expect(err.details.issues).toMatchObject([{ reason }])
  })

  // Hostile shapes: a value nested deeper than JSON.stringify can go (TOML dotted keys have
  // no depth limit), null-prototype tables, a huge value. The error names the field and
  // shows a bounded excerpt of the value.
  const deep = (n: number) => 'a' + '.a'.repeat(n)
  it.each([
    ['a table nested 100000 deep where a port goes', 'toml', `[admin]\nport.${deep(100_000)} = 1\n`, 'file:admin.port', 'WRONG_TYPE'],
    ['a table nested 100000 deep where an egress listen goes', 'toml', `[[egress]]\nname = "x"\nremote = "b:1"\nlisten.${deep(100_000)} = 1\n`, 'file:egress[0].listen', 'WRONG_TYPE'],
    ['a TOML table where a port goes', 'toml', '[admin]\nport.a = 1\n', 'file:admin.port', 'WRONG_TYPE'],
    ['an array of 200000 ports', 'json', `{"admin":{"port":[${'1,'.repeat(199_999)}1]}}`, 'file:admin.port', 'WRONG_TYPE'],
  ] as const)('%s: one typed issue, its value shown in at most 200 characters', (_name, format, text, source, reason) => {
    const err = thrown(() => meshConfigFromText(text, format))
    expect(err).toBeInstanceOf(ConfigError)
    expect(err.details.issues).toMatchObject([{ source, reason }])
    expect((err.details.issues as { entry?: string }[])[0]!.entry!.length).toBeLessThanOrEqual(200)
    expect(err.message.length).toBeLessThan(600)
  })

  it('TOML hex integers are ports like any other', () => {
    expect(meshConfigFromText('[admin]\nport = 0x2695\n', 'toml').admin).toEqual({ port: 9877, exposed: true })
  })
})
