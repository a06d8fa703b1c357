// Two network namespaces joined by a veth pair, for tests that need a real link between two
// "hosts" (testing.md 3.1): loss, resets and blackholes made with nft rules on the link. Root
// only. Names carry this process's pid (`tcps-<pid>-a`, `tcps-<pid>-b`), so parallel runs never
// meet, and namespaces left behind by a killed run (its pid gone) are removed by the next one.
// The addresses (10.231.<pid % 256>.0/30, fd00:231:<pid % 65536>::/64) also get blackhole routes
// in the namespace that creates the pair, so nothing meant for the link can leave through it.
// Every command is bounded (spawnSync timeout); `remove()` undoes everything and never throws.
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process'
import { accessSync, constants, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { sleep } from './index.js'

/**
 * The path of a system tool: the first on PATH outside node_modules (under `npx`, PATH starts
 * with node_modules/.bin, which has an `nft` of its own: @vercel/nft), then the sbin folders.
 */
function systemTool(tool: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin']
  for (const dir of dirs) {
    if (!dir || dir.includes('node_modules')) continue
    try {
      accessSync(join(dir, tool), constants.X_OK)
      return join(dir, tool)
    } catch {}
  }
  return null
}

const TOOLS = ['ip', 'nft', 'nstat', 'sysctl'] as const
const tools = Object.fromEntries(TOOLS.map((t) => [t, systemTool(t)])) as Record<
  (typeof TOOLS)[number],
  string | null
>

/** The first of the tools this needs that is not installed, or null. */
export function missingNetnsTool(): string | null {
  return TOOLS.find((t) => tools[t] === null) ?? null
}

/** A tool's path (only called once `missingNetnsTool()` returned null). */
const tool = (name: (typeof TOOLS)[number]): string => tools[name] ?? name

/** Runs a command (bounded); returns stdout, throws with stderr when it fails. */
function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 10_000 })
  if (r.error || r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? r.status}): ${r.stderr}`)
  }
  return r.stdout
}

/** Runs `ip args`, ignoring failure (teardown). */
const tryIp = (args: string[]): void => {
  spawnSync(tool('ip'), args, { stdio: 'ignore', timeout: 10_000 })
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Deletes `tcps-<pid>-a|b` namespaces whose pid is no longer running (a killed earlier run). */
export function removeStaleNamespaces(): void {
  let names: string[]
  try {
    names = readdirSync('/run/netns')
  } catch {
    return
  }
  for (const name of names) {
    const m = /^tcps-(\d+)-[ab]$/.exec(name)
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) tryIp(['netns', 'del', name])
  }
}

export interface Side {
  /** Namespace name (for `ip netns exec`). */
  ns: string
  /** This side's veth interface. */
  dev: string
  v4: string
  v6: string
}

export interface NetnsPair {
  /** The server side (10.231.n.1, fd00:231:n::1). */
  a: Side
  /** The client side (10.231.n.2, fd00:231:n::2). */
  b: Side
  /** Runs `cmd args` inside `side`'s namespace (bounded); returns stdout. */
  exec(side: Side, cmd: string, args: string[], input?: string): string
  /** Runs `nft args` inside `side`'s namespace, `input` on stdin; returns stdout. */
  nft(side: Side, args: string[], input?: string): string
  /** Loads an nft ruleset in `side`'s namespace, with conntrack byte counts on if it uses `ct`. */
  load(side: Side, ruleset: string): void
  /** Absolute kernel counters (`nstat -az`) of `side`'s namespace, by name. */
  nstat(side: Side): Record<string, number>
  /** Starts `cmd args` inside `side`'s namespace. */
  spawn(side: Side, cmd: string, args: string[]): ChildProcessWithoutNullStreams
  /** Deletes both namespaces (with the veth pair and every socket in them) and the routes. */
  remove(): void
}

/** Creates the pair; on any failure, what was made so far is removed before the error is thrown. */
export function createNetnsPair(): NetnsPair {
  removeStaleNamespaces()
  const pid = process.pid
  const n4 = pid % 256
  const n6 = (pid % 65536).toString(16)
  const a: Side = { ns: `tcps-${pid}-a`, dev: `tcps${pid}a`, v4: `10.231.${n4}.1`, v6: `fd00:231:${n6}::1` }
  const b: Side = { ns: `tcps-${pid}-b`, dev: `tcps${pid}b`, v4: `10.231.${n4}.2`, v6: `fd00:231:${n6}::2` }
  const net4 = `10.231.${n4}.0/30`
  const net6 = `fd00:231:${n6}::/64`
  const remove = (): void => {
    tryIp(['netns', 'del', a.ns])
    tryIp(['netns', 'del', b.ns])
    tryIp(['link', 'del', a.dev]) // only if creation stopped before the move
    tryIp(['route', 'del', 'blackhole', net4])
    tryIp(['-6', 'route', 'del', 'blackhole', net6, 'dev', 'lo'])
  }
  const ip = tool('ip')
  const exec = (side: Side, cmd: string, args: string[], input?: string): string =>
    sh(ip, ['netns', 'exec', side.ns, cmd, ...args], input)
  try {
    // Fail closed where we are: the test ranges go nowhere outside the pair.
    sh(ip, ['route', 'replace', 'blackhole', net4])
    sh(ip, ['-6', 'route', 'replace', 'blackhole', net6, 'dev', 'lo'])
    sh(ip, ['netns', 'add', a.ns])
    sh(ip, ['netns', 'add', b.ns])
    sh(ip, ['link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev])
    for (const s of [a, b]) {
      sh(ip, ['link', 'set', s.dev, 'netns', s.ns])
      sh(ip, ['-n', s.ns, 'link', 'set', 'lo', 'up'])
      sh(ip, ['-n', s.ns, 'addr', 'add', `${s.v4}/30`, 'dev', s.dev])
      sh(ip, ['-n', s.ns, '-6', 'addr', 'add', `${s.v6}/64`, 'dev', s.dev, 'nodad'])
      // One MSS per packet (no 64 KiB GSO bursts), so a rule drops what a wire would lose.
      sh(ip, ['-n', s.ns, 'link', 'set', s.dev, 'gso_max_segs', '1', 'up'])
    }
  } catch (e) {
    remove()
    throw e
  }
  return {
    a,
    b,
    exec,
    nft: (side, args, input) => exec(side, tool('nft'), args, input),
    load(side, ruleset) {
      exec(side, tool('nft'), ['-f', '-'], ruleset)
      // Per-flow byte counts for `ct ... bytes` matches. The sysctl exists once conntrack is
      // loaded (a modular kernel loads it for the first rule that uses `ct`); it applies to
      // flows tracked from now on.
      if (/\bct\b/.test(ruleset)) exec(side, tool('sysctl'), ['-qw', 'net.netfilter.nf_conntrack_acct=1'])
    },
    // -a absolute, -s no history file (it is per user, not per namespace), -z zeros too.
    nstat: (side) =>
      (JSON.parse(exec(side, tool('nstat'), ['-asz', '--json'])) as { kernel: Record<string, number> })
        .kernel,
    spawn: (side, cmd, args) => spawn(ip, ['netns', 'exec', side.ns, cmd, ...args]),
    remove,
  }
}

/** A child process that speaks JSON lines on stdout. */
export interface JsonChild {
  child: ChildProcessWithoutNullStreams
  /** Takes the first message (already received or to come) that has `key`; bounded. */
  next(key: string, ms?: number): Promise<Record<string, unknown>>
  /** Messages received and not taken yet. */
  messages: Array<Record<string, unknown>>
  stderr(): string
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>
  /** SIGKILL if still running. */
  kill(): void
}

export function jsonChild(child: ChildProcessWithoutNullStreams): JsonChild {
  const messages: Array<Record<string, unknown>> = []
  let err = ''
  let exit: number | string | undefined
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    err += s
  })
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      messages.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      err += `(stdout) ${line}\n`
    }
  })
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = code ?? signal ?? -1
      resolve(exit)
    }),
  )
  return {
    child,
    messages,
    exited,
    stderr: () => err,
    async next(key, ms = 10_000) {
      const deadline = Date.now() + ms
      for (;;) {
        const i = messages.findIndex((m) => key in m)
        if (i >= 0) return messages.splice(i, 1)[0] as Record<string, unknown>
        // Lines may still be in the pipe when 'exit' fires: one more look after a pause.
        if (exit !== undefined) {
          await sleep(50)
          const j = messages.findIndex((m) => key in m)
          if (j >= 0) return messages.splice(j, 1)[0] as Record<string, unknown>
          throw new Error(`the child exited (${exit}) before sending ${key}: ${err}`)
        }
        if (Date.now() > deadline) throw new Error(`no ${key} message from the child within ${ms} ms: ${err}`)
        await sleep(10)
      }
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    },
  }
}
