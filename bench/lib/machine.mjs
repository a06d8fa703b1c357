// What the numbers were measured on.

import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'

export function machineInfo() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  return {
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()} ${os.version()}`,
    node: process.version,
    wrk: spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout?.split('\n')[0].trim() ?? 'unknown', // exits 1
    date: new Date().toISOString(),
  }
}

/** The external commands the harness needs that are not on PATH. */
export function missingTools() {
  return ['wrk', 'taskset', 'getconf'].filter((cmd) => spawnSync(cmd, ['--version']).error)
}
