// The console's one script: refresh each view, sort tables, replay dead letters.
"use strict";

const views = [...document.querySelectorAll("[data-view]")];
const sorted = {};  // "view/table index" -> [column, ascending], kept across refreshes

function token() {
  let value = document.querySelector("meta[name=vvv-token]").content || sessionStorage.getItem("vvv-token");
  if (!value) {  // bound beyond localhost: the operator gives it, once per tab
    value = prompt("Replay token (printed by `vvv console` at start, or VVV_CONSOLE_TOKEN):") || "";
    sessionStorage.setItem("vvv-token", value);
  }
  return value;
}

function address(view) {
  if (view.dataset.view !== "dead-letters") return `/views/${view.dataset.view}`;
  const group = document.getElementById("dlq-group").value;
  const query = document.getElementById("dlq-query").value;
  return `/views/dead-letters?group=${encodeURIComponent(group)}&q=${encodeURIComponent(query)}`;
}

async function refresh(view) {
  try {
    const answer = await fetch(address(view), {cache: "no-store"});
    view.innerHTML = await answer.text();
    view.querySelectorAll("table").forEach((table, i) => {
      const order = sorted[`${view.dataset.view}/${i}`];
      if (order) sortTable(table, ...order);
    });
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("updated").textContent = `console unreachable: ${error}`;
  }
}

function sortTable(table, column, ascending) {
  const header = table.rows[0].cells[column];
  const numeric = header.dataset.sort === "n";
  const rows = [...table.rows].slice(1);
  const key = (row) => numeric ? parseFloat(row.cells[column].textContent.replace(/,/g, "")) || 0
                               : row.cells[column].textContent.toLowerCase();
  rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (ascending ? 1 : -1));
  rows.forEach((row) => table.tBodies[0].appendChild(row));
}

document.addEventListener("click", async (event) => {
  const header = event.target.closest("th[data-sort]");
  if (header) {
    const table = header.closest("table");
    const view = header.closest("[data-view]");
    const id = `${view.dataset.view}/${[...view.querySelectorAll("table")].indexOf(table)}`;
    const column = header.cellIndex;
    const ascending = sorted[id] && sorted[id][0] === column ? !sorted[id][1] : false;
    sorted[id] = [column, ascending];
    sortTable(table, column, ascending);
    return;
  }
  const one = event.target.closest("button.replay");
  if (one) await replay({partition: Number(one.dataset.partition), offset: Number(one.dataset.offset)});
  if (event.target.id === "replay-matching") await replay({q: document.getElementById("dlq-query").value});
});

async function replay(which) {
  const group = document.getElementById("dlq-group").value;
  const answer = await fetch("/replay", {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-VVV-Token": token()},
    body: JSON.stringify({group, ...which}),
  });
  const body = await answer.json();
  document.getElementById("message").textContent =
    answer.ok ? `replayed ${body.replayed} dead letter(s) of ${group}` : `refused: ${body.error}`;
  if (answer.status === 403) sessionStorage.removeItem("vvv-token");
  refresh(views.find((v) => v.dataset.view === "dead-letters"));
}

document.getElementById("dlq-group").addEventListener("change", () => refresh(views.find((v) => v.dataset.view === "dead-letters")));
document.getElementById("dlq-query").addEventListener("input", () => refresh(views.find((v) => v.dataset.view === "dead-letters")));
for (const view of views) {
  refresh(view);
  setInterval(() => refresh(view), Number(view.dataset.every) * 1000);
}
