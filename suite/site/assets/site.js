// normbench results site: filters and sorting, kept in the query string so that a view is a link.
// Written for normbench and shipped with it (same licence as the suite). No dependencies, no network.
// ?task=wikitext&variant=ln,crms&runtime=eager&precision=fp32&device=cpu&sort=latency&dir=desc&view=regressions
"use strict";
(function () {
  const DIMENSIONS = ["task", "variant", "runtime", "precision", "device", "view"];
  const state = new URLSearchParams(window.location.search);

  function selected(name) {
    const value = state.get(name);
    return value ? value.split(",").filter(function (v) { return v !== ""; }) : [];
  }

  function number(text) {
    const match = text.replace(/\u2212/g, "-").match(/^[\s+]*(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)/i);
    return match ? parseFloat(match[1]) : NaN;
  }

  function compare(a, b) {
    const x = number(a), y = number(b);
    if (!isNaN(x) && !isNaN(y)) { return x - y; }
    if (!isNaN(x)) { return -1; }   // figures before "-"
    if (!isNaN(y)) { return 1; }
    return a.localeCompare(b);
  }

  function sortTables() {
    const key = state.get("sort");
    const descending = state.get("dir") === "desc";
    document.querySelectorAll("table.sortable").forEach(function (table) {
      const headers = Array.from(table.querySelectorAll("thead th"));
      headers.forEach(function (th) { th.removeAttribute("aria-sort"); });
      const column = headers.findIndex(function (th) { return th.dataset.key === key; });
      if (column < 0) { return; }
      headers[column].setAttribute("aria-sort", descending ? "descending" : "ascending");
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      rows.sort(function (r, s) {
        const order = compare(r.cells[column].textContent.trim(), s.cells[column].textContent.trim());
        return descending ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  }

  function matches(element) {
    for (const name of ["task", "runtime", "precision", "device", "variant"]) {
      const wanted = selected(name);
      const value = element.getAttribute("data-" + name);
      if (wanted.length && value !== null && !wanted.includes(value)) { return false; }
    }
    if (selected("view").includes("regressions") && element.dataset.regressed === "no") { return false; }
    return true;
  }

  function filter() {
    let shown = 0;
    document.querySelectorAll(".filterable").forEach(function (element) {
      let visible = matches(element);
      const rows = element.querySelectorAll("tbody tr[data-variant]");
      if (visible && rows.length) {
        let any = false;
        rows.forEach(function (row) {
          const keep = matches(row);
          row.hidden = !keep;
          any = any || keep;
        });
        visible = any;
      }
      element.hidden = !visible;
      if (visible && element.tagName === "SECTION") { shown += 1; }
    });
    document.querySelectorAll("tr.regression").forEach(function (row) {
      const cell = document.getElementById(row.dataset.cell);
      row.hidden = cell !== null && cell.hidden;
    });
    const counter = document.getElementById("shown");
    if (counter) { counter.textContent = shown + " section(s) shown"; }
  }

  function syncControls() {
    document.querySelectorAll("#filters input[type=checkbox]").forEach(function (box) {
      box.checked = selected(box.name).includes(box.value);
    });
  }

  function publishState() {
    const query = state.toString();
    const link = document.getElementById("view-link");
    if (link) { link.setAttribute("href", "?" + query); link.textContent = query ? "?" + query : "(all)"; }
    try {
      window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : "") + window.location.hash);
    } catch (error) {
      // a browser that refuses to rewrite file:// addresses still has the view's link above
    }
  }

  function apply() {
    syncControls();
    filter();
    sortTables();
    publishState();
  }

  function readControls() {
    DIMENSIONS.forEach(function (name) {
      const boxes = Array.from(document.querySelectorAll("#filters input[name='" + name + "']"));
      if (!boxes.length) { return; }
      const values = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      if (values.length) { state.set(name, values.join(",")); } else { state.delete(name); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-colour]").forEach(function (swatch) {
      swatch.style.backgroundColor = swatch.dataset.colour;
    });
    document.querySelectorAll("#filters input[type=checkbox]").forEach(function (box) {
      box.addEventListener("change", function () { readControls(); apply(); });
    });
    document.querySelectorAll("table.sortable thead th[data-key] button").forEach(function (button) {
      button.addEventListener("click", function () {
        const key = button.parentElement.dataset.key;
        const again = state.get("sort") === key && state.get("dir") !== "desc";
        state.set("sort", key);
        if (again) { state.set("dir", "desc"); } else { state.delete("dir"); }
        apply();
      });
    });
    const form = document.getElementById("filters");
    if (form) { form.addEventListener("submit", function (event) { event.preventDefault(); }); }
    apply();
    document.body.dataset.ready = "yes";
  });
})();
