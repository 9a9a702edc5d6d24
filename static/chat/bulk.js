// The sidebar's "Select" mode: a box on each conversation, a bar with how many are ticked
// and what to do with them. The server answers a change with the list re-rendered, which
// ends the mode; Cancel ends it without a change.
(function () {
  "use strict";

  function lists() { return document.getElementById("sidebar-lists"); }

  function refresh() {
    var form = document.getElementById("bulk-form");
    if (!form) { return; }
    var ticked = document.querySelectorAll(".bulk-check:checked").length;
    var count = form.querySelector(".bulk-count");
    count.textContent = ticked ? count.dataset.some.replace("#", String(ticked)) : count.dataset.none;
    form.querySelectorAll("button[name=action]").forEach(function (button) { button.disabled = ticked === 0; });
  }

  function setMode(on) {
    var root = lists();
    var form = document.getElementById("bulk-form");
    if (!root || !form) { return; }
    root.classList.toggle("selecting", on);
    form.hidden = !on;
    if (!on) {
      document.querySelectorAll(".bulk-check:checked").forEach(function (box) { box.checked = false; });
    }
    refresh();
    if (on) { form.querySelector(".bulk-count").focus(); }
  }

  document.addEventListener("click", function (event) {
    if (!event.target.closest) { return; }
    if (event.target.closest(".bulk-start")) { setMode(true); }
    else if (event.target.closest(".bulk-cancel")) { setMode(false); }
  });
  document.addEventListener("change", function (event) {
    if (event.target.classList && event.target.classList.contains("bulk-check")) { refresh(); }
  });
  // A folder opened, or the next page loaded, while selecting: their boxes show as well
  // (the class is on the list), and the count stays right.
  document.body.addEventListener("htmx:afterSwap", refresh);
})();
