#!/usr/bin/env node
// Self-test of the Jaeger kit: start Jaeger, send a parent+child trace over
// OTLP/HTTP JSON (hand-built payload, no npm deps), read it back through the
// query API, check names and the parent link, and check Jaeger listens on
// loopback only. Exit 0 = pass, 1 = fail, 3 = skipped (Jaeger unavailable).
import { randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync, readFileSync } from 'node:fs';
import { startJaeger, getTraces } from './start.mjs';

const hex = (n) => {
  const b = randomBytes(n);
  b[0] |= 0x10; // non-zero leading nibble: Jaeger prints IDs without leading zeros
  return b.toString('hex');
};

function otlpPayload({ service, traceId, parentId, childId }) {
  const now = BigInt(Date.now()) * 1_000_000n;
  const ns = (ms) => String(now + BigInt(ms) * 1_000_000n); // uint64 as string per OTLP JSON
  const span = (spanId, parentSpanId, name, start, end) => ({
    traceId, spanId, parentSpanId, name,
    kind: 1, // SPAN_KIND_INTERNAL
    startTimeUnixNano: ns(start), endTimeUnixNano: ns(end),
    attributes: [{ key: 'lifewatch.selftest', value: { boolValue: true } }],
    status: {},
  });
  return {
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
      scopeSpans: [{
        scope: { name: 'lifewatch-jaeger-selftest' },
        spans: [
          span(parentId, '', 'selftest-parent', -20, 0),
          span(childId, parentId, 'selftest-child', -15, -5),
        ],
      }],
    }],
  };
}

// Every TCP listener / bound UDP socket of `pid` must be on 127.0.0.0/8 or ::1.
// Reads /proc directly so the check needs no ss/netstat.
function nonLoopbackListeners(pid) {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch { /* fd closed meanwhile */ }
  }
  const loopback = (a) =>
    a.length === 8 ? a.slice(6) === '7F' // IPv4, little-endian hex
      : a === '00000000000000000000000001000000' || // ::1
        (a.startsWith('0000000000000000FFFF0000') && a.slice(30) === '7F'); // ::ffff:127.x
  const bad = [];
  let seen = 0;
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6']) {
    const lines = readFileSync(`/proc/net/${proto}`, 'utf8').trim().split('\n').slice(1);
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      const [addr, port] = f[1].split(':');
      const listening = proto.startsWith('udp') || f[3] === '0A';
      if (!listening || !inodes.has(f[9])) continue;
      seen++;
      if (!loopback(addr)) bad.push(`${proto} ${addr}:${parseInt(port, 16)}`);
    }
  }
  return { seen, bad };
}

function check(cond, msg) {
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${msg}`);
  if (!cond) process.exitCode = 1;
  return cond;
}

const t0 = Date.now();
let jaeger;
try {
  jaeger = await startJaeger();
} catch (e) {
  if (e.code === 'JAEGER_UNAVAILABLE') {
    console.log(`SKIP jaeger unavailable: ${e.message}`);
    process.exit(3);
  }
  throw e;
}
console.log(`jaeger up in ${Date.now() - t0} ms: otlp=${jaeger.otlpHttpUrl} query=${jaeger.queryUrl} pid=${jaeger.pid}`);

try {
  const { seen, bad } = nonLoopbackListeners(jaeger.pid);
  check(seen >= 3 && bad.length === 0, `${seen} listening sockets, all loopback${bad.length ? `; non-loopback: ${bad.join(', ')}` : ''}`);

  const ids = { service: `lifewatch-selftest-${hex(4)}`, traceId: hex(16), parentId: hex(8), childId: hex(8) };
  const res = await fetch(`${jaeger.otlpHttpUrl}/v1/traces`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(otlpPayload(ids)),
  });
  const body = await res.text();
  check(res.status === 200, `OTLP POST /v1/traces -> ${res.status} ${body.slice(0, 200)}`);

  const data = await getTraces(jaeger.queryUrl, ids.service, { minSpans: 2 });
  const trace = data.find((t) => t.traceID === ids.traceId);
  if (check(!!trace, `trace ${ids.traceId} found for service ${ids.service} (${data.length} trace(s))`)) {
    const byName = Object.fromEntries(trace.spans.map((s) => [s.operationName, s]));
    const parent = byName['selftest-parent'];
    const child = byName['selftest-child'];
    check(!!parent && parent.spanID === ids.parentId, 'span "selftest-parent" present with expected spanID');
    check(!!child && child.spanID === ids.childId, 'span "selftest-child" present with expected spanID');
    const ref = child?.references?.find((r) => r.refType === 'CHILD_OF');
    check(ref?.spanID === ids.parentId && ref?.traceID === ids.traceId, 'child has CHILD_OF reference to parent');
    check((parent?.references ?? []).length === 0, 'parent has no references (root span)');
    const proc = trace.processes?.[child?.processID];
    check(proc?.serviceName === ids.service, `process serviceName = ${proc?.serviceName}`);
  }
} finally {
  await jaeger.stop();
}
let gone = false;
try { process.kill(jaeger.pid, 0); } catch { gone = true; }
check(gone, 'jaeger process stopped');
console.log(process.exitCode ? 'SELFTEST FAILED' : 'SELFTEST PASSED');
