// Where and how the `tcpserver` command writes: stdout for its output lines, stderr for errors
// and warnings, addresses as `127.0.0.1:7000` / `[::1]:7000` / `unix:/path`.
export { formatAddress } from '../address.js'

/** Where the CLI writes: stdout for its output lines, stderr for errors. */
export interface Output {
  out(line: string): void
  err(line: string): void
}

/** The process's stdout and stderr, one line per call. */
export const stdio: Output = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
}
