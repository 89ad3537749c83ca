/** Placeholder: the editor belongs to the `web-schedule` branch, which replaces this file. */
export function EditorPage() {
  return (
    <main id="main" className="page">
      <h1>Submit a job</h1>
      <p>The editor is not built yet.</p>
    </main>
  );
}
