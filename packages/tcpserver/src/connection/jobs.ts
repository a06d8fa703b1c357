// A connection's jobs, which Rust runs while JavaScript only waits: forwarding to another
// connection (`pipe`), sending a file (`sendFile`), upgrading to TLS in place (`startTls`);
// pausing the reader they need first, and their done events.
//
// A base class of Connection, like the reader below it. A job's state is one small object made
// when the first job starts: a connection that never runs one pays for one empty field.

import { fileError, fromBinding, inOptions, type TcpServerError } from '../errors.js'
import { toBindingTls } from '../tls.js'
import type { PipeOptions, PipeResult, SendFileOptions, TlsOptions } from '../types.js'
import { validateSendFileArgs, validateTls } from '../validate.js'
import { ConnectionReader } from './reader.js'
import { Pipe, type Settle, splitDone } from './state.js'

/** Internal entry points for the server's event dispatch (not exported from the package). */
export let deliverPaused: (c: ConnectionJobs) => void
export let deliverPipeDone: (c: ConnectionJobs, text: string) => void
export let deliverFileDone: (c: ConnectionJobs, text: string) => void
export let deliverTlsStarted: (c: ConnectionJobs, text: string) => void

/** The state of a connection's jobs, made when the first one starts. */
class JobState {
  pipe: Pipe = Pipe.None
  peer: ConnectionJobs | null = null
  paused: Settle<void> | null = null
  pipeDone: Settle<PipeResult> | null = null
  /** Pending sendFile() calls, in call order: the native side finishes them in that order. */
  filesDone: Settle<number>[] | null = null
  tlsStarted: Settle<void> | null = null
}

/** The jobs of {@link Connection}: `pipe()` (entered through Connection), `sendFile()`, `startTls()`. */
export abstract class ConnectionJobs extends ConnectionReader {
  abstract bytesWritten: number

  #jobs: JobState | null = null

  // Private helpers are static for the reason given in reader.ts: no brand slot per instance.
  static #jobsOf(conn: ConnectionJobs): JobState {
    if (conn.#jobs === null) conn.#jobs = new JobState()
    return conn.#jobs
  }

  static {
    deliverPaused = (c) => ConnectionJobs.#onPaused(c)
    deliverPipeDone = (c, text) => ConnectionJobs.#onPipeDone(c, text)
    deliverFileDone = (c, text) => ConnectionJobs.#onFileDone(c, text)
    deliverTlsStarted = (c, text) => ConnectionJobs.#onTlsStarted(c, text)
  }

  /** @internal The error a job meets on a closed connection (the one that closed it), else `null`. */
  protected abstract closedError(): TcpServerError | null
  /** @internal Once the handler settled, the error that refuses output, else `null`. */
  protected abstract settledError(): TcpServerError | null
  /** @internal A pipe ended: this connection's output is done. */
  protected abstract endOutput(): void
  /** @internal After StartTLS: the addresses and TLS facts are fetched again. */
  protected abstract forgetInfo(): void

