import test from 'ava'
import fc from 'fast-check'

import { Fifo } from '../src/fifo.js'

test('Fifo: any sequence of pushes and shifts gives what an array gives, in order', (t) => {
  // Runs of pushes long enough to cross the compaction point (1,024 taken) many times.
  const op = fc.oneof(fc.record({ push: fc.integer({ min: 1, max: 3000 }) }), fc.record({ shift: fc.integer({ min: 1, max: 3000 }) }), fc.constant('clear' as const))
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const q = new Fifo<number>()
      let model: number[] = []
      let next = 0
      for (const o of ops) {
        if (o === 'clear') {
          q.clear()
          model = []
        } else if ('push' in o) {
          for (let i = 0; i < o.push; i++) {
            q.push(next)
            model.push(next++)
          }
        } else {
          for (let i = 0; i < o.shift; i++) if (q.shift() !== model.shift()) return false
        }
        if (q.length !== model.length) return false
      }
      return true
    }),
    { numRuns: 200 },
  )
  t.pass()
})

test('Fifo: a million items come out in order, through many compactions', (t) => {
  const q = new Fifo<{ i: number }>()
  for (let i = 0; i < 1_000_000; i++) q.push({ i })
  let expected = 0
  for (let x = q.shift(); x; x = q.shift()) if (x.i !== expected++) return t.fail(`item ${expected - 1} out of order`)
  t.is(expected, 1_000_000)
  t.is(q.length, 0)
  t.is(q.shift(), undefined)
})
