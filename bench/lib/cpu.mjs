// From /proc: a process's CPU time (utime+stime, all its threads), its reaped children's, per-core
// busy time, a process's open sockets and its resident memory.

import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'

export const CLK_TCK = clockTicks()

function clockTicks() {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100 // Linux's USER_HZ on every common architecture
  }
}

/** utime + stime of `pid` in seconds (fields 14 and 15 of /proc/PID/stat). */
export function processCpuSeconds(pid) {
  const field = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  return (field(14) + field(15)) / CLK_TCK
}

/** `pid` and its descendants (node:cluster's workers), from /proc/PID/task/TID/children. */
export function processTree(pid) {
  const out = [pid]
  for (let i = 0; i < out.length; i++) {
    let tasks = []
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`)
    } catch {
      continue
    }
    for (const tid of tasks) {
      try {
        const kids = readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').trim()
        if (kids) out.push(...kids.split(/\s+/).map(Number))
      } catch {
        // gone meanwhile
      }
    }
  }
  return out
}

/** utime + stime of `pid` and its descendants, in seconds (one process: the same as processCpuSeconds). */
export function treeCpuSeconds(pid) {
  let sum = 0
  for (const p of processTree(pid)) {
    try {
      sum += processCpuSeconds(p)
    } catch {
      // exited meanwhile
    }
  }
  return sum
}

/**
 * CPU seconds of this process's children that have been waited for (cutime + cstime, fields 16
 * and 17 of /proc/self/stat). Its change across a child's run is that child's CPU time.
 */
export function reapedChildrenCpuSeconds() {
  const field = statFields(readFileSync('/proc/self/stat', 'utf8'))
  return (field(16) + field(17)) / CLK_TCK
}

/** Field n (1-based, as in proc(5)) of a /proc/PID/stat text, as a number. */
export function statFields(text) {
  // Field 2 (comm) is in parentheses and may hold spaces: count fields after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ') // rest[0] is field 3
  return (n) => Number(rest[n - 3])
}

/**
 * Busy, softirq and total ticks per core, from /proc/stat: { cpu0: { busy, softirq, total }, ... }.
 * Softirq time (network receive processing, loopback included) is part of busy, and is not
 * charged to any process.
 */
export function coreTicks() {
  const cores = {}
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^(cpu\d+)\s+(.*)$/.exec(line)
    if (!m) continue
    const [user, nice, system, idle, iowait, irq, softirq, steal] = m[2].split(/\s+/).map(Number)
    const busy = user + nice + system + irq + softirq + steal
    cores[m[1]] = { busy, softirq, total: busy + idle + iowait }
  }
  return cores
}

/** Percentage of time `core` was busy (or in `field`) between two coreTicks() snapshots. */
export function busyPercent(before, after, core, field = 'busy') {
  const total = after[core].total - before[core].total
  return total > 0 ? (100 * (after[core][field] - before[core][field])) / total : 0
}

/** Sockets among `pid`'s open descriptors (its listening socket included), or null if it is gone. */
export function socketCount(pid) {
  let fds
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return null
  }
  let n = 0
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++
    } catch {
      // closed while we looked
    }
  }
  return n
}

/**
 * Context switches (voluntary + involuntary) of all threads of `pid` and its descendants so
 * far, summed over /proc/PID/task/TID/status (the process's own status counts its main thread
 * only), or null if it is gone. Threads that exited meanwhile are not counted.
 */
export function contextSwitches(pid) {
  if (!existsSync(`/proc/${pid}/task`)) return null
  let n = 0
  for (const p of processTree(pid)) {
    let tasks = []
    try {
      tasks = readdirSync(`/proc/${p}/task`)
    } catch {
      continue
    }
    for (const tid of tasks) {
      let text
      try {
        text = readFileSync(`/proc/${p}/task/${tid}/status`, 'utf8')
      } catch {
        continue // exited while we looked
      }
      for (const m of text.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) n += Number(m[1])
    }
  }
  return n
}

/** Resident set size of `pid` in bytes (VmRSS of /proc/PID/status), or null if it is gone. */
export function rssBytes(pid) {
  let text
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return null
  }
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(text)
  return kb ? Number(kb[1]) * 1024 : null
}