  /** @internal Pausing to pipe or to start TLS, piping, or piped (the input was consumed): pipe() and the stream adapters are refused. */
  protected get jobHoldsInput(): boolean {
    return (this.#jobs?.pipe ?? Pipe.None) !== Pipe.None
  }

  /** @internal Pausing to pipe or to start TLS, or piping: reads are refused (after a pipe they return `null`). */
  protected override get jobUnderWay(): boolean {
    const pipe = this.#jobs?.pipe ?? Pipe.None
    return pipe !== Pipe.None && pipe !== Pipe.Done
  }

  /** @internal `pipe()` once its arguments are checked. */
  protected async pipeTo(other: ConnectionJobs, options: PipeOptions): Promise<PipeResult> {
    for (const c of [this, other]) ConnectionJobs.#assertIdle(c)
    const mine = ConnectionJobs.#jobsOf(this)
    const theirs = ConnectionJobs.#jobsOf(other)
    mine.peer = other
    theirs.peer = this
    await Promise.all([ConnectionJobs.#pauseReading(this), ConnectionJobs.#pauseReading(other)])
    const queued = this.takeQueued()
    const toOther = options.head && queued ? Buffer.concat([options.head, queued]) : (options.head ?? queued)
    const toThis = other.takeQueued()
    return new Promise<PipeResult>((resolve, reject) => {
      mine.pipeDone = [resolve, reject]
      mine.pipe = Pipe.Piping
      theirs.pipe = Pipe.Piping
      const err = this.native.pipe(this.id, other.native, other.id, toOther, toThis, options.idleTimeout)
      if (err) {
        mine.pipeDone = null
        reject(fromBinding(err, undefined, inOptions(options)))
      }
    })
  }

  /**
   * Sends a file (by path, or by a descriptor you keep owning) or a range of it, after the
   * bytes already written: `sendfile(2)` on Linux for plain TCP, a read/write loop elsewhere.
   * Writes made meanwhile go out after it. Resolves with the bytes sent.
   *
   * Only regular files are sent. The file is opened non-blocking (a FIFO without a writer
   * never holds the event loop) and checked on the open descriptor.
   *
   * @throws {TcpServerError} `ENOENT`, `EACCES`, `ENAMETOOLONG` (with `syscall` and `path`);
   * `EISDIR` for a directory; `ERR_TCPSERVER_NOT_A_FILE` for a FIFO, socket or device, or a
   * pseudo-file that reports 0 bytes but has content (`/proc`: read it and `write()` it);
   * `ERR_INVALID_ARG_VALUE` for a path with a NUL byte, or (a `RangeError` with
   * `option: 'offset' | 'length'`) for a range outside the file;
   * `ERR_TCPSERVER_FILE_TRUNCATED` if the file shrank while it was sent.
   */
  sendFile(file: string | number, sendOptions?: SendFileOptions): Promise<number> {
    let options: SendFileOptions
    try {
      options = validateSendFileArgs(file, sendOptions, this.sendFile)
    } catch (e) {
      return Promise.reject(e)
    }
    // The native call reserves the output now, so writes made after this call follow the file.
    return new Promise<number>((resolve, reject) => {
      const refused = this.settledError() ?? this.closedError()
      if (refused) {
        reject(refused)
        return
      }
      const err =
        typeof file === 'string'
          ? this.native.sendFile(this.id, file, undefined, options.offset, options.length)
          : this.native.sendFile(this.id, undefined, file, options.offset, options.length)
      if (err) {
        const context = inOptions(options)
        const e = fromBinding(err, undefined, (o) =>
          o === 'file' ? { name: 'file', value: file } : context(o),
        )
        reject(typeof file === 'string' ? fileError(e, 'open', file) : e)
      } else {
        const jobs = ConnectionJobs.#jobsOf(this)
        if (jobs.filesDone === null) jobs.filesDone = [[resolve, reject]]
        else jobs.filesDone.push([resolve, reject])
      }
    })
  }

  /**
   * Upgrades this plain connection to TLS in place (StartTLS, as in SMTP, IMAP or Postgres),
   * with the server's TLS settings or `options`. Bytes written before go out in plaintext;
   * bytes written after are encrypted. Input the handler received but did not read (the
   * start of the client's handshake) is handed to TLS, so nothing is lost. Resolves once the
   * handshake completed; then `conn.tls` describes it.
   *
   * @throws {TcpServerError} `ERR_TCPSERVER_TLS_HANDSHAKE` (the connection is then closed),
   * `ERR_TCPSERVER_BUSY` with a pending `read()`, `ERR_INVALID_ARG_VALUE` for bad settings or
   * when the connection already speaks TLS.
   */
  async startTls(tlsOptions?: TlsOptions): Promise<void> {
    const options =
      tlsOptions === undefined
        ? undefined
        : (validateTls(tlsOptions, this.startTls, 'options') as unknown as TlsOptions)
    ConnectionJobs.#assertIdle(this)
    await ConnectionJobs.#pauseReading(this)
    const head = this.takeQueued()
    const jobs = ConnectionJobs.#jobsOf(this)
    await new Promise<void>((resolve, reject) => {
      jobs.tlsStarted = [resolve, reject]
      const err = this.native.startTls(this.id, head, options ? toBindingTls(options) : undefined)
      if (err) {
        jobs.tlsStarted = null
        const context = inOptions(options)
        reject(
          fromBinding(err, undefined, (o) =>
            o === 'tls' ? { name: 'options', value: options } : context(o.replace(/^tls\./, '')),
          ),
        )
      }
    })
    jobs.pipe = Pipe.None
    this.forgetInfo()
  }

  /** @internal Something waits for a job: closing must build an error to reject it with. */
  protected get jobsWaiting(): boolean {
    const jobs = this.#jobs
    return (
      jobs !== null &&
      (jobs.paused !== null ||
        (jobs.filesDone?.length ?? 0) > 0 ||
        jobs.pipeDone !== null ||
        jobs.tlsStarted !== null)
    )
  }

  /** @internal The connection closed: every job still waiting fails with `gone`. */
  protected failJobs(gone: Error): void {
    const jobs = this.#jobs
    if (jobs === null) return
    jobs.paused?.[1](gone)
    jobs.paused = null
    for (const [, reject] of jobs.filesDone?.splice(0) ?? []) reject(gone)
    jobs.pipeDone?.[1](gone)
    jobs.pipeDone = null
    jobs.tlsStarted?.[1](gone)
    jobs.tlsStarted = null
  }

  static #assertIdle(conn: ConnectionJobs): void {
    const closed = conn.closedError()
    if (closed) throw closed
    conn.claimInput(conn.jobHoldsInput)
  }

  static #pauseReading(conn: ConnectionJobs): Promise<void> {
    const jobs = ConnectionJobs.#jobsOf(conn)
    jobs.pipe = Pipe.Pausing
    return new Promise<void>((resolve, reject) => {
      jobs.paused = [resolve, reject]
      const err = conn.native.pauseReading(conn.id)
      if (err) {
        jobs.paused = null
        reject(fromBinding(err))
      }
    })
  }

  static #onPaused(conn: ConnectionJobs): void {
    const jobs = conn.#jobs
    if (jobs === null) return
    jobs.pipe = Pipe.Paused
    const p = jobs.paused
    jobs.paused = null
    p?.[0]()
  }

