// Static file server over HTTP/1.1 keep-alive: files go out with sendfile(2) on Linux.
//   node examples/static.mjs [root-dir] [address]
// The API in a few lines. The complete server (HEAD, Range, Content-Type, 403/405/416, pipelining)
// is the `tcpserver static DIR` command: packages/tcpserver/src/cli/static.ts.
import { realpath, stat } from 'node:fs/promises'
import { join, resolve, sep } from 'node:path'
import { listen } from 'tcpserver-rs'

const response = (status, length, close) =>
  `HTTP/1.1 ${status}\r\nContent-Length: ${length}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`

/** The file for a request path, only if it stays inside `root` (no `..`, no escaping symlink). */
async function resolveFile(root, urlPath) {
  let path
  try {
    path = decodeURIComponent(urlPath.split('?')[0])
  } catch {
    return null
  }
  if (path.includes('\0')) return null
  try {
    const real = await realpath(resolve(join(root, path)))
    if (real !== root && !real.startsWith(root + sep)) return null
    const info = await stat(real)
    return info.isFile() ? { path: real, size: info.size } : null
  } catch {
    return null
  }
}

export async function startStatic(dir = '.', address = '127.0.0.1:8081') {
  const root = await realpath(dir)
  return listen({
    address,
    async handler(conn) {
      let pending = ''
      for await (const chunk of conn) {
        pending += chunk.toString('latin1')
        let end = pending.indexOf('\r\n\r\n')
        while (end !== -1) {
          const head = pending.slice(0, end)
          pending = pending.slice(end + 4)
          const [method, target] = head.split(' ', 2)
          const close = /\r\nconnection:\s*close/i.test(head)
          const file = method === 'GET' && target ? await resolveFile(root, target) : null
          if (file) {
            await conn.write(response('200 OK', file.size, close))
            await conn.sendFile(file.path)
          } else {
            await conn.write(response('404 Not Found', 0, close))
          }
          if (close) return
          end = pending.indexOf('\r\n\r\n')
        }
      }
    },
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, address] = process.argv.slice(2)
  const server = await startStatic(dir, address)
  const a = server.addresses[0]
  console.log(`serving ${dir ?? '.'} on http://${a.address}:${a.port}/`)
  process.once('SIGINT', () => server.shutdown({ timeout: 5000 }))
}
