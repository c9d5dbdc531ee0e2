// The man page (roff), generated from the command definitions (program.ts): the same commands,
// options and texts as `--help`.
import type { Command, Option } from 'commander'

import { details, VERSION } from './program.js'

/** Text as roff: backslashes escaped, no line starting with a control character. */
const roff = (s: string) =>
  s
    .replace(/\\/g, '\\e')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n')
const flag = (s: string) => roff(s).replace(/-/g, '\\-')

function usage(c: Command): string {
  return `lifewatch ${c.name()} ${c.usage()}`
}

function optionEntry(o: Option): string {
  const def = o.defaultValueDescription ?? (o.defaultValue !== undefined && typeof o.defaultValue !== 'boolean' ? String(o.defaultValue) : undefined)
  return `.TP\n.B ${flag(o.flags)}\n${roff(o.description)}${def !== undefined ? ` (default: ${roff(def)})` : ''}`
}

/** Paragraphs of a details text; indented lines stay as they are. */
function paragraphs(text: string): string {
  return text
    .split(/\n\n+/)
    .map((para) => (/^\s/m.test(para) ? `.nf\n${roff(para)}\n.fi` : roff(para)))
    .join('\n.PP\n')
}

export function manPage(p: Command): string {
  const commands = p.commands.filter((c) => c.name() !== 'help')
  const out = [
    `.TH LIFEWATCH 1 "" "lifewatch-cli ${VERSION}" "User Commands"`,
    '.SH NAME',
    `lifewatch \\- ${roff(p.description())}`,
    '.SH SYNOPSIS',
    ...commands.map((c) => `.B lifewatch ${c.name()}\n${roff(c.usage())}\n.br`),
    '.B lifewatch \\-\\-version',
    '.SH COMMANDS',
  ]
  for (const c of commands) {
    out.push(`.SS "${flag(usage(c))}"`, roff(c.description()))
    const more = details.get(c)
    if (more) out.push('.PP', paragraphs(more))
    for (const o of c.options) out.push(optionEntry(o))
  }
  out.push('.SH SEE ALSO', 'timeout(1), systemd-run(1), systemd-cgtop(1), runc(8)')
  return `${out.join('\n')}\n`
}
