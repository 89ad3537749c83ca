import { ValidateJobSpecDocument, type ValidateJobSpecQuery } from '@kiln/sdk';
import { useEffect, useRef, useState } from 'react';
import { errorText, kiln } from '../api';

export type EditorDiagnostic = ValidateJobSpecQuery['validateJobSpec']['diagnostics'][number];

/** Typing pauses this long before the text is checked. */
export const VALIDATE_DEBOUNCE_MS = 300;

export interface Validation {
  /** The diagnostics of `checkedText` (errors and warnings). */
  diagnostics: EditorDiagnostic[];
  /** The text the diagnostics belong to; differs from the editor's while a check is pending. */
  checkedText: string | null;
  pending: boolean;
  error: string | undefined;
}

/**
 * Checks `text` with `validateJobSpec` once typing has paused. Each answer is kept only if it is
 * for the newest text asked about: a slow answer for older text is dropped, never shown over a
 * newer one.
 */
export function useValidation(text: string): Validation {
  const [state, setState] = useState<Validation>({ diagnostics: [], checkedText: null, pending: false, error: undefined });
  const latest = useRef(0);
  useEffect(() => {
    const mine = ++latest.current;
    if (text.trim() === '') {
      setState({ diagnostics: [], checkedText: text, pending: false, error: undefined });
      return;
    }
    setState((s) => ({ ...s, pending: true }));
    const timer = setTimeout(async () => {
      try {
        const { validateJobSpec } = await kiln.request(ValidateJobSpecDocument, { spec: text });
        if (mine === latest.current) setState({ diagnostics: validateJobSpec.diagnostics, checkedText: text, pending: false, error: undefined });
      } catch (err) {
        if (mine === latest.current) setState((s) => ({ ...s, pending: false, error: errorText(err) }));
      }
    }, VALIDATE_DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [text]);
  return state;
}
