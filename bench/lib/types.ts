// The shape every scenario returns. Scenarios run one per fresh Node process (bench/scenario.ts)
// and hand this back as JSON; the runner turns it into the table, the JSON file and the chart.

export interface ScenarioConfig {
  quick: boolean
  /** Profiling only: run just these peers (by name) for `rounds` rounds. */
  peers?: string[]
  rounds?: number
}

export type Cell = string | number | null

export interface Table {
  title: string
  columns: string[]
  rows: Cell[][]
}

/** One of the bench's goals (a scenario states it), checked against figures measured in this run. */
export interface Goal {
  goal: string
  /** The measured comparison, in words and numbers. */
  measured: string
  met: boolean | null
}

export interface ScenarioOutput {
  tables: Table[]
  goals: Goal[]
  notes: string[]
  /** Latency samples (µs) per peer, for the chart; scenarios without distributions omit it. */
  distributions?: Record<string, number[]>
  /** Raw figures for the JSON file. */
  data: Record<string, unknown>
}

export interface ScenarioResult extends Partial<ScenarioOutput> {
  id: string
  number: number
  title: string
  status: 'ok' | 'pending' | 'failed'
  /** Why a scenario is pending or failed. */
  reason?: string
  seconds?: number
}

export interface Scenario {
  id: string
  /** The scenario's number: its place in the report. */
  number: number
  title: string
  /** Set while the feature it measures does not exist yet: the runner reports it, never fakes it. */
  pending?: string
  /** Bound on one run of the scenario, in seconds, full and quick. */
  timeout: { full: number; quick: number }
  run?: (cfg: ScenarioConfig) => Promise<ScenarioOutput>
}
