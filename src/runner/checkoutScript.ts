/**
 * The checkout as it runs inside the checkout container (docs/design.md#sandboxed-checkout): a
 * POSIX shell script for the git image, and how its exit status reads. The repository's address,
 * ref and limits arrive as environment variables, never spliced into the script's text.
 *
 * The commit's tree is measured before a single file is written: `git ls-tree -r -l` lists every
 * file with its size from the (shallow) object store, and awk stops the listing at the first
 * file past a limit, so a git bomb (a few KB of trees that expand to millions of files) costs the
 * container a bounded walk and the worker host nothing.
 */
export const CHECKOUT_SCRIPT = String.raw`
set -u
# The only global configuration: a local root's repositories belong to another uid than the
# steps'. (GIT_CONFIG_COUNT would not reach upload-pack: git clears it for local transports.)
printf '[safe]\n\tdirectory = *\n' >/tmp/kiln-gitconfig && export GIT_CONFIG_GLOBAL=/tmp/kiln-gitconfig || exit 20
if [ -n "$KILN_SSH_KEY" ]; then
  (umask 077 && printf '%s\n' "$KILN_SSH_KEY" >/tmp/kiln-ssh-key) || exit 20
fi
unset KILN_SSH_KEY
cd "$KILN_WORKDIR" 2>/dev/null && [ -w . ] || { echo "the workspace $KILN_WORKDIR is not writable by uid $(id -u)" >&2; exit 20; }
git init -q . || exit 20
if git fetch -q --depth=1 --no-tags -- "$KILN_URL" "$KILN_REF" 2>/tmp/kiln-fetch.err; then
  target=$(git rev-parse --verify -q FETCH_HEAD) || exit 11
else
  git fetch -q --no-tags -- "$KILN_URL" '+refs/heads/*:refs/remotes/origin/*' '+refs/tags/*:refs/tags/*' || exit 10
  target=$(git rev-parse --verify -q --end-of-options "$KILN_REF^{commit}" 2>/dev/null) \
    || target=$(git rev-parse --verify -q --end-of-options "origin/$KILN_REF^{commit}" 2>/dev/null) \
    || exit 11
fi
git ls-tree -r -l --full-tree "$target" | awk -v files="$KILN_MAX_FILES" -v bytes="$KILN_MAX_BYTES" '
  { n++; if ($4 != "-") total += $4 }
  n > files { exit 12 }
  total > bytes { exit 13 }'
status=$?
[ "$status" -eq 0 ] || exit "$status"
git -c advice.detachedHead=false checkout -q --detach "$target" || exit 14
echo "commit $(git rev-parse HEAD)"
`;

/** Exit statuses of CHECKOUT_SCRIPT. */
export const CHECKOUT_EXIT = {
  fetch: 10,
  noRef: 11,
  tooManyFiles: 12,
  tooManyBytes: 13,
  checkout: 14,
  workspace: 20,
} as const;

/** What the reasons need to know besides the exit status. */
export interface CheckoutReasonFacts {
  /** The URL as it may be shown (credentials redacted). */
  shown: string;
  ref: string;
  stderr: string;
  maxFiles: number;
  maxBytes: number;
  memoryBytes: number | null;
  oomKilled: boolean;
}

/** The checkout's error message for a script that exited with `code`; git's own words redacted by `clean`. */
export function checkoutFailure(code: number, facts: CheckoutReasonFacts, clean: (stderr: string) => string): string {
  const { shown, ref, maxFiles, maxBytes } = facts;
  if (facts.oomKilled) return `the checkout of ${shown} ran out of memory (the job's limit of ${mib(facts.memoryBytes ?? 0)})`;
  // SIGXFSZ: git wrote one file (the pack, or a file of the tree) past RLIMIT_FSIZE.
  if (/signal 25\b|File size limit exceeded/i.test(facts.stderr)) return `a file of ${shown} is larger than ${mib(maxBytes)} (KILN_CHECKOUT_MAX_BYTES)`;
  switch (code) {
    case CHECKOUT_EXIT.fetch:
      return `cannot fetch ${shown}: ${clean(facts.stderr)}`;
    case CHECKOUT_EXIT.noRef:
      return `${shown} has no branch, tag or commit "${ref}"`;
    case CHECKOUT_EXIT.tooManyFiles:
      return `the repository has more than ${maxFiles} files (KILN_CHECKOUT_MAX_FILES)`;
    case CHECKOUT_EXIT.tooManyBytes:
      return `the repository's files take more than ${mib(maxBytes)} (KILN_CHECKOUT_MAX_BYTES)`;
    case CHECKOUT_EXIT.checkout:
      return `cannot check out "${ref}" of ${shown}: ${clean(facts.stderr)}`;
    case CHECKOUT_EXIT.workspace:
      return `cannot prepare the workspace for ${shown}: ${clean(facts.stderr)}`;
    default:
      return `the checkout of ${shown} failed with exit code ${code}: ${clean(facts.stderr)}`;
  }
}

function mib(bytes: number): string {
  return bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0 ? `${bytes / 1024 ** 3} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`;
}
