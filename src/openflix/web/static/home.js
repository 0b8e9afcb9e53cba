// Renders GET /members/{id}/home as rows of title cards. No framework, no build step.
(function () {
  "use strict";
  const form = document.getElementById("who");
  const memberInput = document.getElementById("member");
  const tokenInput = document.getElementById("token");
  const status = document.getElementById("status");
  const rows = document.getElementById("rows");

  const params = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  memberInput.value = params.get("member") || localStorage.getItem("openflix.member") || "";
  tokenInput.value = fragment.get("token") || sessionStorage.getItem("openflix.token") || "";

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function card(title) {
    const li = el("li", "title");
    li.dataset.titleId = title.id;
    li.appendChild(el("div", "name", title.name));
    li.appendChild(el("div", "meta year", title.year === null ? "" : String(title.year)));
    li.appendChild(el("div", "meta genres", title.genres.join(", ")));
    return li;
  }

  async function show(member, token) {
    status.className = "";
    status.textContent = "loading…";
    rows.replaceChildren();
    const response = await fetch(`/members/${encodeURIComponent(member)}/home`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    const body = await response.json();
    if (!response.ok) {
      status.className = "error";
      status.textContent = `${body.title || response.status}: ${body.detail || ""}`;
      return;
    }
    status.textContent = `member ${body.member_id} · region ${body.region.toUpperCase()} · model version ${body.version}` +
      (body.cell ? ` · A/B cell ${body.cell}` : "");
    for (const row of body.rows) {
      const section = el("section", "row");
      section.dataset.rowId = row.id;
      section.appendChild(el("h2", "", row.title));
      section.appendChild(el("p", "reason", row.reason));
      const list = el("ol");
      row.items.forEach((t) => list.appendChild(card(t)));
      section.appendChild(list);
      rows.appendChild(section);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem("openflix.member", memberInput.value);
    sessionStorage.setItem("openflix.token", tokenInput.value);
    show(memberInput.value, tokenInput.value).catch((err) => {
      status.className = "error";
      status.textContent = String(err);
    });
  });

  if (memberInput.value && tokenInput.value) form.requestSubmit();
})();
