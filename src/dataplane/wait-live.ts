// DataPlane.whenLive for any data plane: polls its `live` flag. Liveness of an external
// process (Envoy) is itself polled, so an event would buy little here.

import type { DataPlane } from './dataplane.js'
import { sleep } from '../timers.js'
import { DataPlaneError } from './errors.js'

export async function pollUntilLive(dp: Pick<DataPlane, 'live' | 'state'>, signal?: AbortSignal, pollMs = 25): Promise<void> {
  for (;;) {
    signal?.throwIfAborted()
    if (dp.live) return
    if (dp.state === 'draining' || dp.state === 'closed') {
      throw new DataPlaneError('DATAPLANE_STATE', `data plane ${dp.state} before it became live`, { state: dp.state })
    }
    await sleep(pollMs, signal)
  }
}
