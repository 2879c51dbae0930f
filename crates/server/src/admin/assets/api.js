// The admin API as the dashboard's pages call it: the bearer token the operator signed in with
// (kept in sessionStorage: it goes with the tab), JSON bodies, errors as exceptions that carry
// the API's own sentence. A refused token is its own exception, so that every page signs out
// the same way.

const TOKEN_KEY = "portcullis.admin.token";

export class Unauthorized extends Error {}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Authorization": `Bearer ${token.get()}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    cache: "no-store",
  });
  if (response.status === 401) throw new Unauthorized();
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error((data && data.error) || `HTTP ${response.status}`);
  return data;
}

// The dashboard's exchanges with the server, one at a time: a change never overlaps a reading
// of the page shown, so no page is read half-way through a change (an account's page read
// while the account is being removed would only find it gone).
let last = Promise.resolve();
export function oneAtATime(task) {
  const run = last.then(task);
  last = run.catch(() => {});
  return run;
}

// A path segment (an address, a domain, an app password's name) as the URL carries it.
export const part = (text) => encodeURIComponent(text);

// What the pages do after a change: tell the shell (app.js), which signs out on a refused
// token and reloads the page shown otherwise.
export const announce = {
  unauthorized: () => document.dispatchEvent(new CustomEvent("portcullis:unauthorized")),
  changed: () => document.dispatchEvent(new CustomEvent("portcullis:changed")),
};

// Runs one change through the API: the result, or null after showing the error in `problem`
// (an element with role="alert"; a refused token signs out instead). Either way the page
// shown is read again, so that it shows what the server now holds.
export async function change(problem, method, path, body) {
  try {
    const result = await oneAtATime(() => api(method, path, body));
    if (problem) problem.textContent = "";
    return result ?? {};
  } catch (e) {
    if (e instanceof Unauthorized) {
      announce.unauthorized();
      return null;
    }
    if (problem) problem.textContent = e.message;
    else alert(e.message);
    return null;
  } finally {
    announce.changed();
  }
}
