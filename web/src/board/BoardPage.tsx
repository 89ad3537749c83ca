/** The board (`/`): every job of the user, live. */
export function BoardPage() {
  return (
    <main id="main" className="page">
      <h1>Jobs</h1>
    </main>
  );
}
