// Loads the generated napi-rs loader (CommonJS) from this ESM package. Only src/*.ts use it.
import { createRequire } from 'node:module'
import { nativeMissing } from './errors.js'

const require = createRequire(import.meta.url)

/** The platform package napi-rs publishes for this machine, e.g. `tcpserver-linux-x64-gnu`. */
function platformPackage(): string {
  const { platform, arch } = process
  if (platform === 'linux') {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)
      ?.header
    return `tcpserver-linux-${arch}-${header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `tcpserver-win32-${arch}-msvc`
  return `tcpserver-${platform}-${arch}`
}

function load(): typeof import('../binding.cjs') {
  try {
    return require('../binding.cjs')
  } catch (e) {
    throw nativeMissing(platformPackage(), e)
  }
}

export const binding: typeof import('../binding.cjs') = load()
export type {
  BindingClientTlsOptions,
  BindingConnectionInfo,
  BindingError,
  BindingServer,
  BindingTlsOptions,
} from '../binding.cjs'
