// The review page: groups of the latest search, decisions and actions. Every text is set with
// textContent (file names are data, never markup); every change goes through a POST with the CSRF token.
"use strict";

const csrf = document.querySelector('meta[name="csrf"]').content;
const readOnly = document.querySelector('meta[name="read-only"]').content === "yes";
const view = { page: 1, perPage: 20, version: null, total: 0, shown: new Map(), selected: new Set(), state: null,
  flicker: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function status(text) { document.getElementById("status").textContent = text || ""; }

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

async function call(url, body) {
  for (let attempt = 0; attempt < 30; attempt++) {
    const options = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body),
    };
    const response = await fetch(url, { ...options, credentials: "same-origin" });
    if (response.status === 503) { status("The index is busy (a scan or search is writing); retrying…"); await sleep(1000); continue; }
    const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }
  throw new Error("The index stayed busy; try again later.");
}

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

function filters() {
  const form = new FormData(document.getElementById("filters"));
  const params = new URLSearchParams();
  for (const [k, v] of form.entries()) if (v !== "") params.set(k, v);
  params.set("page", view.page);
  params.set("per_page", view.perPage);
  return params;
}

async function loadState() {
  const state = await call("/api/state");
  view.state = state;
  const search = state.search;
  document.getElementById("summary").textContent = search
    ? `Search ${search.id} (${search.similarity}, MSE ≤ ${search.threshold}): ${state.groups} groups, ` +
      `${state.to_review} left to review (${state.reviewed} marked reviewed, ${state.groups - state.undecided} with decisions).`
    : "No search yet: run imgindex search (or find) on this index.";
  document.getElementById("move-selected").classList.toggle("hidden", readOnly || !state.move_to);
  return state;
}

function signature(group) { return group.members.map((m) => `${m.image_id}:${m.keep_reason}`).join(","); }

async function loadGroups({ ours = false } = {}) {  // ours: after the page's own decision (no "changed" badge)
  const data = await call(`/api/groups?${filters()}`);
  const before = ours ? new Map() : view.shown;
  view.version = data.version;
  view.total = data.total;
  view.shown = new Map(data.groups.map((g) => [g.group_id, signature(g)]));
  const main = document.getElementById("groups");
  main.replaceChildren(...data.groups.map((g) => groupCard(g, before.has(g.group_id) && before.get(g.group_id) !== signature(g))));
  if (!data.groups.length) main.append(el("p", { text: "No group matches." }));
  const pages = Math.max(1, Math.ceil(data.total / view.perPage));
  document.getElementById("page").textContent = `page ${view.page} of ${pages} (${data.total} groups)`;
  document.getElementById("prev").disabled = view.page <= 1;
  document.getElementById("next").disabled = view.page >= pages;
}

function groupCard(group, changed) {
  const keeper = group.members[0];
  const box = el("input", { type: "checkbox", class: "select", "data-group": group.group_id });
  box.checked = view.selected.has(group.group_id);
  box.addEventListener("change", () => (box.checked ? view.selected.add(group.group_id) : view.selected.delete(group.group_id)));
  const title = el("h2", {}, readOnly ? "" : box,
    ` Group ${group.group_id}: ${group.members.length} images, ${bytes(group.reclaimable)} reclaimable` +
    (group.kinds.length ? ` (${group.kinds.join(", ")})` : ""));
  if (changed) title.append(" ", el("span", { class: "badge changed", text: "changed since you looked" }));
  if (group.reviewed) title.append(" ", el("span", { class: "badge reviewed", text: "reviewed" }));
  const buttons = el("p");
  if (!readOnly) {
    buttons.append(el("button", { type: "button", class: "ignore-group", text: "Not duplicates (all of them)",
      onclick: () => decide("ignore", { group_id: group.group_id }) }));
    buttons.append(el("button", { type: "button", class: group.reviewed ? "unreview" : "review",
      text: group.reviewed ? "Mark as not reviewed" : "Looks right: mark reviewed",
      onclick: () => decide("reviewed", { group_ids: [group.group_id], reviewed: !group.reviewed }) }));
  }
  const members = el("div", { class: "members" }, ...group.members.map((m) => memberCard(m, keeper)));
  return el("section", { class: `group${changed ? " changed" : ""}`, "data-group": group.group_id }, title, buttons, members);
}

