// The VM test's control channel on a serial port. Requests are JSON lines
// {"id", "op", ...}; each answer is one JSON line {"id", ...}. Lines that are not JSON
// (noise before the port was switched to raw mode) are ignored.
//   sh      {cmd}             run a shell command: {code, out} (stdout+stderr, base64)
//   readyz  {}                the daemon's /readyz status code (0 when not listening)
//   echo    {host, port, data} connect, send data, wait for the same bytes back: {ok, got, error}
//   times   {}                monotonic seconds since boot of the baseline's exit, the
//                             kata-agent stand-in's start, and the daemon's ready log line
import { execFile } from 'node:child_process'
import { createReadStream, createWriteStream } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { createInterface } from 'node:readline'

const port = process.argv[2] ?? '/dev/ttyS1'
const out = createWriteStream(port, { flags: 'w' })
const reply = (msg) => out.write(`${JSON.stringify(msg)}\n`)

const sh = (cmd, timeout = 60_000) =>
  new Promise((resolve) =>
    execFile('/bin/sh', ['-c', cmd], { timeout, maxBuffer: 64 << 20, encoding: 'buffer' }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: Buffer.concat([stdout, stderr]).toString('base64') }),
    ),
  )

const readyz = () =>
  new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: 15020, path: '/readyz', timeout: 3000 }, (res) => {
      res.resume()
      resolve({ status: res.statusCode })
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve({ status: 0 }))
  })

const echo = ({ host, port: p, data, timeoutMs = 10_000 }) =>
  new Promise((resolve) => {
    const want = Buffer.from(data)
    let got = Buffer.alloc(0)
    const s = net.connect({ host, port: p })
    const done = (r) => {
      clearTimeout(timer)
      s.destroy()
      resolve({ ...r, got: got.toString('latin1') })
    }
    const timer = setTimeout(() => done({ ok: false, error: 'timeout' }), timeoutMs)
    s.on('connect', () => s.write(want))
    s.on('data', (c) => {
      got = Buffer.concat([got, c])
      if (got.length >= want.length) done({ ok: got.equals(want) })
    })
    s.on('error', (e) => done({ ok: false, error: e.code ?? e.message }))
    s.on('close', () => done({ ok: false, error: 'closed' }))
  })

const monotonic = async (prop, unit) => {
  const r = await sh(`systemctl show -P ${prop} ${unit}`)
  const us = Number(Buffer.from(r.out, 'base64').toString().trim())
  return us > 0 ? us / 1e6 : null
}

const times = async () => {
  const journal = await sh("journalctl -b -u podvm-mesh.service -o json --output-fields=MESSAGE,__MONOTONIC_TIMESTAMP")
  let ready = null
  for (const line of Buffer.from(journal.out, 'base64').toString().split('\n')) {
    try {
      const entry = JSON.parse(line)
      if (ready === null && JSON.parse(entry.MESSAGE).msg === 'ready') ready = Number(entry.__MONOTONIC_TIMESTAMP) / 1e6
    } catch {}
  }
  return {
    baseline: await monotonic('ExecMainExitTimestampMonotonic', 'podvm-mesh-baseline.service'),
    kataAgent: await monotonic('ExecMainStartTimestampMonotonic', 'kata-agent.service'),
    ready,
  }
}

const ops = { sh: (m) => sh(m.cmd, m.timeoutMs), readyz, echo, times }

const lines = createInterface({ input: createReadStream(port) })
lines.on('line', async (line) => {
  let msg
  try {
    msg = JSON.parse(line.slice(line.indexOf('{')))
  } catch {
    return
  }
  const op = ops[msg.op]
  if (op === undefined) return reply({ id: msg.id, error: `unknown op ${msg.op}` })
  try {
    reply({ id: msg.id, ...(await op(msg)) })
  } catch (e) {
    reply({ id: msg.id, error: String(e) })
  }
})
reply({ hello: true })
