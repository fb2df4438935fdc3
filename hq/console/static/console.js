// Raqib HQ console: live tables (polling for server-rendered rows) and confirmations.
// No inline scripts anywhere: the Content Security Policy allows only this file.
"use strict";

function liveTable(body, pollMs) {
  const mode = body.dataset.mode || "replace";
  async function tick() {
    try {
      let url = body.dataset.live;
      if (mode === "prepend") {
        url += "?after=" + encodeURIComponent(body.dataset.after || "0");
      }
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        window.location.assign("/login");
        return;
      }
      if (response.ok) {
        const template = document.createElement("template");
        template.innerHTML = "<table><tbody>" + (await response.text()) + "</tbody></table>";
        const rows = Array.from(template.content.querySelectorAll("tbody > tr"));
        if (mode === "prepend") {
          addNewest(body, rows);
        } else {
          body.replaceChildren(...rows);
        }
        body.dataset.updated = String(Date.now());
      }
    } catch (error) {
      body.dataset.error = String(error);
    }
    window.setTimeout(tick, pollMs);
  }
  window.setTimeout(tick, pollMs);
}

function addNewest(body, rows) {
  const fresh = rows.filter((row) => row.dataset.id);
  if (fresh.length === 0) {
    return;
  }
  body.querySelectorAll("tr.empty").forEach((row) => row.remove());
  for (const row of fresh.reverse()) {
    row.classList.add("new");
    body.prepend(row);
  }
  const ids = fresh.map((row) => Number(row.dataset.id));
  body.dataset.after = String(Math.max(Number(body.dataset.after || "0"), ...ids));
}

function confirmations() {
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !form.dataset.confirmed) {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const pollMs = Number(document.body.dataset.pollMs || "2000");
  document.querySelectorAll("[data-live]").forEach((body) => liveTable(body, pollMs));
  confirmations();
});
