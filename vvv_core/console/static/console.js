// The console's one script: refresh each view when its answer is due, ask the server for a listing's order
// and page, replay dead letters.
"use strict";

const views = Object.fromEntries([...document.querySelectorAll("[data-view]")].map((v) => [v.dataset.view, v]));
const listings = {};  // region -> "column.direction.page", for the regions not shown best first
const timers = {};  // view -> its next refresh
const asked = {};  // view -> how many times it was asked: an answer to an older question is dropped
const given = document.querySelector("meta[name=vvv-token]").content;  // on loopback: handed by the console
let declined = false;  // the operator cancelled the token prompt: not asked again until the page reloads

function token() {
  return given || sessionStorage.getItem("vvv-token") || "";
}

function askToken(why) {  // bound beyond loopback: the operator gives it, once per tab
  const value = prompt(`${why}\nThe console's token (printed by \`vvv console\` at start, or VVV_CONSOLE_TOKEN):`);
  if (value === null) declined = true;
  else sessionStorage.setItem("vvv-token", value);
}

function address(name) {
  const query = new URLSearchParams();
  if (name === "dead-letters") {
    query.set("group", document.getElementById("dlq-group").value);
    query.set("q", document.getElementById("dlq-query").value);
  }
  if (name === "results") for (const [region, order] of Object.entries(listings)) query.set(region, order);
  const text = query.toString();
  return `/views/${name}${text ? `?${text}` : ""}`;
}

// Each answer says how long it stays the server's answer (X-VVV-Fresh-For, ms): the next question comes just
// after, so every open tab sees each new answer once, and the server makes it once for all of them.
async function refresh(name) {
  const view = views[name];
  clearTimeout(timers[name]);
  const mine = (asked[name] = (asked[name] || 0) + 1);
  let wait = Number(view.dataset.every) * 1000;
  try {
    const sent = token();
    const answer = await fetch(address(name), {cache: "no-store", headers: {"X-VVV-Token": sent}});
    const text = await answer.text();
    if (mine !== asked[name]) return;  // asked again meanwhile (a click): that answer is the one to show
    view.innerHTML = text;
    if (answer.status === 401) {  // bound beyond loopback: the views need the token
      if (!declined && token() === sent) askToken("This console's views need its token.");
      wait = declined ? wait : 0;
    } else if (answer.headers.has("X-VVV-Fresh-For")) {
      wait = Number(answer.headers.get("X-VVV-Fresh-For")) + 50;
    }
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("updated").textContent = `console unreachable: ${error}`;
  }
  if (mine === asked[name]) timers[name] = setTimeout(() => refresh(name), Math.max(wait, 100));
}

function listing(region) {  // [column, direction, page] of a region's listing as shown
  return (listings[region] || "score.desc.1").split(".");
}

document.addEventListener("click", async (event) => {
  const header = event.target.closest("th[data-sort]");
  if (header) {  // the database sorts the whole listing: a new column starts descending, the same one turns
    const region = header.closest("table").dataset.region;
    const [column, direction] = listing(region);
    const descending = header.dataset.sort === column ? direction !== "desc" : true;
    listings[region] = `${header.dataset.sort}.${descending ? "desc" : "asc"}.1`;
    refresh("results");
    return;
  }
  const page = event.target.closest("button.page");
  if (page) {
    const [column, direction] = listing(page.closest("[data-region]").dataset.region);
    listings[page.closest("[data-region]").dataset.region] = `${column}.${direction}.${page.dataset.page}`;
    refresh("results");
    return;
  }
  const one = event.target.closest("button.replay");
  if (one) await replay({partition: Number(one.dataset.partition), offset: Number(one.dataset.offset)});
  if (event.target.id === "replay-matching") await replay({q: document.getElementById("dlq-query").value});
});

async function replay(which) {
  const group = document.getElementById("dlq-group").value;
  if (!token()) askToken("A replay needs the console's token.");
  const answer = await fetch("/replay", {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-VVV-Token": token()},
    body: JSON.stringify({group, ...which}),
  });
  const body = await answer.json();
  document.getElementById("message").textContent =
    answer.ok ? `replayed ${body.replayed} dead letter(s) of ${group}` : `refused: ${body.error}`;
  if (answer.status === 403 && !given) sessionStorage.removeItem("vvv-token");
  refresh("dead-letters");
}

document.getElementById("dlq-group").addEventListener("change", () => refresh("dead-letters"));
document.getElementById("dlq-query").addEventListener("input", () => refresh("dead-letters"));
for (const name of Object.keys(views)) refresh(name);
