// The Queue page: outbound mail waiting for other servers. The queue's size, held messages
// and oldest entry on cards; the backlog per destination domain with the last answer from
// there (and a button to retry that domain now); every message with its recipients' states,
// and its actions: retry now, hold or release, remove (confirmed first: the sender is not
// told). Everything through the admin API's /api/v1/queue.

import { api, change, part } from "./api.js";
import { confirmAction } from "./dialogs.js";
import { $, bytes, duration, el, fillTable, when } from "./dom.js";

const STATES = { new: "new", deferred: "deferred", held: "HELD" };

function renderSummary(s) {
  $("queue-messages").textContent = s.messages;
  $("queue-held").textContent = s.held;
  $("queue-size").textContent = bytes(s.size);
  $("queue-oldest").textContent = s.oldest_age_seconds === null ? "–" : duration(s.oldest_age_seconds * 1000);
  $("queue-oldest-detail").textContent = s.oldest_queued_at === null ? "" : `queued ${when(s.oldest_queued_at * 1000)}`;
  fillTable("queue-domains", s.domains.map((d) => el("tr", { "data-backlog": d.domain },
    el("td", {}, d.domain), el("td", { class: "number" }, d.messages), el("td", { class: "number" }, d.recipients),
    el("td", { class: "reply" }, d.last_error ?? "–"),
    el("td", {}, el("button", { class: "quiet", type: "button", "data-retry-domain": d.domain,
      onclick: () => act("POST", `/api/v1/queue/retry?domain=${part(d.domain)}`) }, "Retry now")),
  )), 5, "Nothing is waiting for another server.");
}

function recipients(m) {
  return el("ul", { class: "recipients" }, ...m.recipients.map((r) => el("li", { "data-state": r.state },
    `${r.address} (${r.state})`, r.last_reply ? el("span", { class: "reply" }, ` ${r.last_reply}`) : "")));
}

function actions(m) {
  const id = m.id;
  return el("span", { class: "buttons" },
    el("button", { class: "quiet", type: "button", "data-retry": id, disabled: m.held,
      title: m.held ? "Release it first" : "", onclick: () => act("POST", `/api/v1/queue/${id}/retry`) }, "Retry"),
    m.held
      ? el("button", { class: "quiet", type: "button", "data-release": id,
        onclick: () => act("POST", `/api/v1/queue/${id}/release`) }, "Release")
      : el("button", { class: "quiet", type: "button", "data-hold": id,
        onclick: () => act("POST", `/api/v1/queue/${id}/hold`) }, "Hold"),
    el("button", { class: "danger", type: "button", "data-remove-queued": id, onclick: () => remove(m) }, "Remove"));
}

// The list is paged by the API (100 a page by default): the first page is shown, and a note
// says when there is more than it.
function renderMessages(page) {
  const list = page.messages;
  fillTable("queue-list", list.map((m) => el("tr", { "data-queued": m.id, "data-state": m.state },
    el("td", {}, m.id), el("td", {}, m.sender || "<>"), el("td", {}, recipients(m)),
    el("td", { class: "number" }, bytes(m.size)), el("td", { class: "number" }, m.attempts),
    el("td", {}, m.next_attempt === null ? "when released" : when(m.next_attempt * 1000)),
    el("td", { class: m.held ? "held" : "" }, STATES[m.state] ?? m.state), el("td", {}, actions(m)),
  )), 8, "The queue is empty.");
  $("queue-more").hidden = page.next_after === undefined;
  $("queue-more").textContent = page.next_after === undefined ? ""
    : `Only the first ${list.length} messages are shown; the rest are listed by the CLI (portcullis queue list) or the API (GET /api/v1/queue?after=${page.next_after}).`;
}

async function remove(m) {
  const sure = await confirmAction({
    title: `Remove queued message ${m.id}?`,
    text: `The message from ${m.sender || "<>"} will not be delivered to its ${m.recipients.filter((r) => r.state === "pending").length} pending recipient(s), and its sender is not told.`,
    action: "Remove message",
  });
  if (sure) await act("DELETE", `/api/v1/queue/${m.id}`);
}

const act = (method, path) => change($("queue-error"), method, path);

export async function load() {
  const [summary, list] = await Promise.all([api("GET", "/api/v1/queue/summary"), api("GET", "/api/v1/queue")]);
  renderSummary(summary);
  renderMessages(list);
}

$("queue-retry-all").addEventListener("click", () => act("POST", "/api/v1/queue/retry"));