  static #onPipeDone(conn: ConnectionJobs, text: string): void {
    const [[bytesIn = 0, bytesOut = 0], err] = splitDone(text, 2)
    const jobs = ConnectionJobs.#jobsOf(conn)
    for (const c of [conn, jobs.peer]) {
      if (!c) continue
      ConnectionJobs.#jobsOf(c).pipe = Pipe.Done
      c.endInput()
      c.endOutput()
    }
    conn.bytesRead += bytesIn
    conn.bytesWritten += bytesOut
    const done = jobs.pipeDone
    jobs.pipeDone = null
    if (err) done?.[1](err)
    else done?.[0]({ bytesIn, bytesOut })
  }

  static #onFileDone(conn: ConnectionJobs, text: string): void {
    const [[bytes = 0], err] = splitDone(text, 1)
    conn.bytesWritten += bytes
    const done = conn.#jobs?.filesDone?.shift()
    if (err) done?.[1](err)
    else done?.[0](bytes)
  }

  static #onTlsStarted(conn: ConnectionJobs, text: string): void {
    const [, err] = splitDone(text, 0)
    const jobs = conn.#jobs
    const done = jobs?.tlsStarted ?? null
    if (jobs !== null) jobs.tlsStarted = null
    if (err) done?.[1](err)
    else done?.[0]()
  }
}
