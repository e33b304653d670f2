import { describe, expect, it } from 'vitest'
import { BuiltinDataPlane } from '../../../src/dataplane/builtin/dataplane.js'
import { manualClock } from '../../support.js'
import { connectClient, egressListener, privileges, spec, testLogger, until } from '../harness.js'

describe('the data plane\'s failure logs', () => {
  it('are rate-limited per reason while the counters count every connection', async () => {
    const clock = manualClock()
    const { log, records } = testLogger()
    const dp = new BuiltinDataPlane(spec([egressListener('b', '127.0.0.6', { host: '127.0.0.1', port: 1 }, 'b.mesh')], { certificateWaitMs: 50 }), {
      log,
      ...privileges,
      refusalLog: { burst: 2, intervalMs: 60_000 },
      clock,
    })
    try {
      await dp.start()
      const { address, port } = dp.addresses().b!
      // Five connections held without certificates: each fails CERTIFICATE_WAIT.
      const clients = Array.from({ length: 5 }, () => connectClient(address, port))
      await Promise.all(clients.map((c) => c.closed))
      await until(() => dp.stats().failures.CERTIFICATE_WAIT === 5)
      const lines = () => records.filter((r) => r.reason === 'CERTIFICATE_WAIT')
      expect(lines().map((r) => r.suppressed)).toEqual([undefined, undefined])
      clock.advance(60_000)
      expect(lines().at(-1)).toMatchObject({ level: 40, reason: 'CERTIFICATE_WAIT', suppressed: 3, intervalMs: 60_000 })
      expect(lines()).toHaveLength(3)
    } finally {
      dp.destroy()
    }
  })
})
