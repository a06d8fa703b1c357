// Small multiples: one panel per test, each with its own scale (req/s for wrk tests, GB/s for
// download and echo tests, bytes per connection for the idle test), one bar per variant (same
// colour in every panel), the server's CPU per unit of work inside the bars. Plain SVG text.
import { perGB } from './stats.mjs'
import { variantsFor } from './variants.mjs'

const COLORS = ['#d95f02', '#1b9e77', '#7570b3', '#e7298a', '#66a61e', '#e6ab02']
const BAR = 64
const GAP = 12
const PAD = 20 // between the axis and the first bar, and after the last
const AXIS = 56 // room for the tick labels left of each panel
const PANEL_GAP = 24
const PLOT_H = 260
const MAX_ROW_W = 1100
const M = { top: 60, right: 16, bottom: 56, left: 16 }
const HEAD = 58 // panel title lines and the unit above each plot
const FOOT = 24 // under each plot

export function svgChart({ summary, tests, variants, title }) {
  const color = new Map(variants.map((v, i) => [v.id, COLORS[i % COLORS.length]]))
  const panels = tests.map((test) => ({ test, bars: variantsFor(test, variants) }))
  for (const p of panels) p.width = AXIS + PAD * 2 + p.bars.length * BAR + (p.bars.length - 1) * GAP

  // Panels left to right, wrapping into rows.
  const rows = [[]]
  let rowW = 0
  for (const p of panels) {
    if (rowW > 0 && rowW + PANEL_GAP + p.width > MAX_ROW_W) {
      rows.push([])
      rowW = 0
    }
    rows.at(-1).push(p)
    rowW += (rowW > 0 ? PANEL_GAP : 0) + p.width
  }
  const rowH = HEAD + PLOT_H + FOOT
  const contentW = Math.max(
    ...rows.map((r) => r.reduce((w, p) => w + p.width, 0) + (r.length - 1) * PANEL_GAP),
  )
  const width = Math.max(M.left + contentW + M.right, 420)
  const height = M.top + rows.length * rowH + M.bottom
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
    `<text x="${width / 2}" y="42" text-anchor="middle" font-size="11" fill="#666">median per test, each panel on its own scale; in bars: CPU of the server under test per request or per GB; B/conn: lower is better</text>`,
  ]
  rows.forEach((row, r) => {
    let x = M.left
    for (const p of row) {
      out.push(...panel(p, x, M.top + r * rowH, summary, color))
      x += p.width + PANEL_GAP
    }
  })

  let lx = M.left + AXIS
  const ly = height - M.bottom / 2
  for (const variant of variants.filter((v) => panels.some((p) => p.bars.some((b) => b.id === v.id)))) {
    out.push(
      `<rect x="${lx}" y="${ly - 11}" width="14" height="14" fill="${color.get(variant.id)}"/>`,
      `<text x="${lx + 20}" y="${ly}">${esc(variant.label)}</text>`,
    )
    lx += 40 + variant.label.length * 8
  }
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

/** What a panel plots: the value of a row, its unit, how ticks and bar tops read, the in-bar text. */
function measure(test) {
  if (test.kind === 'idle') {
    return {
      value: (row) => row?.bytesPerConn,
      unit: 'B/conn',
      tick: kilo,
      title: (v) => `${Math.round(v)} B/conn`,
      inside: () => null,
    }
  }
  if (perGB({ kind: test.kind })) {
    return {
      value: (row) => row?.gbps,
      unit: 'GB/s',
      tick: (v) => `${+v.toFixed(2)}`,
      title: (v) => `${v.toFixed(2)} GB/s`,
      inside: (row) => row.cpuSecPerGB != null && `${row.cpuSecPerGB.toFixed(2)} s/GB`,
    }
  }
  return {
    value: (row) => row?.rps,
    unit: 'req/s',
    tick: kilo,
    title: (v) => `${Math.round(v)} req/s`,
    inside: (row) => row.cpuUsPerReq != null && `${row.cpuUsPerReq.toFixed(1)} µs`,
  }
}

function panel({ test, bars, width }, x0, y0, summary, color) {
  const { value, unit, tick, title, inside } = measure(test)
  const rows = bars.map((v) => summary.find((r) => r.test === test.id && r.variant === v.id))
  const max = niceMax(1.15 * Math.max(1e-9, ...rows.map((r) => value(r) ?? 0))) // room for the labels
  const top = y0 + HEAD
  const y = (v) => top + PLOT_H - (v / max) * PLOT_H
  const axisX = x0 + AXIS
  const out = [
    `<text x="${x0 + width / 2}" y="${y0 + 14}" text-anchor="middle" font-weight="bold">${esc(test.id)}</text>`,
    `<text x="${x0 + width / 2}" y="${y0 + 30}" text-anchor="middle" font-size="12">${esc(test.name)}</text>`,
    `<text x="${axisX - 8}" y="${top - 6}" text-anchor="end" font-size="11" fill="#666">${unit}</text>`,
  ]
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i
    out.push(
      `<line x1="${axisX}" x2="${x0 + width}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${axisX - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${tick(v)}</text>`,
    )
  }
  bars.forEach((variant, i) => {
    const row = rows[i]
    const x = axisX + PAD + i * (BAR + GAP)
    const cx = x + BAR / 2
    const v = value(row)
    if (v == null) {
      out.push(`<text x="${cx}" y="${y(0) - 6}" text-anchor="middle" fill="#999" font-size="11">n/a</text>`)
      return
    }
    out.push(
      `<rect x="${x}" y="${y(v)}" width="${BAR}" height="${y(0) - y(v)}" fill="${color.get(variant.id)}"><title>${esc(`${variant.label}: ${title(v)}`)}</title></rect>`,
      `<text x="${cx}" y="${y(v) - 6}" text-anchor="middle" font-size="12">${unit === 'GB/s' ? v.toFixed(2) : tick(v)}</text>`,
    )
    if (unit === 'req/s' && row.gbps != null) {
      out.push(
        `<text x="${cx}" y="${y(v) - 20}" text-anchor="middle" font-size="10" fill="#666">${row.gbps.toFixed(2)} GB/s</text>`,
      )
    }
    const cpu = inside(row)
    if (cpu && y(0) - y(v) > 24) {
      out.push(
        `<text x="${cx}" y="${y(0) - 8}" text-anchor="middle" font-size="11" fill="#fff">${cpu}</text>`,
      )
    }
  })
  out.push(`<line x1="${axisX}" x2="${x0 + width}" y1="${y(0)}" y2="${y(0)}" stroke="#333"/>`)
  return out
}

function niceMax(v) {
  const step = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10]) if (m * step >= v) return m * step // quarters stay round
  return 10 * step
}

function kilo(v) {
  return v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : `${Math.round(v)}`
}

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}
