// Live updates of the sources table from /events (server-sent events). The browser's
// EventSource reconnects by itself when the server goes away and comes back.
"use strict";
(() => {
  const table = document.getElementById("sources");
  const body = table.tBodies[0];
  const writes = table.dataset.writes === "true";
  const message = document.getElementById("message");
  const nats = document.getElementById("nats");
  const running = s => ["queued", "reading", "progress"].includes(s.state);

  function cell(tr, field) { return tr.querySelector(`[data-field="${field}"]`); }

  function row(source) {
    let tr = body.querySelector(`tr[data-source="${CSS.escape(source)}"]`);
    if (tr) return tr;
    tr = document.createElement("tr");
    tr.dataset.source = source;
    const link = document.createElement("a");
    link.href = `/sources/${encodeURIComponent(source)}/`;
    link.textContent = source;
    const first = document.createElement("td");
    first.append(link);
    tr.append(first);
    const add = (field, cls) => { const td = document.createElement("td"); td.dataset.field = field; if (cls) td.className = cls; tr.append(td); return td; };
    add("state", "state");
    const p = document.createElement("progress");
    p.max = 100; p.value = 0; p.dataset.field = "progress"; p.setAttribute("aria-label", `progress of ${source}`);
    const ptd = document.createElement("td"); ptd.append(p); tr.append(ptd);
    for (const f of ["frames_read", "frames_encoded", "frames_accepted", "faces", "people", "dead"]) add(f, "num");
    add("result");
    if (writes) tr.append(document.createElement("td"));
    body.append(tr);
    document.getElementById("empty")?.remove();
    return tr;
  }

  function update(s) {
    const tr = row(s.source);
    const state = cell(tr, "state");
    state.textContent = s.label;
    state.className = `state state-${s.state}`;
    state.dataset.state = s.state;
    const p = cell(tr, "progress");
    p.value = s.frames_total > 0 ? Math.min(100, Math.floor(s.frames_read * 100 / s.frames_total)) : 0;
    p.textContent = `${p.value}%`;
    cell(tr, "frames_read").textContent = s.frames_total > 0 ? `${s.frames_read} / ${s.frames_total}` : `${s.frames_read}`;
    for (const f of ["frames_encoded", "frames_accepted", "faces", "people", "dead"]) cell(tr, f).textContent = `${s[f]}`;
    cell(tr, "result").textContent = s.result || "none yet";
    if (writes) {
      const td = tr.lastElementChild;
      const button = td.querySelector("button");
      if (running(s) && !button) {
        const b = document.createElement("button");
        b.type = "button"; b.dataset.cancel = s.source; b.textContent = "cancel";
        td.append(b);
      } else if (!running(s) && button) {
        button.remove();
      }
    }
  }

  const events = new EventSource("/events");
  events.addEventListener("source", e => update(JSON.parse(e.data)));
  events.addEventListener("nats", e => {
    const n = JSON.parse(e.data);
    nats.className = n.connected ? "up" : "down";
    nats.textContent = n.connected ? "connected to NATS" : "NATS is not connected: showing the last state";
  });
  events.onerror = () => {
    nats.className = "down";
    nats.textContent = "the personcluster server is not answering: showing the last state";
  };

  // Writes carry the token (asked once per tab, kept in sessionStorage) in a header, which a
  // form on another site cannot send.
  table.addEventListener("click", async e => {
    const b = e.target.closest("button[data-cancel]");
    if (!b) return;
    let token = sessionStorage.getItem("personcluster-token");
    if (!token) {
      token = prompt("Token (the server's --ui-token) to change anything:");
      if (!token) return;
    }
    const r = await fetch(`/api/sources/${encodeURIComponent(b.dataset.cancel)}/cancel`,
      {method: "POST", headers: {Authorization: `Bearer ${token}`}});
    if (r.ok) {
      sessionStorage.setItem("personcluster-token", token);
      message.textContent = `cancelling ${b.dataset.cancel}`;
    } else {
      if (r.status === 401) sessionStorage.removeItem("personcluster-token");
      message.textContent = (await r.text()).trim();
    }
  });
})();
