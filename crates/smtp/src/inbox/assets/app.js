// The inbox page. Every value from a message is set with textContent, never as HTML.
"use strict";

const PAGE = 50;
const state = { start: 0, query: "", current: null, images: false };
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function who(m) {
  if (!m) return "";
  return m.Name ? m.Name + " <" + m.Address + ">" : m.Address;
}

function size(n) {
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1024 / 1024).toFixed(1) + " MiB";
}

function when(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, opts);
  if (!r.ok) throw new Error(method + " " + path + ": " + r.status);
  const type = r.headers.get("Content-Type") || "";
  return type.startsWith("application/json") ? r.json() : r.text();
}

async function loadList() {
  const q = state.query;
  const path = q
    ? "/api/v1/search?query=" + encodeURIComponent(q) + "&start=" + state.start + "&limit=" + PAGE
    : "/api/v1/messages?start=" + state.start + "&limit=" + PAGE;
  const data = await api("GET", path);
  const list = $("list");
  list.replaceChildren();
  for (const m of data.messages) {
    const li = el("li", null, m.Read ? "read" : "unread");
    li.tabIndex = 0;
    li.dataset.id = m.ID;
    const from = el("span", who(m.From), "from");
    const subject = el("span", m.Subject || "(no subject)", "subject");
    if (m.Attachments > 0) {
      // Words, not an emoji: a machine without an emoji font shows a box.
      const clip = el("span", "[" + m.Attachments + " attached]", "clip");
      subject.append(clip);
    }
    const time = el("span", when(m.Created), "time");
    const to = el("span", "to " + (m.To || []).map(who).join(", "), "to");
    const snippet = el("span", m.Snippet, "snippet");
    const sz = el("span", size(m.Size), "size");
    li.append(from, subject, time, to, snippet, sz);
    li.addEventListener("click", () => openMessage(m.ID));
    li.addEventListener("keydown", (e) => {
      if (e.key === "Enter") openMessage(m.ID);
      if (e.key === "ArrowDown" && li.nextElementSibling) li.nextElementSibling.focus();
      if (e.key === "ArrowUp" && li.previousElementSibling) li.previousElementSibling.focus();
      if (e.key === "Delete") deleteIds([m.ID]);
    });
    list.append(li);
  }
  const shown = q ? data.messages_count : data.total;
  $("counts").textContent = shown + (q ? " matching" : " messages") + ", " + data.unread + " unread";
  $("page").textContent = shown ? (state.start + 1) + "–" + (state.start + data.count) + " of " + shown : "";
  $("prev").disabled = state.start === 0;
  $("next").disabled = state.start + data.count >= shown;
  document.body.dataset.listed = String(data.count);
}

function show(view) {
  $("list-view").hidden = view !== "list";
  $("message-view").hidden = view !== "message";
}

function tab(name) {
  for (const b of document.querySelectorAll("#tabs button")) {
    b.setAttribute("aria-selected", String(b.dataset.tab === name));
  }
  for (const t of ["text", "html", "headers", "raw"]) $("tab-" + t).hidden = t !== name;
}

function dl(target, pairs) {
  target.replaceChildren();
  for (const [k, v] of pairs) target.append(el("dt", k), el("dd", v));
}

async function openMessage(id) {
  const m = await api("GET", "/api/v1/message/" + encodeURIComponent(id));
  state.current = m.ID;
  state.images = false;
  $("m-subject").textContent = m.Subject || "(no subject)";
  dl($("m-meta"), [
    ["From", who(m.From)],
    ["To", (m.To || []).map(who).join(", ")],
    ["Cc", (m.Cc || []).map(who).join(", ")],
    ["Date", when(m.Date)],
    ["Size", size(m.Size)],
  ]);
  $("m-text").textContent = m.Text;
  $("m-blocked").textContent = m.HTML
    ? m.RemoteResources + " remote resource(s) blocked"
    : "This message has no HTML part.";
  $("m-blocked").dataset.count = String(m.RemoteResources);
  $("allow-images").hidden = !m.HTML || m.RemoteResources === 0;
  $("m-html").src = m.HTML ? "/view/" + encodeURIComponent(m.ID) + ".html" : "about:blank";
  const atts = $("m-attachments");
  atts.replaceChildren();
  for (const a of (m.Attachments || []).concat(m.Inline || [])) {
    const li = el("li");
    const link = el("a", a.FileName || "part " + a.PartID);
    link.href = "/api/v1/message/" + encodeURIComponent(m.ID) + "/part/" + encodeURIComponent(a.PartID);
    link.download = a.FileName || "part-" + a.PartID;
    li.append(link, el("span", " " + a.ContentType + ", " + size(a.Size)));
    atts.append(li);
  }
  if (!atts.children.length) atts.append(el("li", "none"));
  dl($("m-envelope"), [
    ["MAIL FROM", "<" + (m.Envelope.ReturnPath || "") + ">"],
    ["RCPT TO", (m.Envelope.DeliveredTo || []).map((r) => "<" + r + ">").join(", ")],
  ]);
  const rec = $("m-received");
  rec.replaceChildren();
  for (const r of m.Received || []) rec.append(el("li", r));
  const headers = await api("GET", "/api/v1/message/" + encodeURIComponent(id) + "/headers");
  const table = $("m-headers");
  table.replaceChildren();
  for (const [name, values] of Object.entries(headers)) {
    for (const v of values) {
      const tr = el("tr");
      tr.append(el("td", name), el("td", v));
      table.append(tr);
    }
  }
  $("m-raw").textContent = await api("GET", "/api/v1/message/" + encodeURIComponent(id) + "/raw");
  tab(m.Text || !m.HTML ? "text" : "html");
  show("message");
  $("back").focus();
}

async function deleteIds(ids) {
  await api("DELETE", "/api/v1/messages", ids ? { IDs: ids } : undefined);
  $("status").textContent = ids ? "deleted" : "all deleted";
  state.current = null;
  show("list");
  await loadList();
}

function connectEvents() {
  const es = new EventSource("/api/events");
  const refresh = () => { if (!$("list-view").hidden) loadList(); };
  es.addEventListener("new", refresh);
  es.addEventListener("delete", refresh);
  es.addEventListener("update", refresh);
  es.addEventListener("reload", refresh);
  es.onopen = () => { document.body.dataset.live = "1"; };
}

document.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    state.query = $("q").value.trim();
    state.start = 0;
    show("list");
    loadList();
  });
  $("prev").addEventListener("click", () => { state.start = Math.max(0, state.start - PAGE); loadList(); });
  $("next").addEventListener("click", () => { state.start += PAGE; loadList(); });
  $("back").addEventListener("click", () => { show("list"); loadList(); });
  $("home").addEventListener("click", (e) => { e.preventDefault(); state.query = ""; $("q").value = ""; state.start = 0; show("list"); loadList(); });
  $("delete-one").addEventListener("click", () => { if (state.current) deleteIds([state.current]); });
  $("delete-all").addEventListener("click", () => { if (confirm("Delete every message?")) deleteIds(null); });
  $("allow-images").addEventListener("click", () => {
    if (!state.current) return;
    state.images = true;
    $("m-html").src = "/view/" + encodeURIComponent(state.current) + ".html?images=1";
    $("allow-images").hidden = true;
  });
  for (const b of document.querySelectorAll("#tabs button")) {
    b.addEventListener("click", () => tab(b.dataset.tab));
  }
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT") return;
    if (e.key === "/") { e.preventDefault(); $("q").focus(); }
    if (e.key === "Escape" && !$("message-view").hidden) { show("list"); loadList(); }
  });
  loadList();
  connectEvents();
});
