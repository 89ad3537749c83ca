import AxeBuilder from '@axe-core/playwright';
import type { Page } from 'playwright-core';

/**
 * The serious and critical axe-core violations of a page as it is now, one readable line each
 * (issue 12, item 7: none are allowed).
 */
export async function seriousViolations(page: Page): Promise<string[]> {
  // @axe-core/playwright types its page as playwright's; playwright-core's is the same class.
  const { violations } = await new AxeBuilder({ page } as never).analyze();
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}
