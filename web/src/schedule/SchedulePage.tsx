/** Placeholder: the schedule page belongs to the `web-schedule` branch, which replaces this file. */
export function SchedulePage({ id }: { id: string }) {
  return (
    <main id="main" className="page">
      <h1>Job {id}</h1>
      <p>The schedule page is not built yet.</p>
    </main>
  );
}
