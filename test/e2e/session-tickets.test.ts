// TLS sessions stay with the listener that issued them, for both data planes: a session
// obtained on a `#false` port (no client certificate asked for) is offered to an mTLS
// port of the same pod, which must not resume it (a resumed session skips the
// certificate request) and must demand a certificate instead. Real daemons from dist/,
// clients in another namespace.

import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MeshLab, sansFor } from '../../src/demo/index.js'
import { envoyForTests } from '../envoy-support.js'
import { NODE, netnsScript, type ResumeExchange } from '../dataplane/netns/harness.js'
import { requireNetns } from './netns.js'

const RESUME_CLIENT = netnsScript('tls-resume-client.mjs')
const MTLS = 8080
const OPEN = 8443

const describeNetns = requireNetns()
const envoy = envoyForTests()

const planes = [
  { kind: 'builtin', prefix: 'pmstb', subnet: 85, skip: undefined },
  { kind: 'envoy', prefix: 'pmstv', subnet: 86, skip: envoy.skip },
] as const

for (const plane of planes) {
  const suite = plane.skip === undefined ? describeNetns : describe.skip
  suite(`session tickets per listener, ${plane.kind} data plane${plane.skip === undefined ? '' : ` (skipped: ${plane.skip})`}`, () => {
    let lab: MeshLab

    const resume = async (first: number, second: number, withCert: boolean): Promise<{ first: ResumeExchange; second: ResumeExchange }> => {
      const tls = lab.pki.tlsDir('c')
      const r = await lab.topology.exec('c', NODE, [RESUME_CLIENT, lab.node('b').ipv4, String(first), String(second), join(tls, 'mesh-ca.pem'), withCert ? tls : '-'], {
        timeoutMs: 15_000,
      })
      return JSON.parse(r.stdout.trim()) as { first: ResumeExchange; second: ResumeExchange }
    }

    beforeAll(async () => {
      lab = await MeshLab.create({ prefix: plane.prefix, subnet: plane.subnet, nodes: ['b', 'c'] })
      await lab.pki.issue('b', sansFor(lab.node('b')))
      await lab.pki.issue('c', sansFor(lab.node('c')))
      await lab.startApp('b', { ports: [MTLS, OPEN] })
      const dataplane =
        plane.kind === 'builtin'
          ? ['--dataplane', 'builtin']
          : ['--dataplane', 'envoy', '--envoy-bin', envoy.path ?? 'envoy', '--work-dir', `${lab.workDir}/envoy-b`]
      const daemon = lab.startDaemon('b', ['--ingress', `open#${OPEN}#false`, '--tls-dir', lab.pki.tlsDir('b'), ...dataplane])
      await daemon.waitReady()
    }, 90_000)

    afterAll(async () => {
      await lab?.destroy()
    }, 60_000)

    it('a session from the #false port resumes there (the control: resumption works at all)', async () => {
      const r = await resume(OPEN, OPEN, false)
      expect(r.first).toMatchObject({ secure: true, received: 'first', gotSession: true })
      expect(r.second).toMatchObject({ secure: true, resumed: true, received: 'second' })
    })

    it('offered to the mTLS port it does not resume, and the handshake demands a certificate', async () => {
      const anonymous = await resume(OPEN, MTLS, false)
      expect(anonymous.first.gotSession).toBe(true)
      expect(anonymous.second.resumed).toBe(false)
      expect(anonymous.second.received).toBe('')
      expect(anonymous.second.error).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')
      // With a mesh certificate: a full handshake, then served.
      const member = await resume(OPEN, MTLS, true)
      expect(member.second).toMatchObject({ secure: true, resumed: false, received: 'second' })
    })
  })
}