function memberCard(m, keeper) {
  const kept = m.keep_reason !== null;
  const label = m.is_keeper ? (m.keep_reason === "rule" ? "keeper" : `keeper (${m.keep_reason})`)
    : kept ? `kept: ${m.keep_reason === "pinned" ? "pinned" : "reference folder"}` : "lower quality";
  const img = el("img", { src: `/thumb/${m.image_id}?size=320`, alt: m.name, loading: "lazy" });
  img.addEventListener("click", () => compare(keeper, m));
  const turn = m.rotation ? `, turned ${m.rotation}°` : "";
  const facts = [`${m.width}×${m.height}, ${bytes(m.size)}, ${m.format || "?"}`, `modified ${m.modified}`, m.folder,
    m.is_keeper ? "" : `MSE ${Number(m.mse_to_keeper).toPrecision(3)} to the keeper${turn}${m.mirrored ? ", mirrored" : ""}` +
      (m.kind ? ` (${m.kind})` : "")];
  const card = el("div", { class: `member${m.is_keeper ? " keeper" : kept ? " kept" : ""}`, "data-image": m.image_id }, img,
    el("div", {}, el("span", { class: `badge ${m.is_keeper ? "keeper" : m.keep_reason || ""}`, text: label })),
    el("div", { class: "name", text: m.name }),
    ...facts.filter(Boolean).map((f) => el("div", { class: "facts", text: f })));
  if (!readOnly) {
    const row = el("p");
    if (m.keep_reason === "pinned") row.append(el("button", { type: "button", class: "unkeep", text: "Unpin",
      onclick: () => decide("unkeep", { image_id: m.image_id }) }));
    else row.append(el("button", { type: "button", class: "keep", text: "Keep this one",
      onclick: () => decide("keep", { image_id: m.image_id }) }));
    if (!m.is_keeper && m.kind !== "byte copy") row.append(el("button", { type: "button", class: "ignore-pair",
      text: "Not a duplicate of the keeper",
      onclick: () => decide("ignore", { image_ids: [keeper.image_id, m.image_id] }) }));
    row.append(el("button", { type: "button", class: m.keep_reason === "reference" ? "unreference" : "reference",
      text: m.keep_reason === "reference" ? "Folder is no longer reference" : "Make its folder a reference",
      onclick: () => decide(m.keep_reason === "reference" ? "unreference" : "reference", { image_id: m.image_id }) }));
    card.append(row);
  }
  return card;
}

async function decide(what, body) {
  try {
    const report = await call(`/api/${what}`, body);
    status([`Recorded (${what}).`, ...(report.notes || [])].join(" "));
    await refresh(true, { ours: true });
  } catch (error) { status(error.message); }
}

function overlay(...children) {
  closeOverlay();
  document.getElementById("overlay-body").replaceChildren(...children);
  document.getElementById("overlay").classList.remove("hidden");
}

function closeOverlay() {
  if (view.flicker) { clearInterval(view.flicker); view.flicker = null; }  // no timer left toggling a closed view
  document.getElementById("overlay").classList.add("hidden");
}

function compare(keeper, member) {
  const a = el("img", { src: `/full/${keeper.image_id}`, alt: keeper.name });
  const b = el("img", { src: `/full/${member.image_id}`, alt: member.name });
  const pair = el("div", { class: keeper.image_id === member.image_id ? "single" : "pair" }, a);
  if (keeper.image_id !== member.image_id) pair.append(b);
  const caption = el("p", { text: keeper.image_id === member.image_id ? keeper.name : `${keeper.name}  |  ${member.name}` });
  const tools = el("p");
  if (keeper.image_id !== member.image_id) {
    const flicker = el("button", { type: "button", id: "flicker", text: "Flicker", "aria-pressed": "false", onclick: () => {
      if (view.flicker) {
        clearInterval(view.flicker);
        view.flicker = null;
        a.classList.remove("hidden");
        b.classList.remove("hidden");
        flicker.setAttribute("aria-pressed", "false");
        return;
      }
      b.classList.add("hidden");
      flicker.setAttribute("aria-pressed", "true");
      view.flicker = setInterval(() => { a.classList.toggle("hidden"); b.classList.toggle("hidden"); }, 500);
    } });
    const shown = el("button", { type: "button", id: "difference", text: "Difference", "aria-pressed": "false", onclick: async () => {
      const old = pair.querySelector("canvas");
      if (old) { old.remove(); shown.setAttribute("aria-pressed", "false"); return; }  // a second click hides it
      try {
        await Promise.all([a.decode(), b.decode()]);  // drawing an image not loaded yet draws nothing
      } catch (error) {  // said in the overlay: it covers the page's status line
        tools.append(el("span", { class: "problem", text: " This pair cannot be shown: an original is gone or changed (scan again)." }));
        return;
      }
      if (!pair.querySelector("canvas")) pair.append(difference(a, b, member));
      shown.setAttribute("aria-pressed", "true");
    } });
    tools.append(flicker, shown);
  }
  overlay(caption, tools, pair);
}

// |keeper - member| x4, the member drawn back in the keeper's orientation: the search found
// member = T(keeper), T a left-right flip (mirrored) then a clockwise turn (rotation), so its
// inverse turns counter-clockwise, then flips. Canvas transforms apply last-written first.
function difference(a, b, member) {
  const width = Math.min(a.naturalWidth, 1200), height = Math.max(1, Math.round(width * a.naturalHeight / a.naturalWidth));
  const canvas = el("canvas", { width, height, title: "Difference ×4: black where the two agree" });
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(a, 0, 0, width, height);
  const first = ctx.getImageData(0, 0, width, height);
  const turn = member.rotation || 0;
  ctx.save();
  if (member.mirrored) { ctx.translate(width, 0); ctx.scale(-1, 1); }
  ctx.translate(width / 2, height / 2);
  ctx.rotate(-turn * Math.PI / 180);
  const [w, h] = turn % 180 ? [height, width] : [width, height];
  ctx.drawImage(b, -w / 2, -h / 2, w, h);
  ctx.restore();
  const second = ctx.getImageData(0, 0, width, height);
  for (let i = 0; i < first.data.length; i += 4) {
    for (let c = 0; c < 3; c++) second.data[i + c] = Math.min(255, 4 * Math.abs(first.data[i + c] - second.data[i + c]));
    second.data[i + 3] = 255;
  }
  ctx.putImageData(second, 0, 0);
  return canvas;
}

