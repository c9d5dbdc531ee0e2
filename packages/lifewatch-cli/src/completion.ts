// Shell completion scripts, generated from the command definitions (program.ts): commands,
// each command's options, and the values of those that take a known set (signals, shells,
// files).
import type { Command, Option } from 'commander'

import { completions } from './program.js'
import { SIGNALS } from './units.js'
import { UsageError } from './usage.js'

const SHELLS = ['bash', 'zsh', 'fish']

interface Flag {
  long: string
  short?: string
  takesValue: boolean
  values?: string[] | 'file'
  description: string
}

function flags(c: Command): Flag[] {
  return c.options.map((o: Option) => {
    const values = completions.get(o)
    return {
      long: o.long!,
      ...(o.short ? { short: o.short } : {}),
      takesValue: o.required || o.optional,
      ...(values ? { values: values === 'signals' ? SIGNALS.map((s) => s.replace(/^SIG/, '')) : values } : {}),
      description: o.description,
    }
  })
}

const commandsOf = (p: Command) => p.commands.filter((c) => c.name() !== 'help')

function bash(p: Command): string {
  const cases = commandsOf(p).map((c) => {
    const fl = flags(c)
    const valueCases = fl
      .filter((f) => f.takesValue)
      .map((f) => {
        const v = f.values
        const action = v === 'file' ? 'COMPREPLY=($(compgen -f -- "$cur"))' : v ? `COMPREPLY=($(compgen -W "${v.join(' ')}" -- "$cur"))` : 'COMPREPLY=()'
        return `        ${f.long}) ${action}; return ;;`
      })
    const operands = c.name() === 'completion' ? `COMPREPLY=($(compgen -W "${SHELLS.join(' ')}" -- "$cur"))` : c.name() === 'run' ? 'COMPREPLY=($(compgen -c -- "$cur"))' : 'COMPREPLY=()'
    return `    ${c.name()})
      case "$prev" in
${valueCases.join('\n')}
      esac
      if [[ $dashdash == 1 ]]; then ${c.name() === 'run' ? 'COMPREPLY=($(compgen -c -- "$cur")); return' : 'return'}; fi
      if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "${[...fl.map((f) => f.long), '--help'].join(' ')}" -- "$cur")); return; fi
      ${operands} ;;`
  })
  return `# lifewatch completion for bash: source <(lifewatch completion bash)
_lifewatch() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" i sub="" dashdash=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    if [[ -z $sub && \${COMP_WORDS[i]} != -* ]]; then sub=\${COMP_WORDS[i]}; elif [[ \${COMP_WORDS[i]} == -- ]]; then dashdash=1; fi
  done
  if [[ -z $sub ]]; then
    COMPREPLY=($(compgen -W "${commandsOf(p).map((c) => c.name()).join(' ')} --help --version" -- "$cur"))
    return
  fi
  case "$sub" in
${cases.join('\n')}
  esac
}
complete -F _lifewatch lifewatch
`
}

/** Text inside a zsh _arguments spec, which is single-quoted: no ' [ ] : unescaped. */
const zq = (s: string) => s.replace(/'/g, "'\\''").replace(/([[\]:\\])/g, '\\$1')

function zsh(p: Command): string {
  const commands = commandsOf(p).map((c) => `    '${zq(c.name())}:${zq(c.description())}'`)
  const cases = commandsOf(p).map((c) => {
    const specs = flags(c).map((f) => {
      const v = f.values
      const value = !f.takesValue ? '' : v === 'file' ? ':file:_files' : v ? `:value:(${v.join(' ')})` : ':value: '
      return `'${f.long}[${zq(f.description)}]${value}'`
    })
    const operands = c.name() === 'run' ? `'*::command:_normal'` : c.name() === 'completion' ? `':shell:(${SHELLS.join(' ')})'` : ''
    return `    ${c.name()}) _arguments ${[...specs, `'--help[this text]'`, operands].filter(Boolean).join(' \\\n      ')} ;;`
  })
  return `#compdef lifewatch
# lifewatch completion for zsh: lifewatch completion zsh > "\${fpath[1]}/_lifewatch"
_lifewatch() {
  local -a commands
  commands=(
${commands.join('\n')}
  )
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    return
  fi
  local sub=\${words[2]}
  shift words
  (( CURRENT-- ))
  case $sub in
${cases.join('\n')}
  esac
}
_lifewatch "$@"
`
}

/** A fish single-quoted string. */
const fq = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`

function fish(p: Command): string {
  const lines = ['# lifewatch completion for fish: lifewatch completion fish > ~/.config/fish/completions/lifewatch.fish', 'complete -c lifewatch -f']
  for (const c of commandsOf(p)) lines.push(`complete -c lifewatch -n __fish_use_subcommand -a ${c.name()} -d ${fq(c.description())}`)
  for (const c of commandsOf(p)) {
    const when = `-n ${fq(`__fish_seen_subcommand_from ${c.name()}`)}`
    for (const f of flags(c)) {
      const v = f.values
      const value = !f.takesValue ? '' : v === 'file' ? ' -r -F' : v ? ` -x -a ${fq(v.join(' '))}` : ' -x'
      lines.push(`complete -c lifewatch ${when} -l ${f.long.replace(/^--/, '')}${value} -d ${fq(f.description)}`)
    }
    if (c.name() === 'completion') lines.push(`complete -c lifewatch ${when} -a ${fq(SHELLS.join(' '))}`)
    if (c.name() === 'run') lines.push(`complete -c lifewatch ${when} -a '(__fish_complete_subcommand --fcs-skip=2)'`)
  }
  return `${lines.join('\n')}\n`
}

export function completion(p: Command, shell: string): number {
  const gen = { bash, zsh, fish }[shell as 'bash']
  if (!gen || !SHELLS.includes(shell)) throw new UsageError(`completion: not a shell lifewatch completes for (bash, zsh or fish): ${JSON.stringify(shell)}`)
  process.stdout.write(gen(p))
  return 0
}
