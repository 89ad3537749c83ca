import { useEffect } from 'react';

/** The favicon's colour per status; the title carries the word, so colour is never alone. */
const COLOURS: Record<string, string> = {
  SUCCEEDED: '#1a7f37',
  FAILED: '#b3261e',
  RUNNING: '#0b5cad',
  QUEUED: '#7a5b00',
  CANCELLED: '#555c68',
  TIMED_OUT: '#8a3b00',
};

const WORDS: Record<string, string> = {
  SUCCEEDED: '✓ succeeded',
  FAILED: '✕ failed',
  RUNNING: '▶ running',
  QUEUED: '… queued',
  CANCELLED: '⊘ cancelled',
  TIMED_OUT: '⏱ timed out',
};

function iconHref(status: string): string {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="${COLOURS[status] ?? '#555c68'}"/></svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

/**
 * While mounted, the tab shows the execution's status: a title starting with it and a favicon
 * of its colour (a data: URL: nothing is fetched). Both are put back on unmount.
 */
export function useStatusInTab(status: string | undefined, subject: string): void {
  useEffect(() => {
    if (status === undefined) return;
    const link = document.querySelector<HTMLLinkElement>('link[rel="icon"]') ?? document.head.appendChild(Object.assign(document.createElement('link'), { rel: 'icon' }));
    const before = { title: document.title, href: link.getAttribute('href'), type: link.getAttribute('type') };
    document.title = `${WORDS[status] ?? status} · ${subject} · Kiln`;
    link.setAttribute('type', 'image/svg+xml');
    link.setAttribute('href', iconHref(status));
    return () => {
      document.title = before.title;
      if (before.href === null) link.removeAttribute('href');
      else link.setAttribute('href', before.href);
      if (before.type !== null) link.setAttribute('type', before.type);
    };
  }, [status, subject]);
}
