// The VM test's prober, run in the host namespace from before the VMs boot: it keeps
// opening TCP connections to each target and sending a plaintext marker on every one
// that connects. Every 2 s, and at SIGTERM, it prints one JSON line of counts per target.
// Usage: node prober.mjs MARKER HOST:PORT [[IPV6]:PORT ...]
import net from 'node:net'

const [marker, ...targets] = process.argv.slice(2)
const counts = Object.fromEntries(targets.map((t) => [t, { attempts: 0, connected: 0, sent: 0, errors: {} }]))
const inflight = Object.fromEntries(targets.map((t) => [t, 0]))
let seq = 0

function attempt(target) {
  if (inflight[target] >= 4) return
  const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(target)
  const c = counts[target]
  c.attempts++
  inflight[target]++
  const s = net.connect({ host: m[1], port: Number(m[2]) })
  const finish = (why) => {
    if (why !== undefined) c.errors[why] = (c.errors[why] ?? 0) + 1
    clearTimeout(timer)
    s.destroy()
  }
  const timer = setTimeout(() => finish(s.connecting ? 'connect-timeout' : undefined), 1500)
  s.on('connect', () => {
    c.connected++
    s.write(`${marker} seq=${++seq} to=${target}\n`, () => c.sent++)
  })
  s.on('data', () => {})
  s.on('error', (e) => finish(e.code ?? 'error'))
  s.on('close', () => {
    inflight[target]--
    finish()
  })
}

const report = () => process.stdout.write(`${JSON.stringify({ t: Date.now(), counts })}\n`)
const tick = setInterval(() => targets.forEach(attempt), 200)
const rep = setInterval(report, 2000)
process.on('SIGTERM', () => {
  clearInterval(tick)
  clearInterval(rep)
  report()
  process.exit(0)
})
