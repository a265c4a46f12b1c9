// The people gallery page. A new result of any source may have changed the gallery: the page
// then offers to read it again (never by itself, which would throw away what is being typed).
// Where writes are on, each edit form posts JSON with the token as a bearer header (which a form
// on another site cannot send), then the list is read again from the server.
"use strict";
(() => {
  const message = document.getElementById("message");
  const changed = document.getElementById("changed");

  async function refresh() {
    const r = await fetch(location.pathname, {cache: "no-store"});
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.getElementById("people");
    if (fresh) document.getElementById("people").replaceWith(document.adoptNode(fresh));
    changed.hidden = true;
  }

  changed.querySelector("button").addEventListener("click", () => refresh().catch(err => {
    message.textContent = `the personcluster server is not answering: ${err}`;
  }));
  // The page says the newest result it knew of when it was made; a newer one shows the offer.
  const events = new EventSource("/events");
  events.addEventListener("source", e => {
    const s = JSON.parse(e.data);
    if (s.result_at_ms > Number(document.getElementById("people").dataset.resultsAt)) changed.hidden = false;
  });

  const tokenInput = document.getElementById("token");
  if (!tokenInput) return; // read-only
  tokenInput.value = sessionStorage.getItem("personcluster-token") || "";
  document.getElementById("token-form").addEventListener("submit", e => e.preventDefault());

  document.addEventListener("submit", async e => {
    const form = e.target.closest("form[data-action]");
    if (!form) return;
    e.preventDefault();
    const person = form.closest("[data-person]").dataset.person;
    const action = form.dataset.action;
    const token = tokenInput.value.trim();
    if (!token) {
      message.textContent = "Enter the token (the server's --ui-token) to change anything.";
      tokenInput.focus();
      return;
    }
    let body;
    if (action === "name") body = {name: form.elements.name.value.trim()};
    if (action === "merge") body = {from: form.elements.from.value.trim()};
    if (action === "split") {
      body = {exemplars: [...form.querySelectorAll("input[name=exemplar]:checked")].map(c => Number(c.value))};
      if (body.exemplars.length === 0) { message.textContent = "Check the exemplars to split off first."; return; }
    }
    if (action === "forget" && !confirm(`Forget ${person} for good? Their vectors, thumbnail and face crops are deleted everywhere.`)) return;
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    try {
      const r = await fetch(`/api/people/${encodeURIComponent(person)}/${action}`, {method: "POST",
        headers: {Authorization: `Bearer ${token}`, "Content-Type": "application/json"}, body: body ? JSON.stringify(body) : undefined});
      if (r.ok) {
        sessionStorage.setItem("personcluster-token", token);
        message.textContent = (await r.json()).message;
        await refresh();
      } else {
        if (r.status === 401) sessionStorage.removeItem("personcluster-token");
        message.textContent = (await r.text()).trim();
      }
    } catch (err) {
      message.textContent = `the personcluster server is not answering: ${err}`;
    } finally {
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
  });
})();
