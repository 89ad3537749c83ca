/** Placeholder: the build page belongs to the `web-build` branch, which replaces this file. */
export function BuildPage({ id }: { id: string }) {
  return (
    <main id="main" className="page">
      <h1>Execution {id}</h1>
      <p>The build page is not built yet.</p>
    </main>
  );
}
