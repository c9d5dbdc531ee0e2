// The chart: latency distributions per peer (box plot on a log axis over every sample, with
// the samples as ticks), rendered to SVG headlessly with vega-lite → vega.
import * as vega from 'vega'
import * as vl from 'vega-lite'

import type { ScenarioResult } from './types.js'

export async function latencyChart(results: ScenarioResult[], subtitle: string): Promise<string | undefined> {
  const values: { peer: string; us: number }[] = []
  const order: string[] = []
  const withData = results.filter((r) => r.distributions)
  for (const r of withData) {
    for (const [name, xs] of Object.entries(r.distributions!)) {
      // Several latency scenarios (exit, later OOM) share one chart: prefix their number.
      const peer = withData.length > 1 ? `${r.number}. ${name}` : name
      order.push(peer)
      for (const us of xs) values.push({ peer, us: Math.max(us, 1) })
    }
  }
  if (values.length === 0) return undefined
  const y = { field: 'peer', type: 'nominal', sort: order, title: null } as const
  const x = { field: 'us', type: 'quantitative', scale: { type: 'log' }, title: 'latency, µs (log scale)' } as const
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: `lifewatch: ${withData.map((r) => r.title).join(', ')}, per peer`, subtitle },
    data: { values },
    width: 640,
    height: { step: 34 },
    layer: [
      { mark: { type: 'tick', opacity: 0.25, thickness: 1 }, encoding: { x, y, color: { field: 'peer', type: 'nominal', sort: order, legend: null } } },
      {
        mark: { type: 'boxplot', extent: 'min-max', size: 14, opacity: 0.55, median: { color: 'black' } },
        encoding: { x, y, color: { field: 'peer', type: 'nominal', sort: order, legend: null } },
      },
    ],
    config: { font: 'sans-serif', axis: { labelLimit: 320 } },
  }
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' })
  return view.toSVG()
}
