// A grouped bar chart of median req/s: one group per test, one bar per variant. Plain SVG text.

const COLORS = ['#d95f02', '#1b9e77', '#7570b3', '#e7298a', '#66a61e', '#e6ab02']
const BAR = 56
const GAP = 12
const GROUP_GAP = 48
const PLOT_H = 300
const M = { top: 56, right: 24, bottom: 88, left: 80 }

export function svgChart({ summary, tests, variants, title }) {
  const max = niceMax(Math.max(1, ...summary.map((r) => r.rps ?? 0)))
  const groupW = variants.length * BAR + (variants.length - 1) * GAP
  const plotW = tests.length * groupW + (tests.length + 1) * GROUP_GAP
  const width = Math.max(M.left + plotW + M.right, 420)
  const height = M.top + PLOT_H + M.bottom
  const y = (v) => M.top + PLOT_H - (v / max) * PLOT_H
  const out = []

  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
  )
  for (let i = 0; i <= 5; i++) {
    const v = (max / 5) * i
    out.push(
      `<line x1="${M.left}" x2="${M.left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${M.left - 8}" y="${y(v) + 4}" text-anchor="end">${kilo(v)}</text>`,
    )
  }
  out.push(
    `<text transform="translate(18 ${M.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle">requests / second (median)</text>`,
    `<text x="${width / 2}" y="42" text-anchor="middle" font-size="11" fill="#666">in bars: server CPU µs per request (median)</text>`,
  )

  tests.forEach((test, t) => {
    const gx = M.left + GROUP_GAP + t * (groupW + GROUP_GAP)
    variants.forEach((variant, v) => {
      const row = summary.find((r) => r.test === test.id && r.variant === variant.id)
      const x = gx + v * (BAR + GAP)
      const cx = x + BAR / 2
      if (row?.rps == null) {
        out.push(`<text x="${cx}" y="${y(0) - 6}" text-anchor="middle" fill="#999" font-size="11">n/a</text>`)
        return
      }
      out.push(
        `<rect x="${x}" y="${y(row.rps)}" width="${BAR}" height="${y(0) - y(row.rps)}" fill="${COLORS[v % COLORS.length]}"><title>${esc(`${variant.label}: ${Math.round(row.rps)} req/s`)}</title></rect>`,
        `<text x="${cx}" y="${y(row.rps) - 6}" text-anchor="middle" font-size="12">${kilo(row.rps)}</text>`,
      )
      if (row.cpuUsPerReq != null && y(0) - y(row.rps) > 40) {
        out.push(
          `<text x="${cx}" y="${y(0) - 8}" text-anchor="middle" font-size="11" fill="#fff">${row.cpuUsPerReq.toFixed(1)} µs</text>`,
        )
      }
    })
    out.push(
      `<text x="${gx + groupW / 2}" y="${M.top + PLOT_H + 20}" text-anchor="middle" font-weight="bold">${esc(test.id)}</text>`,
      `<text x="${gx + groupW / 2}" y="${M.top + PLOT_H + 36}" text-anchor="middle">${esc(test.name)}</text>`,
    )
  })
  out.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${y(0)}" y2="${y(0)}" stroke="#333"/>`)

  let lx = M.left
  const ly = M.top + PLOT_H + 64
  variants.forEach((variant, v) => {
    out.push(
      `<rect x="${lx}" y="${ly - 11}" width="14" height="14" fill="${COLORS[v % COLORS.length]}"/>`,
      `<text x="${lx + 20}" y="${ly}">${esc(variant.label)}</text>`,
    )
    lx += 40 + variant.label.length * 8
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

function niceMax(v) {
  const step = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= v) return m * step
  return 10 * step
}

function kilo(v) {
  return v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : `${Math.round(v)}`
}

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}