function files(n) { return `${n} file${n === 1 ? "" : "s"}`; }

async function plan(command) {
  const everyReviewed = document.getElementById("all-reviewed").checked;
  const groups = command === "undo" ? [] : everyReviewed ? "reviewed" : [...view.selected];
  if (command !== "undo" && !groups.length) { status("Select groups first (the boxes by their titles)."); return; }
  let shown;
  try { shown = await call("/api/plan", { command, groups, version: view.version }); } catch (error) { status(error.message); return; }
  const verb = { trash: "Send to the trash", move: `Move under ${shown.destination}`, undo: "Put back" }[command];
  const list = el("ul", {}, ...shown.actions.map((a) => el("li", { text: a.destination ? `${a.source} → ${a.destination}` : a.source })));
  const skipped = el("ul", {}, ...shown.skipped.map((s) => el("li", { text: `left alone: ${s.path}: ${s.reason}` })));
  const more = shown.files > shown.actions.length ? el("p", { text: `…and ${files(shown.files - shown.actions.length)} more.` }) : "";
  const go = el("button", { type: "button", id: "carry-out", text: `${verb}: ${files(shown.files)} (${bytes(shown.bytes)})` });
  const problem = el("p", { id: "plan-status", role: "status" });
  go.disabled = shown.files === 0;
  go.addEventListener("click", () => carryOut(shown.plan_id, go, problem));
  // the title keeps the destination's own letters (a path's case matters)
  overlay(el("h2", { text: `Plan: ${verb[0].toLowerCase()}${verb.slice(1)}` }), el("p", {}, go), problem, list, more, skipped);
}

async function carryOut(planId, go, problem) {
  go.disabled = true;  // a plan runs once: a second click would only be refused
  let job;
  try {
    job = await call("/api/apply", { plan_id: planId });
  } catch (error) {  // the overlay covers the page's status line: say it here too
    problem.textContent = error.message;
    status(error.message);
    return;
  }
  closeOverlay();  // the progress shows in the status line
  // the page's 'delete' plans always go to the trash (never permanent): say so, not "delete"
  const name = { "move-to": "Move", delete: "Trash", undo: "Undo" }[job.command] || job.command;
  try {
    while (job.status === "running") {
      status(`${name}: ${job.done} of ${files(job.planned)}…`);
      await sleep(300);
      job = (await call("/api/state")).job;
    }
    const counts = Object.entries(job.outcomes).map(([k, v]) => `${v} ${k}`).join(", ");
    status(`${name} ${job.status}: ${counts || "nothing to do"}${job.message ? ` (${job.message})` : ""}` +
      (job.run_id ? ` — run ${job.run_id} in the actions table.` : ""));
    view.selected.clear();
    document.getElementById("select-page").checked = false;
    await refresh(true, { ours: true });
  } catch (error) { status(error.message); }
}

async function refresh(force, options) {
  const state = await loadState();
  if (force || state.version !== view.version) await loadGroups(options);
}

function init() {
  const kinds = document.querySelector('select[name="kind"]');
  document.getElementById("filters").addEventListener("input", () => { view.page = 1; loadGroups().catch((e) => status(e.message)); });
  document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
  document.getElementById("prev").addEventListener("click", () => { view.page--; loadGroups().catch((e) => status(e.message)); });
  document.getElementById("next").addEventListener("click", () => { view.page++; loadGroups().catch((e) => status(e.message)); });
  document.getElementById("overlay-close").addEventListener("click", closeOverlay);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeOverlay(); });
  document.getElementById("trash-selected").addEventListener("click", () => plan("trash"));
  document.getElementById("move-selected").addEventListener("click", () => plan("move"));
  document.getElementById("undo").addEventListener("click", () => plan("undo"));
  document.getElementById("select-page").addEventListener("change", (e) => {
    for (const box of document.querySelectorAll("input.select")) {
      box.checked = e.target.checked;
      const id = Number(box.dataset.group);
      e.target.checked ? view.selected.add(id) : view.selected.delete(id);
    }
  });
  loadState().then((state) => {
    for (const k of state.kinds) kinds.append(el("option", { value: k, text: k }));
    return loadGroups();
  }).catch((e) => status(e.message));
  setInterval(() => refresh(false).catch((e) => status(e.message)), 2000);  // live: a watcher's new groups appear
}

document.addEventListener("DOMContentLoaded", init);
