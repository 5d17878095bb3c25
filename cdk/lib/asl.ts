/**
 * Reading statemachine/autoheal.asl.json: which `${Name}` placeholders it uses and how long each
 * task may run. The definition is the one file shared with the local runner and the tests
 * (DESIGN.md §2), so the CDK app reads it rather than restating it.
 */
import { readFileSync } from 'fs';

/** `${Name}` as Step Functions definitionSubstitutions understands it. */
const PLACEHOLDER = /\$\{([A-Za-z0-9_]+)\}/g;

/** Every distinct placeholder name in a definition, sorted. */
export function placeholdersIn(definition: string): string[] {
  const names = new Set<string>();
  for (const m of definition.matchAll(PLACEHOLDER)) {
    names.add(m[1]);
  }
  return [...names].sort();
}

export function readDefinition(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`autoheal: cannot read the state machine definition ${file}: ${(e as Error).message}`);
  }
  try {
    JSON.parse(text);
  } catch (e) {
    throw new Error(`autoheal: ${file} is not valid JSON: ${(e as Error).message}`);
  }
  return text;
}

interface AslState {
  Type?: string;
  Resource?: string;
  TimeoutSeconds?: number;
  Parameters?: Record<string, unknown>;
  ItemProcessor?: { States?: Record<string, AslState> };
  Iterator?: { States?: Record<string, AslState> };
  Branches?: Array<{ States?: Record<string, AslState> }>;
}

/**
 * For each placeholder used as a Task's `Resource` (a synchronous invocation), the longest
 * `TimeoutSeconds` among those states. Callback states (`.waitForTaskToken`, where the placeholder
 * is only a `FunctionName`) are left out: there the function returns at once and the state waits
 * for a person, so its timeout says nothing about how long the function runs.
 */
export function taskTimeouts(definition: string): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (states: Record<string, AslState> | undefined): void => {
    for (const state of Object.values(states ?? {})) {
      if (state.Type === 'Task' && typeof state.Resource === 'string') {
        const m = /^\$\{([A-Za-z0-9_]+)\}$/.exec(state.Resource);
        if (m && typeof state.TimeoutSeconds === 'number') {
          out.set(m[1], Math.max(out.get(m[1]) ?? 0, state.TimeoutSeconds));
        }
      }
      walk(state.ItemProcessor?.States);
      walk(state.Iterator?.States);
      for (const b of state.Branches ?? []) walk(b.States);
    }
  };
  walk((JSON.parse(definition) as { States?: Record<string, AslState> }).States);
  return out;
}
