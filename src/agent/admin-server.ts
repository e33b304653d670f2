// /healthz, /readyz and /metrics (also at /stats/prometheus, the path Contrast documents
// for scraping its Envoy admin port). Loopback by default; on all addresses when the
// admin port was configured (CONTRAST_ADMIN_PORT), where the ruleset treats it as any
// other port: mTLS, unless an ingress entry names it.

import { createServer, type Server } from 'node:http'
import type { Logger } from 'pino'
import type { AdminConfig } from '../config/index.js'

export interface AdminHandlers {
  /** Liveness: the process is able to answer and the data plane is not dead. */
  healthy(): boolean
  ready(): boolean
  status(): Record<string, unknown>
  /** May scrape the data plane (Envoy's admin) first: rendered on each request. */
  metrics(): string | Promise<string>
}

export interface AdminServer {
  readonly address: { address: string; port: number }
  close(): Promise<void>
}

export async function startAdminServer(admin: AdminConfig, handlers: AdminHandlers, log: Logger): Promise<AdminServer> {
  const alog = log.child({ component: 'admin' })
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    const json = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`)
    }
    switch (url) {
      case '/healthz':
        json(handlers.healthy() ? 200 : 503, handlers.status())
        return
      case '/readyz':
        json(handlers.ready() ? 200 : 503, handlers.status())
        return
      case '/metrics':
      case '/stats/prometheus':
        Promise.resolve()
          .then(() => handlers.metrics())
          .then(
            (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(text),
            (err: unknown) => {
              alog.warn({ err }, 'metrics could not be rendered')
              json(503, { error: 'metrics unavailable' })
            },
          )
        return
      default:
        json(404, { error: 'not found', paths: ['/healthz', '/readyz', '/metrics', '/stats/prometheus'] })
    }
  })
  server.keepAliveTimeout = 5_000
  const host = admin.exposed ? '::' : '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host, port: admin.port, ipv6Only: false }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const addr = server.address()
  const address = typeof addr === 'object' && addr !== null ? { address: addr.address, port: addr.port } : { address: host, port: admin.port }
  alog.info({ ...address, exposed: admin.exposed }, 'admin endpoint listening')
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
