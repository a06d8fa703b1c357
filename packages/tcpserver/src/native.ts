// Loads the generated napi-rs loader (binding.cjs, CommonJS) from this ESM package, and turns its
// failure into an error that says what happened and what to do. Only src/*.ts use it.
//
// The generated loader tries, for this platform, `./<binary>.<platform>.node` beside it and then
// the platform package (`<packageName>-<platform>`, an optional dependency), and throws one
// "Cannot find native binding" error whose `cause` chain holds each attempt's error. From that
// chain (messages only: the loader re-creates each error without its code): "Cannot find module"
// for the platform package means nothing is installed; any other error (dlopen: wrong
// architecture, a libc symbol version missing, a corrupt file; a version mismatch) means a binary
// is there and failed to load. The package names come from the loader's own attempts, so
// its musl/glibc decision is not repeated here.
import { createRequire } from 'node:module'
import { nativeLoadError } from './errors.js'

const require = createRequire(import.meta.url)

/** What `package.json` says about the binaries: names and the napi-rs targets. */
interface PackageInfo {
  name: string
  version: string
  napi?: { packageName?: string; targets?: string[] }
}

/** The loader's error and its causes, outermost first. */
function chain(e: unknown): Error[] {
  const out: Error[] = []
  for (let c = e, i = 0; c instanceof Error && i < 50; c = (c as { cause?: unknown }).cause, i++) out.push(c)
  return out
}

/** The module a "Cannot find module 'x'" error is about. */
function missingModule(e: Error): string | undefined {
  return /^Cannot find module '([^']+)'/.exec(e.message)?.[1]
}

/** The prefix of the platform packages: napi-rs names them `<packageName>-<platform>`. */
function prefix(pkg: PackageInfo): string {
  return `${pkg.napi?.packageName ?? pkg.name}-`
}

/**
 * napi-rs's platform name of a Rust target triple, as in its package names:
 * `x86_64-unknown-linux-gnu` → `linux-x64-gnu`, `aarch64-apple-darwin` → `darwin-arm64`.
 */
function platformOf(triple: string): string {
  const [cpu = '', , sys = '', abi] = triple.split('-')
  const arch =
    ({ x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' } as Record<string, string>)[cpu] ?? cpu
  if (sys === 'darwin') return `darwin-${arch}`
  const platform = sys === 'windows' ? 'win32' : sys
  return abi ? `${platform}-${arch}-${abi}` : `${platform}-${arch}`
}

/**
 * The platform packages of this release, one per napi target (`napi pre-publish` lists the same
 * names as optionalDependencies of the published package).
 */
function platformPackages(pkg: PackageInfo): string[] {
  return (pkg.napi?.targets ?? []).map((t) => `${prefix(pkg)}${platformOf(t)}`)
}

function describe(e: unknown): Error {
  const pkg = require('../package.json') as PackageInfo
  const here = `${process.platform}-${process.arch}`
  const fromSource =
    'Or build it from source with the Rust toolchain (see "Building from source" in the README of ' +
    `${pkg.name}), and set NAPI_RS_NATIVE_LIBRARY_PATH to the .node file it produces.`
  const causes = chain(e).slice(1)
  const known = platformPackages(pkg)

  // A binary was found and the OS (or Node) refused it: say so, with the loader's message.
  const failed = causes.find(
    (c) => missingModule(c) === undefined && !/^Unsupported (OS|architecture)/.test(c.message),
  )
  if (failed) {
    return nativeLoadError(
      'ERR_TCPSERVER_NATIVE_LOAD',
      `${pkg.name}: a native binary for ${here} is installed but failed to load: ${failed.message}`,
      e,
    )
  }

  // Nothing installed: name the platform package the loader looked for.
  const tried = causes.map(missingModule).filter((m): m is string => m !== undefined && known.includes(m))
  if (tried.length > 0) {
    const name = tried[0] as string
    return nativeLoadError(
      'ERR_TCPSERVER_NATIVE_MISSING',
      `${pkg.name}: no native binary for ${here}: the platform package ${name} is not installed. ` +
        `It is an optional dependency of ${pkg.name}, skipped by npm install --omit=optional ` +
        `(or --no-optional) and by lock files made elsewhere by some npm versions. ` +
        `Install it: npm install ${name}@${pkg.version}. ${fromSource}`,
      e,
    )
  }

  // The loader had no candidate for this platform.
  return nativeLoadError(
    'ERR_TCPSERVER_NATIVE_MISSING',
    `${pkg.name}: no prebuilt native binary for ${here}. Prebuilt binaries exist for: ` +
      `${known.map((n) => n.slice(prefix(pkg).length)).join(', ')}. ${fromSource}`,
    e,
  )
}

function load(): typeof import('../binding.cjs') {
  try {
    return require('../binding.cjs')
  } catch (e) {
    throw describe(e)
  }
}

export const binding: typeof import('../binding.cjs') = load()
export type {
  BindingClientTlsOptions,
  BindingConnectionInfo,
  BindingConnections,
  BindingError,
  BindingHub,
  BindingServer,
  BindingTlsOptions,
} from '../binding.cjs'
