// The two moments a page must not hurry past: confirming a change that cannot be undone (a
// modal <dialog>, optionally asking to type the name of what goes), and a secret shown only
// once (a generated password), which stays on screen across refreshes and pages until the
// operator says it is copied, and is never stored.

import { $ } from "./dom.js";

// Resolves true when the operator confirms. `typed`: the text to type before the button works.
export function confirmAction({ title, text, action, typed = null }) {
  const dialog = $("confirm");
  const input = $("confirm-input");
  const ok = $("confirm-ok");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  ok.textContent = action;
  $("confirm-typed").hidden = typed === null;
  input.value = "";
  ok.disabled = typed !== null;
  if (typed !== null) $("confirm-label").textContent = `Type ${typed} to confirm`;
  return new Promise((resolve) => {
    const controller = new AbortController();
    const signal = controller.signal;
    const finish = (answer) => {
      controller.abort();
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    input.addEventListener("input", () => { ok.disabled = input.value.trim() !== typed; }, { signal });
    $("confirm-form").addEventListener("submit", (event) => {
      event.preventDefault();
      if (!ok.disabled) finish(true);
    }, { signal });
    $("confirm-cancel").addEventListener("click", () => finish(false), { signal });
    dialog.addEventListener("cancel", () => finish(false), { signal }); // Escape
    dialog.showModal();
    (typed === null ? $("confirm-cancel") : input).focus();
  });
}

// Shows a secret once, with what it is for.
export function showOnce(what, secret) {
  $("once-what").textContent = what;
  $("once-secret").textContent = secret;
  $("once-copied").textContent = "";
  $("once").hidden = false;
  $("once-done").focus();
}

export function forgetOnce() {
  $("once-secret").textContent = "";
  $("once").hidden = true;
}

$("once-done").addEventListener("click", forgetOnce);
$("once-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("once-secret").textContent);
    $("once-copied").textContent = "copied";
  } catch {
    // No clipboard (an insecure origin, a refusal): select it for the operator to copy.
    getSelection().selectAllChildren($("once-secret"));
    $("once-copied").textContent = "selected: copy it with the keyboard";
  }
});
