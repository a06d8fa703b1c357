// Loads the generated napi-rs loader (CommonJS) from this ESM package. Only src/*.ts use it.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
export const binding: typeof import('../binding.cjs') = require('../binding.cjs')
export type {
  BindingClientTlsOptions,
  BindingConnectionInfo,
  BindingError,
  BindingServer,
  BindingTlsOptions,
} from '../binding.cjs'
