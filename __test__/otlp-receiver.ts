// A local OTLP/HTTP endpoint for the CLI tests: one that answers like a collector and records
// what it got, one that accepts connections and never answers, and a port nobody listens on.
import { createServer as createHttp, type IncomingMessage } from 'node:http'
import { createServer as createTcp, type AddressInfo, type Socket } from 'node:net'

export interface Received {
  path: string
  contentType: string
  body: Buffer
}

export interface Endpoint {
  url: string
  received: Received[]
  close(): Promise<void>
}

const urlOf = (a: AddressInfo) => `http://127.0.0.1:${a.port}`

/** Answers every POST with 200 and an empty body, as a collector does, and keeps what it got. */
export async function collector(): Promise<Endpoint> {
  const received: Received[] = []
  const server = createHttp((req: IncomingMessage, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      received.push({ path: req.url ?? '', contentType: String(req.headers['content-type']), body: Buffer.concat(chunks) })
      res.writeHead(200, { 'content-type': String(req.headers['content-type']) }).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: urlOf(server.address() as AddressInfo), received, close: () => new Promise((r) => server.close(() => r())) }
}

/** Accepts connections and never answers. */
export async function blackhole(): Promise<Endpoint> {
  const sockets = new Set<Socket>()
  const server = createTcp((s) => {
    sockets.add(s)
    s.on('error', () => {})
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: urlOf(server.address() as AddressInfo),
    received: [],
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise((r) => server.close(() => r()))
    },
  }
}

/** A port that was free a moment ago: connections are refused. */
export async function down(): Promise<Endpoint> {
  const server = createTcp()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = urlOf(server.address() as AddressInfo)
  await new Promise<void>((r) => server.close(() => r()))
  return { url, received: [], close: async () => {} }
}
