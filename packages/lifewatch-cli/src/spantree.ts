// The span tree the CLI prints after a shutdown: a TracerProvider wrapper that remembers each
// span lifewatch starts (name, ids, parent, times, status, attributes) and passes it on to the
// real provider (the OTLP SDK's, or a local one), then a tree renderer.
import {
  SpanStatusCode,
  trace,
  type AttributeValue,
  type Attributes,
  type Context,
  type Span,
  type SpanOptions,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api'

import type { Paint } from './color.js'

export interface RecordedSpan {
  name: string
  spanId: string
  parentSpanId?: string
  traceId: string
  start: number
  end?: number
  attributes: Attributes
  error?: string
  events: Array<{ name: string; attributes?: Attributes }>
}

export class RecordingTracerProvider implements TracerProvider {
  readonly spans: RecordedSpan[] = []
  constructor(private readonly inner: TracerProvider) {}

  getTracer(name: string, version?: string): Tracer {
    const tracer = this.inner.getTracer(name, version)
    const spans = this.spans
    const wrap = (span: Span, rec: RecordedSpan): Span => {
      const end = span.end.bind(span)
      const setAttribute = span.setAttribute.bind(span)
      const setStatus = span.setStatus.bind(span)
      const addEvent = span.addEvent.bind(span)
      return Object.assign(span, {
        setAttribute(k: string, v: AttributeValue) {
          rec.attributes[k] = v
          return setAttribute(k, v)
        },
        setStatus(s: { code: SpanStatusCode; message?: string }) {
          if (s.code === SpanStatusCode.ERROR) rec.error = s.message ?? 'error'
          return setStatus(s)
        },
        addEvent(n: string, a?: Attributes, t?: number) {
          rec.events.push({ name: n, attributes: a })
          return addEvent(n, a, t)
        },
        end(t?: number) {
          rec.end = performance.now()
          return end(t)
        },
      })
    }
    return {
      startSpan(n: string, options?: SpanOptions, ctx?: Context): Span {
        const span = tracer.startSpan(n, options, ctx)
        const parent = ctx ? trace.getSpanContext(ctx) : undefined
        const rec: RecordedSpan = {
          name: n,
          spanId: span.spanContext().spanId,
          parentSpanId: parent?.spanId,
          traceId: span.spanContext().traceId,
          start: performance.now(),
          attributes: { ...options?.attributes },
          events: [],
        }
        spans.push(rec)
        return wrap(span, rec)
      },
      startActiveSpan: tracer.startActiveSpan.bind(tracer),
    } as Tracer
  }
}

const SHOWN = [
  'process.pid',
  'process.exit.code',
  'lifewatch.exit.signal',
  'lifewatch.kill.signal',
  'lifewatch.kill.forced',
  'lifewatch.kill.skipped',
  'lifewatch.cgroup.path',
  'lifewatch.fd.released',
  'lifewatch.oom.kills',
]

function attrText(a: Attributes, parent?: Attributes): string {
  return SHOWN.filter((k) => a[k] !== undefined && (k !== 'process.pid' || !parent))
    .map((k) => `${k.replace(/^(process|lifewatch)\./, '')}=${Array.isArray(a[k]) ? (a[k] as unknown[]).join(',') : a[k]}`)
    .join(' ')
}

/** The trees of every recorded root, one line per span: name, duration, key attributes. */
export function renderTree(spans: RecordedSpan[], p: Paint): string[] {
  const { bold, dim, red } = p
  const ids = new Set(spans.map((s) => s.spanId))
  const children = new Map<string | undefined, RecordedSpan[]>()
  for (const s of spans) {
    const key = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : undefined
    children.set(key, [...(children.get(key) ?? []), s])
  }
  const out: string[] = []
  const walk = (s: RecordedSpan, prefix: string, last: boolean, root: boolean, parent?: Attributes) => {
    const branch = root ? '' : last ? '└─ ' : '├─ '
    const ms = s.end === undefined ? '…' : `${(s.end - s.start).toFixed(1)} ms`
    const label = `${prefix}${branch}${s.error ? red(s.name) : bold(s.name)}`
    const pad = Math.max(1, 52 - (prefix + branch + s.name).length)
    const status = s.error ? ` ${red(`ERROR: ${s.error}`)}` : ''
    out.push(`${label}${' '.repeat(pad)}${ms.padStart(10)}  ${dim(attrText(s.attributes, parent))}${status}`)
    for (const e of s.events) {
      const more = prefix + (root ? '' : last ? '   ' : '│  ')
      out.push(`${more}${dim('•')} ${e.name === 'exception' ? red(e.name) : e.name} ${dim(attrText(e.attributes ?? {}))}`)
    }
    const kids = children.get(s.spanId) ?? []
    kids.forEach((k, i) => walk(k, prefix + (root ? '' : last ? '   ' : '│  '), i === kids.length - 1, false, s.attributes))
  }
  for (const r of children.get(undefined) ?? []) walk(r, '  ', true, true)
  return out
}
